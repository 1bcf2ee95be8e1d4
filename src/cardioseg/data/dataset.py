"""Torch datasets over a prepared directory's cached arrays (never re-decoding image files)."""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import DataError
from cardioseg.plan import IGNORE_LABEL


class SliceDataset(Dataset):
    """2D samples of one split, held in memory as float32 images and uint8 label maps.

    Targets are float (1, H, W) {0, 1} masks for a binary task and long (H, W) class ids for
    a multi-class one, matching the losses in ``training.losses``; unknown pixels keep the value
    ``IGNORE_LABEL`` in both.
    """

    def __init__(self, prepared: PreparedDataset, split: str | None, binary: bool, transform: A.Compose | None = None):
        self.rows = prepared.indices(split)
        if len(self.rows) == 0:
            raise DataError(f"split {split!r} has no samples", prepared.root)
        self.images = np.ascontiguousarray(prepared.images[self.rows])
        labels = np.ascontiguousarray(prepared.labels[self.rows])
        # a binary task's targets are 0/1, unknown pixels kept: worked out once here, not per sample
        self.labels = np.where(labels == IGNORE_LABEL, IGNORE_LABEL, labels > 0).astype(np.uint8) if binary else labels
        self.binary = binary
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.images[index], self.labels[index]
        if self.transform is not None:
            out = self.transform(image=image, mask=label)
            image, label = out["image"], out["mask"]
        image_t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        if self.binary:
            return image_t, torch.from_numpy(label.astype(np.float32))[None]
        return image_t, torch.from_numpy(label.astype(np.int64))
