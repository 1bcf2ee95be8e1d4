"""The architectures of the echo study, from segmentation_models_pytorch.

``smp_factory`` makes the factory of one smp decoder; the registry lists each decoder under its
own name. The encoder is a separate choice (``ModelConfig.encoder``). Weights are never
downloaded unless asked for: ``None`` (random initialisation, the default), ``"imagenet"`` (smp's
download, which needs a network), or a local weights file for the encoder (``.safetensors`` or a
weights-only ``.pt``/``.pth``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn

from cardioseg.errors import CheckpointError, ConfigError

STUDY_ENCODERS: tuple[str, ...] = (
    "resnet18", "resnet34", "resnet50", "resnet101",
    "efficientnet-b0", "efficientnet-b1", "efficientnet-b3", "efficientnet-b5", "efficientnet-b7",
    "mobilenet_v2",
)


def build_smp_model(
    smp_arch: str,
    in_channels: int = 1,
    classes: int = 1,
    encoder: str | None = "resnet18",
    encoder_weights: str | None = None,
    **options: object,
) -> nn.Module:
    """Create an smp model; load local encoder weights when ``encoder_weights`` is a file."""
    if encoder is None:
        raise ConfigError(f"architecture {smp_arch} needs an encoder (for example resnet18)")
    if encoder not in smp.encoders.get_encoder_names():
        raise ConfigError(f"unknown encoder {encoder!r}; study encoders: {', '.join(STUDY_ENCODERS)}")
    local_file = encoder_weights not in (None, "imagenet")
    try:
        model = smp.create_model(
            smp_arch,
            encoder_name=encoder,
            encoder_weights=None if local_file else encoder_weights,
            in_channels=in_channels,
            classes=classes,
            **options,
        )
    except (OSError, RuntimeError, ConnectionError) as exc:
        raise ConfigError(
            f"could not get {encoder_weights} weights for {encoder} ({exc.__class__.__name__}); "
            "without a network, pass a local weights file as encoder_weights"
        ) from None
    if local_file:
        load_encoder_weights(model.encoder, Path(str(encoder_weights)))
    return model


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict without executing code: safetensors, or torch.load(weights_only=True)."""
    if not path.is_file():
        raise CheckpointError("encoder weights file not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file, reported by name
        raise CheckpointError(f"not a readable weights file ({exc.__class__.__name__}: {exc})", path) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError("weights file does not hold a state dict", path)
    return state


def fit_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt RGB first-layer weights to ``in_channels`` the way smp does for grey input (sum)."""
    if weight.shape[1] == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * weight.shape[1] / in_channels


def load_encoder_weights(encoder: nn.Module, path: Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Load every tensor of a local file into the encoder; any missing or extra key is an error."""
    state = dict(read_weights_file(path) if state is None else state)
    target = encoder.state_dict()
    for key, value in state.items():
        if key in target and value.ndim == 4 and value.shape[1] != target[key].shape[1]:
            state[key] = fit_first_conv(value, target[key].shape[1])
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    if missing or unexpected:
        raise CheckpointError(
            f"weights do not match the encoder: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})",
            path,
        )
    mismatched = [k for k in target if tuple(state[k].shape) != tuple(target[k].shape)]
    if mismatched:
        raise CheckpointError(f"tensor shapes differ for {mismatched[:3]}", path)
    encoder.load_state_dict(state, strict=True)


FAST_DECODER_CHANNELS = (128, 64, 32, 16, 8)
"""The fast U-Net's decoder: half smp's default widths, 38% fewer FLOPs with a ResNet18 encoder at 128 px."""


def smp_factory(smp_arch: str, **defaults: object) -> Callable[..., nn.Module]:
    """The registry's factory for one smp decoder (``"Unet"``, ``"PSPNet"``, ...): ``build_smp_model`` bound to it.

    ``defaults`` are options of a registered configuration (the fast U-Net's decoder widths); a
    user's ``model.options`` override them.
    """

    def factory(in_channels: int = 1, classes: int = 1, **options: object) -> nn.Module:
        return build_smp_model(smp_arch, in_channels, classes, **{**defaults, **options})

    factory.__name__ = f"smp_{smp_arch.lower()}"
    factory.__qualname__ = factory.__name__
    return factory
