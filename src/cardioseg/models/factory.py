"""Build any registered model from a ``ModelConfig``."""

from __future__ import annotations

import inspect

from torch import nn

from cardioseg.config import ModelConfig
from cardioseg.errors import ConfigError
from cardioseg.models.registry import get_model_entry


def build_model(cfg: ModelConfig) -> nn.Module:
    """The network of ``cfg``; only factories that use an encoder are given ``encoder``/``encoder_weights``."""
    entry = get_model_entry(cfg.arch)
    kwargs = dict(cfg.options)
    if entry.uses_encoder:
        kwargs.update(encoder=cfg.encoder, encoder_weights=cfg.encoder_weights)
    _check_options(cfg.arch, entry.factory, kwargs)
    return entry.factory(in_channels=cfg.in_channels, classes=cfg.classes, **kwargs)


def _check_options(arch: str, factory: object, options: dict[str, object]) -> None:
    """A misspelt ``model.options`` key is a ConfigError naming the options the model takes, not a TypeError."""
    parameters = inspect.signature(factory).parameters  # type: ignore[arg-type]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # the factory passes options on (smp): the library checks them
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        known = sorted(set(parameters) - {"in_channels", "classes", "encoder", "encoder_weights"})
        raise ConfigError(f"{arch} has no option(s) {', '.join(unknown)}; it takes: {', '.join(known) or 'none'}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
