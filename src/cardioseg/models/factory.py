"""Build any registered model from a ``ModelConfig``."""

from __future__ import annotations

from torch import nn

from cardioseg.config import ModelConfig
from cardioseg.models.registry import get_model_entry


def build_model(cfg: ModelConfig) -> nn.Module:
    """The network of ``cfg``; only factories that use an encoder are given ``encoder``/``encoder_weights``."""
    entry = get_model_entry(cfg.arch)
    kwargs = dict(cfg.options)
    if entry.uses_encoder:
        kwargs.update(encoder=cfg.encoder, encoder_weights=cfg.encoder_weights)
    return entry.factory(in_channels=cfg.in_channels, classes=cfg.classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
