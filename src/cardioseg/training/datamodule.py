"""Data loaders for training, sharded across processes under DDP without duplicating samples."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from cardioseg.config import Config
from cardioseg.data.augment import build_augmentation
from cardioseg.data.dataset import SliceDataset, WindowDataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.models.registry import is_volumetric


class ShardSampler(Sampler[int]):
    """Every ``world``-th sample starting at ``rank``: disjoint shards that cover the set once.

    Unlike ``DistributedSampler`` it never pads with repeated samples, so validation metrics
    summed over processes count every sample exactly once.
    """

    def __init__(self, length: int, rank: int, world: int):
        self.indices = list(range(rank, length, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class SegmentationData(L.LightningDataModule):
    def __init__(self, cfg: Config, prepared: PreparedDataset, binary: bool):
        super().__init__()
        self.cfg, self.binary = cfg, binary
        context = cfg.model.context_slices
        self.val_split = "val" if len(prepared.indices("val")) else "test"
        self.train_set: Dataset
        self.val_set: Dataset
        if is_volumetric(cfg.model.arch):
            planes = cfg.model.window_planes
            self.train_set = WindowDataset(prepared, "train", binary, planes, random=True)
            self.val_set = WindowDataset(prepared, self.val_split, binary, planes, random=False)
        else:
            self.train_set = SliceDataset(prepared, "train", binary, build_augmentation(cfg.train.augment), context)
            self.val_set = SliceDataset(prepared, self.val_split, binary, context=context)

    def _common(self) -> dict:
        workers = self.cfg.train.num_workers
        return {"num_workers": workers, "persistent_workers": workers > 0, "pin_memory": torch.cuda.is_available()}

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        tc = self.cfg.train
        rank, world = self._world()
        drop_last = len(self.train_set) > tc.batch_size * world
        if world > 1:
            sampler = DistributedSampler(self.train_set, world, rank, shuffle=True, seed=tc.seed, drop_last=drop_last)
            return DataLoader(self.train_set, tc.batch_size, sampler=sampler, drop_last=drop_last, **self._common())
        generator = torch.Generator().manual_seed(tc.seed)
        return DataLoader(self.train_set, tc.batch_size, shuffle=True, drop_last=drop_last, generator=generator,
                          **self._common())

    def val_dataloader(self) -> DataLoader:
        rank, world = self._world()
        sampler = ShardSampler(len(self.val_set), rank, world)
        return DataLoader(self.val_set, self.cfg.train.batch_size * 2, sampler=sampler, **self._common())

    def steps_per_epoch(self, world: int) -> int:
        per_process = len(self.train_set) // world
        batches = per_process // self.cfg.train.batch_size
        batches = max(1, batches if len(self.train_set) > self.cfg.train.batch_size * world else 1)
        limit = self.cfg.train.batches_per_epoch
        return batches if limit is None else min(batches, limit)
