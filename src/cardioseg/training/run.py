"""`cardioseg train`: fit a registered model on a prepared dataset, resumably, within a budget."""

from __future__ import annotations

import logging
import os
import pickle
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar, Timer
from lightning.pytorch.loggers import Logger

from cardioseg.artifacts import RunFiles, read_model_header
from cardioseg.config import Config, PreprocessConfig, TrainConfig, load_config, parse_duration
from cardioseg.data.prepared import PreparedDataset, context_rows
from cardioseg.errors import CheckpointError, ConfigError
from cardioseg.fileio import folder_lock, write_text
from cardioseg.models.checkpoint import ModelBundle, load_bundle, save_bundle
from cardioseg.models.factory import build_model
from cardioseg.models.registry import get_model_entry, is_volumetric
from cardioseg.models.volumetric import DOWNSAMPLING
from cardioseg.plan import Plan, Recipe
from cardioseg.planning.apply import apply_recipe, read_recipe, recipe_for, write_recipe
from cardioseg.runtime import resolve_precision, set_threads
from cardioseg.training.batchnorm import set_batchnorm_momentum, slow_batchnorm_layers
from cardioseg.training.callbacks import (
    AtomicCheckpointIO,
    EpochImages,
    PatienceFromNow,
    ProgressiveResize,
    ResumingCSVLogger,
    TailAverage,
    WarmEMA,
    WarmupCosine,
)
from cardioseg.training.datamodule import SegmentationData
from cardioseg.training.module import SegmentationModule


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    best_val_dice: float | None
    epochs_run: int
    train_seconds: float
    precision: str
    steps: int = 0
    already_finished: bool = False
    arch: str = ""
    writes_model: bool = True
    """False in the other processes of a distributed run: only the first one writes (and may change) the model"""
    skipped_steps: int = 0
    """optimiser steps skipped because their gradient was not finite"""


def training_config(cfg: Config, prepared: PreparedDataset) -> Config:
    """``cfg`` with the prepared dataset's plan applied: the network's channels, its preprocessing.

    2.5D input (``model.context_slices``) needs volumes: a 2D dataset's images have no neighbours.

    The plan was fixed by `prepare`; preprocessing settings that differ from it (``--set
    preprocess.size=...`` at train time) would be silently ignored, so they are refused.
    """
    plan = prepared.plan
    if cfg.preprocess != PreprocessConfig() and cfg.preprocess != plan.preprocess:
        changed = sorted(k for k, v in cfg.preprocess.model_dump().items() if v != plan.preprocess.model_dump()[k])
        raise ConfigError(
            f"preprocess.{', preprocess.'.join(changed)} differ(s) from the plan of {prepared.root} "
            "(`cardioseg plan show` prints it); the preprocessing is fixed when the data is prepared: "
            "run `cardioseg prepare` again with these settings, or drop them"
        )
    context = cfg.model.context_slices
    if context and not plan.is_3d:
        raise ConfigError(f"model.context_slices={context} gives a network the neighbouring planes of a volume, and "
                          f"{prepared.root} holds 2D images; set it to 0", prepared.root)
    if is_volumetric(cfg.model.arch):
        _check_3d(cfg, prepared)
    if (plan.preprocess.crop == "foreground") != (cfg.train.coarse_model is not None):
        raise ConfigError("a two-stage model: data prepared with preprocess.crop=foreground trains the second stage, "
                          "and needs train.coarse_model (the trained first stage whose masks place its crop); "
                          "train.coarse_model goes with such data only", prepared.root)
    cfg = cfg.model_copy(deep=True)
    cfg.model.classes = plan.out_channels
    cfg.model.in_channels = plan.in_channels * (2 * context + 1)
    cfg.preprocess = plan.preprocess
    return cfg


def _check_3d(cfg: Config, prepared: PreparedDataset) -> None:
    """What a 3D network cannot do, refused before anything is written."""
    arch = cfg.model.arch
    if not prepared.plan.is_3d:
        raise ConfigError(f"{arch} is a 3D network and {prepared.root} holds 2D images: choose a 2D architecture",
                          prepared.root)
    if cfg.model.context_slices:
        raise ConfigError(f"{arch} sees whole blocks of planes already: set model.context_slices to 0")
    if cfg.train.augment.preset != "none" or cfg.train.augment.extra:
        raise ConfigError(f"{arch} trains on blocks of planes, and the augmentations are 2D: set "
                          "train.augment.preset to none (and leave train.augment.extra empty)")
    if cfg.train.epoch_images:
        raise ConfigError(f"train.epoch_images draws single planes through a 2D network; {arch} is 3D: set it to 0")
    if cfg.train.progressive_resize:
        raise ConfigError(f"train.progressive_resize halves 2D images; {arch} is 3D: set it to 0")
    if any(size % DOWNSAMPLING for size in prepared.plan.preprocess.size):
        raise ConfigError(f"{arch} halves its input four times: the input size {prepared.plan.preprocess.size} must "
                          f"be a multiple of {DOWNSAMPLING} (prepare with --size 64, 96, 128...)", prepared.root)


def model_plan(cfg: Config, prepared: PreparedDataset, recipe: Recipe | None) -> Plan:
    """The plan a trained model carries: its data's, with the input it was trained on and how it was planned."""
    volumetric = is_volumetric(cfg.model.arch)
    return prepared.plan.model_copy(update={
        "in_channels": cfg.model.in_channels, "context_slices": cfg.model.context_slices, "recipe": recipe,
        "spatial_dims": 3 if volumetric else 2, "window_planes": cfg.model.window_planes if volumetric else 0})


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # the run folder is ours (resume and the lock rely on it): Lightning's hint about it is noise here
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    # val_dice is reduced by hand (sum and count over processes), so Lightning's sync hint does not apply
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")


def train(cfg: Config, progress: bool = True) -> TrainResult:
    """Train, resume the run in ``cfg.train.run_dir`` if it was interrupted, or leave a finished one alone.

    One process per run folder (a lock): two would delete each other's checkpoint temporaries and
    interleave metrics.csv. A finished run is never retrained by running the command again; it is
    extended only when ``train.more_epochs`` asks for it.
    """
    _quiet_lightning()
    get_model_entry(cfg.model.arch)  # an unknown name fails before anything is written
    files = RunFiles(Path(cfg.train.run_dir))
    with folder_lock(files.root, "cardioseg train") if _launching_process() else nullcontext():
        if files.model.is_file():
            finished = _finished_run(files)
            if not cfg.train.more_epochs:
                return finished
            cfg = _extended(cfg, files, finished)
        elif cfg.train.more_epochs:
            raise ConfigError("--more-epochs extends a finished run, and this folder holds none; run the command "
                              "without it to train (or to resume an interrupted run)", files.root)
        return _train(cfg, files, progress)


def _launching_process() -> bool:
    """The process the user started, not one of the ranks Lightning's DDP launcher runs the command again in
    (they find the folder locked by their own launcher)."""
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def _finished_run(files: RunFiles) -> TrainResult:
    """What a finished run's model file says about it (its header's ``extra``; older files lack some of it)."""
    header = read_model_header(files.model)
    extra = header.get("extra", {})
    try:
        best = extra.get("best_val_dice")
        return TrainResult(files.root, files.model, None if best is None else float(best),
                           int(extra.get("epochs_run") or 0), float(extra.get("train_seconds") or 0.0),
                           str(extra.get("precision", "?")), int(extra.get("steps") or 0), already_finished=True,
                           arch=str(header["model"].get("arch", "")))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"malformed training record in the model header ({exc})", files.model) from None


def _extended(cfg: Config, files: RunFiles, finished: TrainResult) -> Config:
    """The finished run's own configuration, ``more_epochs`` beyond the epochs its last checkpoint holds,
    without the spent time budget. The saved configuration keeps ``more_epochs`` 0: reusing it never
    extends the run again by itself."""
    state = _checkpoint_state(files.last_checkpoint)
    if state is None:
        raise CheckpointError("cannot extend this run: its last checkpoint (checkpoints/last.ckpt) is gone", files.root)
    saved = load_config(files.config) if files.config.is_file() else cfg.model_copy(deep=True)
    saved.train.epochs = max(finished.epochs_run, int(state.get("epoch", 0))) + cfg.train.more_epochs
    saved.train.time_budget = None  # the Timer's elapsed time is restored from the checkpoint: it would stop at once
    saved.train.run_dir = files.root
    saved.train.more_epochs = 0
    return saved


def _checkpoint_state(path: Path) -> dict[str, Any] | None:
    """The Lightning checkpoint a resume starts from (its counters), or None for a fresh run."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        int(state["global_step"]), int(state["epoch"])
        return state
    except (pickle.UnpicklingError, RuntimeError, KeyError, TypeError, ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"cannot resume from this checkpoint ({str(exc)[:200]}); delete it to start afresh",
                              path) from None


def _planned(cfg: Config, files: RunFiles, progress: bool) -> tuple[Config, Recipe | None]:
    """``cfg`` with the planned recipe filling what it does not set (``train.plan``); a resumed run follows the
    recipe it started with."""
    if not cfg.train.plan:
        return cfg, None
    recipe = read_recipe(files.recipe) if files.recipe.is_file() and files.last_checkpoint.is_file() else \
        recipe_for(cfg)
    files.root.mkdir(parents=True, exist_ok=True)
    write_recipe(recipe, files.recipe)
    return apply_recipe(cfg, recipe, progress), recipe


def _train(cfg: Config, files: RunFiles, progress: bool) -> TrainResult:
    set_threads(cfg.train.threads)
    cfg, recipe = _planned(cfg, files, progress)
    tc = cfg.train
    prepared = PreparedDataset(cfg.data.prepared)
    cfg = training_config(cfg, prepared)
    coarse = _first_stage(tc.coarse_model, prepared)  # checked before any step is spent
    run_dir, ckpt_dir = files.root, files.checkpoints
    resumed = _checkpoint_state(files.last_checkpoint)
    resume_step = None if resumed is None else int(resumed["global_step"])
    del resumed  # the weights it holds are loaded again by Lightning
    for stale in ckpt_dir.glob(".*.tmp"):  # left by a kill during a checkpoint write; the target is intact
        stale.unlink()
    write_text(files.config, cfg.to_yaml())

    L.seed_everything(tc.seed, workers=True, verbose=False)
    binary = prepared.plan.binary
    data = SegmentationData(cfg, prepared, binary)
    world = tc.devices * tc.num_nodes
    model = build_model(cfg.model)
    if tc.bn_momentum is not None:
        set_batchnorm_momentum(model, tc.bn_momentum)
    elif slow := slow_batchnorm_layers(model):
        warnings.warn(f"{slow} BatchNorm layers update their running statistics with momentum < 0.05 (smp's "
                      "efficientnet-b* encoders); in a short run they lag so far behind that evaluation can fail "
                      "completely: set train.bn_momentum=0.1", stacklevel=2)
    module = SegmentationModule(model, cfg.model, tc)

    budget_s = parse_duration(tc.time_budget) if tc.time_budget else None
    steps_per_epoch = data.steps_per_epoch(world)
    mode = "max" if tc.monitor == "val_dice" else "min"
    callbacks: list[L.Callback] = [
        ModelCheckpoint(dirpath=ckpt_dir, filename=files.best_checkpoint.stem, monitor=tc.monitor, mode=mode,
                        save_top_k=1, enable_version_counter=False),
        ModelCheckpoint(dirpath=ckpt_dir, filename=files.last_checkpoint.stem, every_n_train_steps=tc.checkpoint_every_n_steps,
                        save_top_k=1, monitor=None, enable_version_counter=False, save_on_train_epoch_end=True),
        Timer(duration=budget_s and {"seconds": budget_s}, interval="step"),
    ]
    if tc.scheduler == "cosine":
        callbacks.append(WarmupCosine(tc.lr, tc.epochs * steps_per_epoch, budget_s))
    if tc.progressive_resize:
        callbacks.append(ProgressiveResize(tc.progressive_resize, tc.epochs * steps_per_epoch, budget_s))
    if tc.early_stopping_patience:
        callbacks.append(PatienceFromNow(tc.monitor, mode=mode, patience=tc.early_stopping_patience))
    # a weight average is validated, and saved into every checkpoint, in place of the weights (Lightning swaps it in)
    if tc.average_last:
        callbacks.append(TailAverage(tc.average_last, tc.epochs * steps_per_epoch, budget_s))
    elif tc.ema_decay:
        callbacks.append(WarmEMA(tc.ema_decay, tc.epochs * steps_per_epoch))
    if tc.epoch_images:
        callbacks.append(_epoch_images(prepared, tc.epoch_images, files, cfg.model.context_slices))
    if progress:
        callbacks.append(RichProgressBar(leave=True))
    precision = resolve_precision(tc.precision)
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=tc.epochs,
        limit_train_batches=steps_per_epoch if tc.batches_per_epoch else 1.0,
        accelerator="auto",
        devices=tc.devices,
        num_nodes=tc.num_nodes,
        strategy="ddp" if world > 1 else "auto",
        use_distributed_sampler=False,  # SegmentationData shards itself, without padding validation
        precision=precision,
        deterministic=tc.deterministic,
        callbacks=callbacks,
        logger=_loggers(tc, files, resume_step),
        plugins=[AtomicCheckpointIO()],
        check_val_every_n_epoch=tc.val_every_n_epochs,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=max(1, min(20, steps_per_epoch)),
        num_sanity_val_steps=0,
    )
    last = files.last_checkpoint
    started = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.is_file() else None)
    elapsed = time.perf_counter() - started
    trainer.save_checkpoint(last)  # the finished state, which `--more-epochs` continues from
    if not trainer.is_global_zero:
        return TrainResult(run_dir, files.model, None, trainer.current_epoch, elapsed, precision,
                           trainer.global_step, writes_model=False)

    best_path = files.best_checkpoint
    best_score = _best_val_dice(files, tc.monitor, callbacks[0].best_model_score)
    if best_path.is_file():
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    elif trainer.current_epoch == 0 and trainer.global_step == 0:
        raise CheckpointError("training stopped before any step; nothing to save", run_dir)
    bundle = ModelBundle(
        coarse=coarse,
        model=module.model.to(memory_format=torch.contiguous_format).float().eval(),
        model_cfg=cfg.model,
        plan=model_plan(cfg, prepared, recipe),
        extra={"prepared": str(prepared.root), "best_val_dice": best_score, "kept_by": tc.monitor,
               "epochs_run": trainer.current_epoch, "steps": trainer.global_step, "precision": precision,
               "train_seconds": round(elapsed, 1)},
    )
    model_path = save_bundle(bundle, files.model)
    from cardioseg.viz.plots import plot_training_curves

    plot_training_curves(files.metrics, files.curves)
    return TrainResult(run_dir, model_path, best_score, trainer.current_epoch, elapsed, precision, trainer.global_step,
                       arch=cfg.model.arch, skipped_steps=module.skipped_steps)


def _first_stage(path: Path | None, prepared: PreparedDataset) -> ModelBundle | None:
    """A two-stage model's first stage, checked against the second's data: same task, same kind of input."""
    if path is None:
        return None
    coarse = load_bundle(path)
    plan = prepared.plan
    if coarse.coarse is not None or coarse.plan.preprocess.crop == "foreground":
        raise ConfigError("the first stage of a two-stage model sees the whole image: give a model trained without "
                          "the foreground crop", path)
    if coarse.plan.is_3d != plan.is_3d or (plan.is_3d and coarse.plan.slice_axis != plan.slice_axis) or \
            coarse.plan.orientation != plan.orientation or coarse.plan.label_map != plan.label_map:
        raise ConfigError(f"this first stage was trained on other data than {prepared.root} (volumes or images, "
                          "slice axis, orientation and label map must match)", path)
    return coarse


def _epoch_images(prepared: PreparedDataset, count: int, files: RunFiles, context: int) -> EpochImages:
    """The callback drawing ``count`` validation images (evenly spread over the split, so several patients)."""
    rows = prepared.indices("val")
    if not len(rows):
        raise ConfigError("train.epoch_images draws validation images, but the prepared dataset has no val split")
    if prepared.is_3d:  # the slices with the most reference foreground show more than the apex or base
        picked = np.sort(sorted(rows, key=lambda r: -int((prepared.labels[r] > 0).sum()))[:count])
    else:
        picked = rows[np.linspace(0, len(rows) - 1, min(count, len(rows))).round().astype(int)]
    images = prepared.images[context_rows(prepared.manifest, picked, context)]  # (N, 2 * context + 1, H, W)
    return EpochImages(images, prepared.labels[picked], prepared.class_names, files.epoch_images)


def _loggers(tc: TrainConfig, files: RunFiles, resume_step: int | None) -> list[Logger]:
    """metrics.csv always (resumed runs append to it); TensorBoard event files too when asked for."""
    loggers: list[Logger] = [ResumingCSVLogger(files.root, name="", version=files.logs.name, resume_step=resume_step)]
    if tc.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(files.root, name="", version=files.tensorboard.name, default_hp_metric=False))
    return loggers


def _best_val_dice(files: RunFiles, monitor: str, best_score: torch.Tensor | None) -> float | None:
    """The validation Dice of the kept checkpoint: its score, or, when kept by lowest loss, the Dice logged with that loss."""
    if best_score is None:
        return None
    if monitor == "val_dice":
        return float(best_score)
    import pandas as pd

    logged = pd.read_csv(files.metrics).dropna(subset=["val_loss", "val_dice"])
    return float(logged.loc[logged.val_loss.idxmin(), "val_dice"]) if len(logged) else None

