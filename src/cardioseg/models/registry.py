"""One explicit registry of model factories, in the manner of timm's ``@register_model``.

Each factory takes the keyword arguments of ``ModelSpec`` that it understands and returns an
``nn.Module`` mapping (B, in_channels, H, W) to (B, classes, H, W) logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cardioseg.errors import ConfigError

Factory = Callable[..., nn.Module]


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    factory: Factory
    uses_encoder: bool
    description: str


_REGISTRY: dict[str, RegisteredModel] = {}


def register_model(name: str, *, uses_encoder: bool = False, description: str = "") -> Callable[[Factory], Factory]:
    """Decorator adding a factory to the registry under ``name``."""

    def decorator(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = RegisteredModel(name, factory, uses_encoder, description or (factory.__doc__ or "").strip())
        return factory

    return decorator


def _ensure_loaded() -> None:
    # Importing the model modules runs their @register_model decorators.
    from cardioseg.models import custom_nets, smp_models, unet  # noqa: F401


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_model_entry(name: str) -> RegisteredModel:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
