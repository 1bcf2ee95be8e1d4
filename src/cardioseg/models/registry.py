"""The table of every model the project can build: name -> factory, whether it takes an encoder, what it is.

``MODELS`` is an explicit table, like the readers' ``READERS``: adding a model means adding its
factory (in ``smp_models``, ``unet``, ``custom_nets`` or ``baselines``) and one line here, and nothing depends on
which modules happen to have been imported. Each factory takes ``in_channels``, ``classes`` and
the keyword options it understands (``ModelConfig.options``; smp factories also ``encoder`` and
``encoder_weights``) and returns an ``nn.Module`` mapping (B, in_channels, H, W) to
(B, classes, H, W) logits; a 3D network (``spatial_dims`` 3, in ``volumetric``) maps (B, in_channels, D, H, W)
to (B, classes, D, H, W).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cardioseg.errors import ConfigError
from cardioseg.models.baselines import intensity_threshold
from cardioseg.models.custom_nets import (
    ct_unet_doubleconv,
    ct_unet_mfe_cie,
    ct_unet_ra,
    ct_unet_spconv,
    resunet,
    resunet_improved,
)
from cardioseg.models.smp_models import FAST_DECODER_CHANNELS, smp_factory
from cardioseg.models.unet import plain_unet, plain_unet_512
from cardioseg.models.volumetric import segresnet3d, unet3d

Factory = Callable[..., nn.Module]


@dataclass(frozen=True)
class RegisteredModel:
    """One row of ``MODELS``; ``uses_encoder`` tells ``build_model`` and the sweep to pass an encoder."""

    name: str
    factory: Factory
    uses_encoder: bool
    description: str
    spatial_dims: int = 2
    """3 for a network that segments a block of a volume's planes at once"""


MODELS: dict[str, RegisteredModel] = {
    "unet": RegisteredModel("unet", smp_factory("Unet"), True, "segmentation_models_pytorch Unet"),
    "unet_fast": RegisteredModel(
        "unet_fast", smp_factory("Unet", decoder_channels=FAST_DECODER_CHANNELS), True,
        "smp Unet with half-width decoder 128..8: for throughput (U-Net-ResNet18: 1.64 instead of 2.65 GFLOP at 128 px)",
    ),
    "unetplusplus": RegisteredModel(
        "unetplusplus", smp_factory("UnetPlusPlus"), True, "segmentation_models_pytorch UnetPlusPlus"
    ),
    "manet": RegisteredModel("manet", smp_factory("MAnet"), True, "segmentation_models_pytorch MAnet"),
    "linknet": RegisteredModel("linknet", smp_factory("Linknet"), True, "segmentation_models_pytorch Linknet"),
    "fpn": RegisteredModel("fpn", smp_factory("FPN"), True, "segmentation_models_pytorch FPN"),
    "pspnet": RegisteredModel("pspnet", smp_factory("PSPNet"), True, "segmentation_models_pytorch PSPNet"),
    "pan": RegisteredModel("pan", smp_factory("PAN"), True, "segmentation_models_pytorch PAN"),
    "deeplabv3": RegisteredModel("deeplabv3", smp_factory("DeepLabV3"), True, "segmentation_models_pytorch DeepLabV3"),
    "deeplabv3plus": RegisteredModel(
        "deeplabv3plus", smp_factory("DeepLabV3Plus"), True, "segmentation_models_pytorch DeepLabV3Plus"
    ),
    "plain_unet": RegisteredModel(
        "plain_unet", plain_unet, False, "U-Net baseline, widths 32/64/128/256, bilinear upsampling (1.95M params)"
    ),
    "plain_unet_512": RegisteredModel(
        "plain_unet_512", plain_unet_512, False, "U-Net, widths 32 to 512, transposed-conv upsampling (7.76M params)"
    ),
    "resunet": RegisteredModel(
        "resunet", resunet, False, "ResUNet: residual blocks in encoder and decoder, 64..1024 (33.1M params)"
    ),
    "resunet_improved": RegisteredModel(
        "resunet_improved",
        resunet_improved,
        False,
        "ResUNet + Inception bottleneck + attention gates + SE + LeakyReLU, widths 64..1024 (37.0M params)",
    ),
    "ct_unet_doubleconv": RegisteredModel(
        "ct_unet_doubleconv",
        ct_unet_doubleconv,
        False,
        "CT study variant 1 (and 2 with offline augmentation): DoubleConv U-Net 32..512",
    ),
    "ct_unet_spconv": RegisteredModel(
        "ct_unet_spconv", ct_unet_spconv, False, "CT study variant 3: U-Net with SPConv instead of 3x3 convolutions"
    ),
    "ct_unet_ra": RegisteredModel(
        "ct_unet_ra", ct_unet_ra, False, "CT study variant 4: DoubleConv U-Net with residual-attention skips"
    ),
    "ct_unet_mfe_cie": RegisteredModel(
        "ct_unet_mfe_cie", ct_unet_mfe_cie, False, "CT study variant 5: DoubleConv+MFE+CIE encoder, RA skips"
    ),
    "threshold": RegisteredModel(
        "threshold", intensity_threshold, False,
        "classical baseline: one global intensity threshold (2 fitted numbers, no features; train with lr 0.05)",
    ),
    "unet3d": RegisteredModel(
        "unet3d", unet3d, False, "3D (volumes only): MONAI residual U-Net 16..256, sliding window over the planes",
        spatial_dims=3,
    ),
    "segresnet3d": RegisteredModel(
        "segresnet3d", segresnet3d, False, "3D (volumes only): MONAI SegResNet 8..64, sliding window over the planes",
        spatial_dims=3,
    ),
}


def list_models() -> list[str]:
    """Every registered name, sorted (the order of `cardioseg models`)."""
    return sorted(MODELS)


def is_volumetric(name: str) -> bool:
    """Whether the registered network ``name`` segments blocks of planes (3D) rather than single planes."""
    return get_model_entry(name).spatial_dims == 3


def get_model_entry(name: str) -> RegisteredModel:
    """The entry of ``name``; an unknown name is a configuration error that lists the known ones."""
    if name not in MODELS:
        raise ConfigError(f"unknown architecture {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]
