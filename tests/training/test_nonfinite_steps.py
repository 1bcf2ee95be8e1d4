"""A step whose gradient is not finite (a rare bf16 overflow) is skipped instead of turning every weight into NaN;
a run whose gradients stay non-finite stops with a clear error."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from cardioseg.config import ModelConfig, TrainConfig, load_config
from cardioseg.errors import TrainingError
from cardioseg.models.factory import build_model
from cardioseg.training import module as module_file
from cardioseg.training.module import MAX_NONFINITE_STEPS, SegmentationModule
from cardioseg.training.run import train


def _module_with_gradients(value: float) -> tuple[SegmentationModule, torch.optim.Optimizer]:
    cfg = ModelConfig(arch="plain_unet", encoder=None, options={"base": 4, "depth": 2})
    module = SegmentationModule(build_model(cfg), cfg, TrainConfig())
    for parameter in module.parameters():
        parameter.grad = torch.ones_like(parameter)
    next(module.parameters()).grad[0] = value  # one entry of one gradient
    return module, torch.optim.AdamW(module.parameters(), lr=1e-3)


def test_a_nan_or_inf_gradient_skips_the_step_and_a_finite_one_is_kept() -> None:
    for bad in (float("nan"), float("inf")):
        module, optimizer = _module_with_gradients(bad)
        before = [p.detach().clone() for p in module.parameters()]
        module.on_before_optimizer_step(optimizer)
        optimizer.step()
        assert all(p.grad is None for p in module.parameters()) and module.skipped_steps == 1
        assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    module, optimizer = _module_with_gradients(2.0)
    module.on_before_optimizer_step(optimizer)
    assert all(p.grad is not None for p in module.parameters()) and module.skipped_steps == 0


def test_training_stops_with_a_clear_error_after_too_many_non_finite_steps_in_a_row() -> None:
    module, optimizer = _module_with_gradients(float("nan"))
    grads = [p.grad for p in module.parameters()]
    for _ in range(MAX_NONFINITE_STEPS - 1):
        module.on_before_optimizer_step(optimizer)
        for parameter, grad in zip(module.parameters(), grads, strict=True):
            parameter.grad = grad
    fine, _ = _module_with_gradients(1.0)  # a finite step in between starts the count again
    for parameter, grad in zip(module.parameters(), fine.parameters(), strict=True):
        parameter.grad = grad.grad
    module.on_before_optimizer_step(optimizer)
    assert module.skipped_steps == MAX_NONFINITE_STEPS - 1
    for _ in range(MAX_NONFINITE_STEPS - 1):
        for parameter, grad in zip(module.parameters(), grads, strict=True):
            parameter.grad = grad
        module.on_before_optimizer_step(optimizer)
    for parameter, grad in zip(module.parameters(), grads, strict=True):
        parameter.grad = grad
    with pytest.raises(TrainingError, match=f"not finite for {MAX_NONFINITE_STEPS} optimiser steps in a row"):
        module.on_before_optimizer_step(optimizer)


def test_a_real_run_with_two_nan_losses_keeps_finite_weights_and_counts_them(
        camus64: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps 2 and 4 of 8 get a NaN loss; without the skip, the first would make every weight NaN."""
    real_build = module_file.build_loss
    calls = {"training": 0}

    def build_loss_with_nans(train_cfg: TrainConfig, binary: bool):
        loss = real_build(train_cfg, binary)

        def poisoned(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            value = loss(logits, target)
            if torch.is_grad_enabled():  # a training step, not validation
                calls["training"] += 1
                if calls["training"] in (2, 4):
                    return value * float("nan")
            return value

        return poisoned

    monkeypatch.setattr(module_file, "build_loss", build_loss_with_nans)
    cfg = load_config(overrides={
        "data.prepared": camus64, "train.run_dir": tmp_path / "run", "model.arch": "unet", "model.encoder": "resnet18",
        "train.epochs": 1, "train.batches_per_epoch": 8, "train.batch_size": 8, "train.num_workers": 0,
        "train.plan": False, "train.ema_decay": None})
    result = train(cfg, progress=False)
    assert result.skipped_steps == 2 and result.steps == 8
    weights = load_file(result.model_path)
    assert all(torch.isfinite(w.float()).all() for w in weights.values())
    assert result.best_val_dice is not None and result.best_val_dice == result.best_val_dice  # not NaN
    logged = pd.read_csv(result.run_dir / "logs" / "metrics.csv")
    assert logged.skipped_steps.dropna().iloc[-1] == 2 and logged.train_loss_epoch.dropna().notna().all()
