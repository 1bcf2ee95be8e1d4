"""Torch datasets over a prepared directory's cached arrays (never re-decoding image files)."""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from cardioseg.data.prepared import PreparedDataset, context_rows
from cardioseg.errors import DataError
from cardioseg.plan import IGNORE_LABEL


class SliceDataset(Dataset):
    """2D samples of one split, held in memory as float32 images and uint8 label maps.

    Inputs are (C, H, W): one channel, or with ``context`` (2.5D) the plane between its neighbours
    (``context_rows``). Targets are float (1, H, W) {0, 1} masks for a binary task and long (H, W)
    class ids for a multi-class one, matching the losses in ``training.losses``; unknown pixels keep
    the value ``IGNORE_LABEL`` in both.
    """

    def __init__(self, prepared: PreparedDataset, split: str | None, binary: bool, transform: A.Compose | None = None,
                 context: int = 0):
        self.rows = prepared.indices(split)
        if len(self.rows) == 0:
            raise DataError(f"split {split!r} has no samples", prepared.root)
        # a volume's planes all belong to its case's split, so every neighbour is a row of this split
        self.planes = np.searchsorted(self.rows, context_rows(prepared.manifest, self.rows, context))
        self.images = np.ascontiguousarray(prepared.images[self.rows])
        labels = np.ascontiguousarray(prepared.labels[self.rows])
        # a binary task's targets are 0/1, unknown pixels kept: worked out once here, not per sample
        self.labels = np.where(labels == IGNORE_LABEL, IGNORE_LABEL, labels > 0).astype(np.uint8) if binary else labels
        self.binary = binary
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = np.moveaxis(self.images[self.planes[index]], 0, -1), self.labels[index]  # (H, W, C)
        if self.transform is not None:
            out = self.transform(image=image, mask=label)
            image, label = out["image"], out["mask"]
        image_t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32))
        if self.binary:
            return image_t, torch.from_numpy(label.astype(np.float32))[None]
        return image_t, torch.from_numpy(label.astype(np.int64))


class WindowDataset(Dataset):
    """Windows of ``planes`` consecutive planes of one split's volumes, for 3D networks: (1, D, H, W) inputs and
    (1, D, H, W) float (binary) or (D, H, W) long targets.

    Training (``random=True``) draws each window's start afresh, so an epoch covers every volume about once
    at new offsets; otherwise the windows tile each volume from its first plane, the last one flush with its
    end. A volume shorter than the window is padded with empty planes whose labels are unknown.
    """

    def __init__(self, prepared: PreparedDataset, split: str, binary: bool, planes: int, random: bool):
        rows = prepared.indices(split)
        if len(rows) == 0:
            raise DataError(f"split {split!r} has no samples", prepared.root)
        manifest = prepared.manifest.iloc[rows]
        self.volumes = [group.sort_values("slice_index").index.to_numpy()
                        for _, group in manifest.groupby("case_id", sort=False)]
        self.images, self.labels = prepared.images, prepared.labels  # memory-mapped: a window reads its planes
        self.binary, self.planes, self.random = binary, planes, random
        self.windows = [(v, start) for v, volume in enumerate(self.volumes)
                        for start in self._starts(len(volume))]

    def _starts(self, depth: int) -> list[int]:
        if depth <= self.planes:
            return [0]
        starts = list(range(0, depth - self.planes, self.planes))
        return [*starts, depth - self.planes]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        volume, start = self.windows[index]
        rows = self.volumes[volume]
        if self.random:
            # torch's generator: seeded by the run's seed, and differently in each loader worker
            start = int(torch.randint(0, max(1, len(rows) - self.planes + 1), ()).item())
        picked = rows[start : start + self.planes]
        image = np.zeros((self.planes, *self.images.shape[1:]), np.float32)
        label = np.full((self.planes, *self.labels.shape[1:]), IGNORE_LABEL, np.uint8)
        image[: len(picked)], label[: len(picked)] = self.images[picked], self.labels[picked]
        if self.binary:
            label = np.where(label == IGNORE_LABEL, IGNORE_LABEL, label > 0).astype(np.float32)
            return torch.from_numpy(image)[None], torch.from_numpy(label)[None]
        return torch.from_numpy(image)[None], torch.from_numpy(label.astype(np.int64))
