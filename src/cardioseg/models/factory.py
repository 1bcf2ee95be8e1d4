"""Build any registered model from a ``ModelConfig``."""

from __future__ import annotations

from torch import nn

from cardioseg.config import ModelConfig
from cardioseg.models.registry import get_model_entry


def build_model(cfg: ModelConfig) -> nn.Module:
    entry = get_model_entry(cfg.arch)
    kwargs = dict(cfg.options)
    if entry.uses_encoder:
        kwargs.update(encoder=cfg.encoder, encoder_weights=cfg.encoder_weights)
    return entry.factory(in_channels=cfg.in_channels, classes=cfg.classes, **kwargs)


def set_batchnorm_momentum(model: nn.Module, momentum: float) -> int:
    """Give every BatchNorm layer the same running-statistics momentum; returns how many were changed."""
    changed = 0
    for layer in model.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.momentum != momentum:
            layer.momentum = momentum
            changed += 1
    return changed


def slow_batchnorm_layers(model: nn.Module, below: float = 0.05) -> int:
    """How many BatchNorm layers use a running-statistics momentum under ``below`` (TensorFlow-style 0.01)."""
    return sum(1 for layer in model.modules()
               if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.momentum is not None
               and layer.momentum < below)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
