"""`cardioseg train`: fit a registered model on a prepared dataset, resumably, within a budget."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar, Timer
from lightning.pytorch.loggers import CSVLogger

from cardioseg.config import Config, parse_duration
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import CheckpointError
from cardioseg.fileio import write_text
from cardioseg.models.checkpoint import ModelBundle, save_bundle
from cardioseg.models.factory import build_model
from cardioseg.models.registry import get_model_entry
from cardioseg.training.batchnorm import set_batchnorm_momentum, slow_batchnorm_layers
from cardioseg.training.callbacks import AtomicCheckpointIO, WarmupCosine
from cardioseg.training.datamodule import SegmentationData
from cardioseg.training.module import SegmentationModule

MODEL_FILE = "model.safetensors"


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    best_val_dice: float | None
    epochs_run: int
    train_seconds: float
    precision: str
    steps: int = 0


def cpu_supports_bf16() -> bool:
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(choice: str) -> str:
    """bf16 autocast where the hardware has it (CPU AVX512-BF16/AMX, or a GPU), else fp32."""
    if choice == "32":
        return "32-true"
    if choice == "bf16":
        return "bf16-mixed"
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_supports_bf16() else "32-true"


def classes_for(prepared: PreparedDataset) -> int:
    """1 output channel for one foreground class (sigmoid), else K+1 (softmax)."""
    n_foreground = len([c for c in prepared.class_ids if c != 0])
    return 1 if n_foreground <= 1 else n_foreground + 1


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # val_dice is reduced by hand (sum and count over processes), so Lightning's sync hint does not apply
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")


def train(cfg: Config, progress: bool = True) -> TrainResult:
    """Train, or resume the run in ``cfg.train.run_dir`` if it was interrupted."""
    _quiet_lightning()
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    get_model_entry(cfg.model.arch)  # an unknown name fails before anything is written
    prepared = PreparedDataset(cfg.data.prepared)
    cfg = cfg.model_copy(deep=True)
    cfg.model.classes = classes_for(prepared)
    cfg.preprocess = prepared.preprocess
    run_dir = Path(tc.run_dir)
    ckpt_dir = run_dir / "checkpoints"
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ckpt_dir.glob(".*.tmp"):  # left by a kill during a checkpoint write; the target is intact
        stale.unlink()
    write_text(run_dir / "config.yaml", cfg.to_yaml())

    L.seed_everything(tc.seed, workers=True, verbose=False)
    binary = cfg.model.classes == 1
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
    callbacks: list[L.Callback] = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_dice", mode="max", save_top_k=1,
                        enable_version_counter=False),
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", every_n_train_steps=tc.checkpoint_every_n_steps,
                        save_top_k=1, monitor=None, enable_version_counter=False, save_on_train_epoch_end=True),
        Timer(duration=budget_s and {"seconds": budget_s}, interval="step"),
    ]
    if tc.scheduler == "cosine":
        callbacks.append(WarmupCosine(tc.lr, tc.epochs * steps_per_epoch, budget_s))
    if tc.early_stopping_patience:
        callbacks.append(EarlyStopping("val_dice", mode="max", patience=tc.early_stopping_patience))
    if progress:
        callbacks.append(RichProgressBar(leave=True))
    precision = resolve_precision(tc.precision)
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=tc.epochs,
        accelerator="auto",
        devices=tc.devices,
        num_nodes=tc.num_nodes,
        strategy="ddp" if world > 1 else "auto",
        use_distributed_sampler=False,  # SegmentationData shards itself, without padding validation
        precision=precision,
        deterministic=tc.deterministic,
        callbacks=callbacks,
        logger=CSVLogger(run_dir, name="", version="logs"),
        plugins=[AtomicCheckpointIO()],
        check_val_every_n_epoch=tc.val_every_n_epochs,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=max(1, min(20, steps_per_epoch)),
        num_sanity_val_steps=0,
    )
    last = ckpt_dir / "last.ckpt"
    started = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.is_file() else None)
    elapsed = time.perf_counter() - started
    if not trainer.is_global_zero:
        return TrainResult(run_dir, run_dir / MODEL_FILE, None, trainer.current_epoch, elapsed, precision,
                           trainer.global_step)

    best_path = ckpt_dir / "best.ckpt"
    best_score = callbacks[0].best_model_score
    if best_path.is_file():
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    elif trainer.current_epoch == 0 and trainer.global_step == 0:
        raise CheckpointError("training stopped before any step; nothing to save", run_dir)
    bundle = ModelBundle(
        model=module.model.to(memory_format=torch.contiguous_format).float().eval(),
        model_cfg=cfg.model,
        preprocess=cfg.preprocess,
        orientation_fix=prepared.info["orientation_fix"],
        labels={int(k): v for k, v in prepared.info["labels"].items()} if prepared.info.get("labels") else None,
        class_names=prepared.class_names,
        extra={"prepared": str(prepared.root), "best_val_dice": float(best_score) if best_score is not None else None,
               "layout": prepared.info["layout"], "slice_axis": prepared.info["slice_axis"]},
    )
    model_path = save_bundle(bundle, run_dir / MODEL_FILE)
    from cardioseg.viz.plots import plot_training_curves

    plot_training_curves(run_dir / "logs" / "metrics.csv", run_dir / "training_curves.png")
    return TrainResult(run_dir, model_path, float(best_score) if best_score is not None else None,
                       trainer.current_epoch, elapsed, precision, trainer.global_step)

