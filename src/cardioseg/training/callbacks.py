"""Lightning callbacks and plug-ins: atomic checkpoints, a time-aware LR schedule."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cardioseg.fileio import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file and rename it, so a kill never truncates one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        with atomic_path(Path(path)) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


class WarmupCosine(L.Callback):
    """Linear warm-up then cosine decay, over whichever ends first: the epochs or the time budget.

    Progress is ``max(step / total_steps, elapsed / budget)``; the elapsed time comes from
    Lightning's ``Timer``, whose state is saved in checkpoints, so a resumed run continues the
    same schedule.
    """

    def __init__(self, base_lr: float, total_steps: int, budget_s: float | None, warmup: float = 0.05, floor: float = 0.01):
        self.base_lr, self.total_steps, self.budget_s = base_lr, max(1, total_steps), budget_s
        self.warmup, self.floor = warmup, floor

    def _progress(self, trainer: L.Trainer) -> float:
        progress = trainer.global_step / self.total_steps
        if self.budget_s:
            timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
            if timer is not None:
                progress = max(progress, timer.time_elapsed("train") / self.budget_s)
        return min(progress, 1.0)

    def factor(self, progress: float) -> float:
        if progress < self.warmup:
            return 0.1 + 0.9 * progress / self.warmup
        decay = (progress - self.warmup) / (1 - self.warmup)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * decay))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        lr = self.base_lr * self.factor(self._progress(trainer))
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr
        pl_module.log("lr", lr, on_step=True, on_epoch=False)
