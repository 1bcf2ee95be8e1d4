"""Lightning callbacks and plug-ins: atomic checkpoints, a time-aware LR schedule, a metrics log that survives resume."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, Timer, WeightAveraging
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cardioseg.fileio import atomic_path, write_with
from cardioseg.plan import IGNORE_LABEL


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file and rename it, so a kill never truncates one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        with atomic_path(Path(path)) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


def training_progress(trainer: L.Trainer, total_steps: int, budget_s: float | None) -> float:
    """How far the run is, 0 to 1: ``max(step / total_steps, elapsed / budget)``, so that whichever ends first
    (the epochs or the time budget) ends it. The elapsed time is Lightning's ``Timer``'s, saved in checkpoints."""
    progress = trainer.global_step / max(1, total_steps)
    if budget_s:
        timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
        if timer is not None:
            progress = max(progress, timer.time_elapsed("train") / budget_s)
    return min(progress, 1.0)


class WarmupCosine(L.Callback):
    """Linear warm-up then cosine decay, over whichever ends first: the epochs or the time budget.

    Progress is ``max(step / total_steps, elapsed / budget)``; the elapsed time comes from
    Lightning's ``Timer``, whose state is saved in checkpoints, so a resumed run continues the
    same schedule.
    """

    def __init__(self, base_lr: float, total_steps: int, budget_s: float | None, warmup: float = 0.05, floor: float = 0.01):
        self.base_lr, self.total_steps, self.budget_s = base_lr, max(1, total_steps), budget_s
        self.warmup, self.floor = warmup, floor

    def factor(self, progress: float) -> float:
        if progress < self.warmup:
            return 0.1 + 0.9 * progress / self.warmup
        decay = (progress - self.warmup) / (1 - self.warmup)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * decay))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        lr = self.base_lr * self.factor(training_progress(trainer, self.total_steps, self.budget_s))
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr
        pl_module.log("lr", lr, on_step=True, on_epoch=False)


class ProgressiveResize(L.Callback):
    """Progressive resizing: the first ``share`` of the run trains on images at half their size (a quarter of the
    pixels, so about four times the steps per second), the rest at full size, as fast.ai trains."""

    def __init__(self, share: float, total_steps: int, budget_s: float | None) -> None:
        self.share, self.total_steps, self.budget_s = share, total_steps, budget_s

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        pl_module.at_half_size = training_progress(trainer, self.total_steps, self.budget_s) < self.share


class WarmEMA(WeightAveraging):
    """An exponential moving average of the weights (BatchNorm statistics included), validated and saved in
    place of the raw weights (Lightning swaps them in).

    Its decay is the smallest of ``decay``, the warm-up ``(1 + n) / (10 + n)`` after n updates, and
    ``1 - 1 / (SPAN * total_steps)``: the average never reaches back further than the last ``SPAN`` of the run.
    A decay planned for a long run thus cannot leave a run cut short (fewer epochs given by hand) validating
    weights from its early, worse steps."""

    SPAN = 0.05

    def __init__(self, decay: float, total_steps: int) -> None:
        longest = 1 - 1 / max(1.0, self.SPAN * total_steps)

        def average(averaged: torch.Tensor, current: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
            weight = min(decay, longest, (1 + float(count)) / (10 + float(count)))
            return averaged * weight + current * (1 - weight)

        super().__init__(use_buffers=True, avg_fn=average)


class TailAverage(WeightAveraging):
    """Checkpoint averaging: the flat average of the weights (BatchNorm statistics included) after every step of
    the run's last ``share``, validated and saved in place of the raw weights, as stochastic weight averaging
    averages the end of a run. Before that share the average simply follows the weights, so early validations
    score the model as it is.

    Where ``WarmEMA`` weighs recent steps more, this weighs each step of the tail alike; the run's progress is the
    schedule's (``training_progress``), so a time budget places the tail too."""

    def __init__(self, share: float, total_steps: int, budget_s: float | None) -> None:
        self.share, self.total_steps, self.budget_s = share, total_steps, budget_s
        self.tail_steps = 0  # steps averaged so far; saved with the callback's state, so a resume continues

        def average(averaged: torch.Tensor, current: torch.Tensor, _count: torch.Tensor) -> torch.Tensor:
            weight = (self.tail_steps - 1) / self.tail_steps if self.tail_steps else 0.0
            return averaged * weight + current * (1 - weight)

        super().__init__(use_buffers=True, avg_fn=average)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if training_progress(trainer, self.total_steps, self.budget_s) >= 1 - self.share:
            self.tail_steps += 1
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tail_steps": self.tail_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.tail_steps = int(state_dict.get("tail_steps", 0))


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes metrics.csv when it starts; on resume this one keeps the rows up
    to the checkpoint's step (later ones are trained again and logged anew) and appends."""

    def __init__(self, log_dir: str, resume_step: int | None) -> None:
        self._resume_step = resume_step
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        if self._resume_step is None:  # a fresh run: rows of an earlier attempt that never checkpointed
            path.unlink()
            return
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            keys, rows = list(reader.fieldnames or []), [r for r in reader if _step(r) <= self._resume_step]

        def rewrite(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as out:
                writer = csv.DictWriter(out, fieldnames=keys)
                writer.writeheader()
                writer.writerows(rows)

        write_with(path, rewrite)
        self.metrics_keys = keys


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


class ResumingCSVLogger(CSVLogger):
    """``metrics.csv`` that survives a resume: the history before the interruption is kept (see ``_KeepingWriter``)."""

    def __init__(self, *args: Any, resume_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resume_step = resume_step

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self._resume_step)
        return self._experiment


class PatienceFromNow(EarlyStopping):
    """Early stopping whose patience restarts when a run resumes.

    Lightning restores the count of epochs without improvement from the checkpoint, so a stopped
    run extended with ``--more-epochs`` would stop again after one epoch. The best score is kept;
    only the waiting starts over.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.wait_count = 0
        self.stopped_epoch = 0


class EpochImages(L.Callback):
    """After each validation, the same validation images with their reference and the current prediction, as a PNG.

    Watching the masks form, epoch by epoch, shows what a curve does not: a model that learns
    the sector's edge before the cavity, or one whose masks shrink as it overfits.
    """

    def __init__(self, images: np.ndarray, references: np.ndarray, class_names: dict[int, str], out_dir: Path) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images, np.float32))  # (N, C, H, W)
        self.references = np.where(references == IGNORE_LABEL, 0, references)
        self.class_names, self.out_dir = class_names, Path(out_dir)

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        from cardioseg.viz.samples import plot_case_grid

        logits = module(self.images.to(module.device)).float().cpu()
        labels = (logits[:, 0] > 0).numpy().astype(np.uint8) * max(self.class_names) if logits.shape[1] == 1 \
            else logits.argmax(1).numpy().astype(np.uint8)
        epoch = trainer.current_epoch
        plot_case_grid(list(self.images[:, self.images.shape[1] // 2].numpy()), {"reference": list(self.references), f"epoch {epoch}": list(labels)},
                       self.class_names, self.out_dir / f"epoch_{epoch:03d}.png")
