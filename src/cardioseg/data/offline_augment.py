"""Offline augmentation: a prepared dataset whose training split is enlarged N-fold, once.

The CT study's variant 2 trains the DoubleConv U-Net on ten augmented copies of each training
image (rotation, horizontal and vertical flips, elastic deformation) made before training, rather
than fresh random transforms every epoch. Validation and test rows are copied unchanged, so
scores stay comparable with the original dataset.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd

from cardioseg.artifacts import PreparedFiles
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import ConfigError
from cardioseg.fileio import atomic_dir, folder_lock, write_json


def offline_transform() -> A.Compose:
    """The CT study's offline set: rotation, horizontal and vertical flips, elastic deformation."""
    return A.Compose([
        A.Affine(rotate=(-20, 20), border_mode=cv2.BORDER_CONSTANT, p=0.8),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.ElasticTransform(alpha=30, sigma=6, p=0.5),
    ])


def augment_offline(source: Path, out: Path, copies: int = 10, seed: int = 0) -> Path:
    """Write ``out``: ``source`` with ``copies`` augmented versions of every training sample added."""
    if copies < 1:
        raise ConfigError("copies must be at least 1")
    prepared = PreparedDataset(source)
    transform = offline_transform()
    transform.set_random_seed(seed)
    train_rows = prepared.indices("train")
    manifest = prepared.manifest
    images, labels, extra_rows = [prepared.images[:]], [prepared.labels[:]], []
    for k in range(copies):
        batch_images = np.empty((len(train_rows), *prepared.images.shape[1:]), np.float32)
        batch_labels = np.empty((len(train_rows), *prepared.labels.shape[1:]), np.uint8)
        for i, row in enumerate(train_rows):
            out_pair = transform(image=np.asarray(prepared.images[row]), mask=np.asarray(prepared.labels[row]))
            batch_images[i], batch_labels[i] = out_pair["image"], out_pair["mask"]
        images.append(batch_images)
        labels.append(batch_labels)
        copy_rows = manifest.iloc[train_rows].copy()
        copy_rows["sample_id"] = copy_rows["sample_id"] + f"~aug{k + 1}"
        extra_rows.append(copy_rows)
    info = {**prepared.info, "offline_augmentation": {"copies": copies, "seed": seed, "source": str(source)}}
    info["n_samples"] = int(len(manifest) + copies * len(train_rows))
    info["samples_per_split"] = {**info["samples_per_split"], "train": int((copies + 1) * len(train_rows))}
    with folder_lock(out, "cardioseg augment", replaced_whole=True), atomic_dir(out) as tmp:
        staged = PreparedFiles(tmp)
        np.save(staged.images, np.concatenate(images))
        np.save(staged.labels, np.concatenate(labels))
        pd.concat([manifest, *extra_rows], ignore_index=True).to_csv(staged.manifest, index=False)
        write_json(staged.dataset, info)
        for original, linked in ((prepared.files.originals, staged.originals), (prepared.files.cases, staged.cases),
                                 (prepared.files.config, staged.config)):
            try:
                os.link(original, linked)
            except OSError:
                shutil.copy2(original, linked)
    return out
