"""The LightningModule: one network, one loss, Dice on validation, gathered correctly."""

from __future__ import annotations

import math
from collections import deque

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer
from torch import nn

from cardioseg.config import ModelConfig, TrainConfig
from cardioseg.errors import TrainingError
from cardioseg.models.registry import is_volumetric
from cardioseg.plan import IGNORE_LABEL
from cardioseg.training.batchnorm import recalibrate_batchnorm
from cardioseg.training.deep_supervision import DeepSupervision
from cardioseg.training.losses import build_loss

MAX_NONFINITE_STEPS = 20
"""optimiser steps in a row with a non-finite gradient before training stops with an error"""


def batch_dice(logits: torch.Tensor, target: torch.Tensor, binary: bool) -> torch.Tensor:
    """Per-sample Dice at network resolution over the known pixels (foreground classes averaged); both empty -> 1."""
    if binary:
        known = target[:, 0] != IGNORE_LABEL
        classes = [((logits[:, 0] > 0) & known, (target[:, 0] == 1) & known)]
    else:
        known = target != IGNORE_LABEL
        labels = logits.argmax(1)
        classes = [((labels == c) & known, target == c) for c in range(1, logits.shape[1])]
    scores = []
    for pred, ref in classes:
        inter = (pred & ref).flatten(1).sum(1).float()
        total = pred.flatten(1).sum(1).float() + ref.flatten(1).sum(1).float()
        scores.append(torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total)))
    return torch.stack(scores).mean(0)


def half_size(images: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2D batch at half its size, rounded up to a multiple of 32 (the encoders' stride): images by area
    averaging, labels by nearest neighbour, so that unknown pixels stay unknown."""
    size = [32 * math.ceil(side / 64) for side in images.shape[-2:]]
    small = nn.functional.interpolate(images, size=size, mode="area")
    labels = target if target.ndim == 4 else target[:, None].float()
    labels = nn.functional.interpolate(labels.float(), size=size, mode="nearest-exact")
    return small, labels.to(target.dtype) if target.ndim == 4 else labels[:, 0].to(target.dtype)


class SegmentationModule(L.LightningModule):
    def __init__(self, model: nn.Module, model_cfg: ModelConfig, train_cfg: TrainConfig):
        super().__init__()
        self.model = model
        self.model_cfg, self.train_cfg = model_cfg, train_cfg
        self.binary = model_cfg.classes == 1
        self.loss = build_loss(train_cfg, self.binary)
        volumetric = is_volumetric(model_cfg.arch)  # channels_last is for 4D tensors
        self.memory_format = torch.channels_last if train_cfg.channels_last and not volumetric else \
            torch.contiguous_format
        # Plain tensors, not buffers: a weight average (train.ema_decay) swaps every buffer in and out around
        # validation, and would swap these accumulators away before on_validation_epoch_end reads them.
        self._val_sum, self._val_count = torch.zeros(()), torch.zeros(())
        # The latest training inputs (after augmentation), kept to re-estimate BatchNorm statistics
        # (maxlen 0 when that is off: appending keeps nothing).
        self._recent_inputs: deque[torch.Tensor] = deque(maxlen=train_cfg.recalibrate_bn_batches)
        self.deep_supervision = DeepSupervision(model, model_cfg.arch, train_cfg.deep_supervision,
                                                model_cfg.in_channels, model_cfg.classes) \
            if train_cfg.deep_supervision else None
        self.at_half_size = False  # set by callbacks.ProgressiveResize early in the run
        self.skipped_steps = 0  # optimiser steps skipped for a non-finite gradient, in all and in a row
        self._skipped_in_a_row = 0

    def setup(self, stage: str) -> None:
        self.model.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.contiguous(memory_format=self.memory_format))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, target = batch
        self._recent_inputs.append(images.detach())  # at full size: BatchNorm is recalibrated for validation
        if self.at_half_size:
            images, target = half_size(images, target)
        logits = self(images).float()
        loss = self.loss(logits, target) if self.deep_supervision is None else \
            self.deep_supervision.loss(self.loss, logits, target)
        if torch.isfinite(loss):  # a non-finite step is skipped (on_before_optimizer_step) and kept out of the mean
            self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(images))
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip a step whose gradient is not finite, as a gradient scaler does: its loss or gradient overflowed
        (a rare bf16 step), and one such update would turn every weight, and the rest of the run, into NaN.
        The gradients are already reduced across processes here, so every process skips the same step."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads or torch.isfinite(nn.utils.get_total_norm(grads)):  # one fused pass, one sync
            self._skipped_in_a_row = 0
            return
        optimizer.zero_grad(set_to_none=True)  # the optimiser leaves parameters without a gradient untouched
        self.skipped_steps += 1
        self._skipped_in_a_row += 1
        if self._skipped_in_a_row >= MAX_NONFINITE_STEPS:
            raise TrainingError(
                f"the gradient was not finite for {MAX_NONFINITE_STEPS} optimiser steps in a row (up to step "
                f"{self.global_step}): training has diverged. Try a lower train.lr, or train.precision=32 if it "
                "runs in bf16")

    def on_train_epoch_end(self) -> None:
        self.log("skipped_steps", float(self.skipped_steps), sync_dist=False)

    def on_validation_epoch_start(self) -> None:
        if self._recent_inputs:
            with self.trainer.precision_plugin.train_step_context():
                recalibrate_batchnorm(self, list(self._recent_inputs))
        self._val_sum = torch.zeros((), device=self.device)
        self._val_count = torch.zeros((), device=self.device)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, target = batch
        logits = self(images).float()
        self.log("val_loss", self.loss(logits, target), on_epoch=True, batch_size=len(images), sync_dist=True)
        dice = batch_dice(logits, target, self.binary)
        self._val_sum += dice.sum()
        self._val_count += len(dice)

    def on_validation_epoch_end(self) -> None:
        # Sum and count are reduced across processes, so each sample counts exactly once.
        total = self.trainer.strategy.reduce(self._val_sum.clone(), reduce_op="sum")
        count = self.trainer.strategy.reduce(self._val_count.clone(), reduce_op="sum")
        self.log("val_dice", total / count.clamp(min=1), prog_bar=True, sync_dist=False)
        self.log("val_samples", count, sync_dist=False)  # each sample once, whatever the process count
        timer = next((cb for cb in self.trainer.callbacks if isinstance(cb, Timer)), None)
        if timer is not None:  # wall-clock training time so far, for Dice-against-time curves
            self.log("train_seconds", float(timer.time_elapsed("train")), sync_dist=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # The learning-rate schedule is driven by ``callbacks.WarmupCosine`` so that it can follow
        # a wall-clock budget as well as an epoch count.
        optim_cls = torch.optim.AdamW if self.train_cfg.optimizer == "adamw" else torch.optim.Adam
        return optim_cls(self.parameters(), lr=self.train_cfg.lr, weight_decay=self.train_cfg.weight_decay)
