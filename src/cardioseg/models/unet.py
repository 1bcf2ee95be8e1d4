"""The plain U-Net baseline and the U-shaped skeleton the custom networks are built on.

``UNet`` is U-Net (Ronneberger et al. 2015) with pluggable stage blocks: ``depth`` resolution
levels of widths ``base * 2**i``, so ``depth - 1`` down-samplings; the deepest level is the
bottleneck. Inputs of any height and width are zero-padded at the bottom and right up to a
multiple of ``2 ** (depth - 1)`` and the logits are cropped back, so the output is exactly
(B, classes, H, W).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cardioseg.errors import ConfigError
from cardioseg.models.blocks import NORMS, DoubleConv, Norm

Upsampling = Literal["bilinear", "transpose"]
BlockFactory = Callable[[int, int], nn.Module]
"""(in_channels, out_channels) -> a block keeping the spatial size."""
EncoderFactory = Callable[[int, int, bool], nn.Module]
"""(in_channels, out_channels, downsample) -> an encoder stage; halves H and W when downsample."""
SkipFactory = Callable[[int, int], nn.Module]
"""(skip_channels, gate_channels) -> a module called as ``module(skip, gate)`` returning new skip features."""


def pooled(block: BlockFactory) -> EncoderFactory:
    """An encoder factory that max-pools (2x2) before ``block`` when a stage down-samples."""

    def make(in_channels: int, out_channels: int, downsample: bool) -> nn.Module:
        stage = block(in_channels, out_channels)
        return nn.Sequential(nn.MaxPool2d(2), stage) if downsample else stage

    return make


def stage_widths(base: int, depth: int) -> list[int]:
    """Channel widths ``base * 2**i`` of the ``depth`` resolution levels, checked."""
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        raise ConfigError(f"model option base must be a positive integer, got {base!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
        raise ConfigError(f"model option depth must be an integer >= 2, got {depth!r}")
    return [base * 2**i for i in range(depth)]


def double_conv_stages(norm: Norm) -> tuple[EncoderFactory, BlockFactory]:
    """The (encoder, decoder) factories of DoubleConv stages with ``norm``, checked."""
    if norm not in NORMS:
        raise ConfigError(f"model option norm must be 'batch' or 'none', got {norm!r}")
    block = functools.partial(DoubleConv, norm=norm)
    return pooled(block), block


class UNet(nn.Module):
    """U-shaped encoder-decoder with skip connections and pluggable blocks.

    Encoder level i applies ``encoder(in, widths[i], downsample=i > 0)``; ``bottleneck`` (default
    identity) refines the deepest features. Each decoder level upsamples the deeper features
    (bilinear, keeping their width, or a 2x2 transposed conv to ``widths[i]``), optionally passes
    the skip through ``skip(widths[i], widths[i + 1])`` together with the deeper (coarser) decoder
    features as gating signal, concatenates [skip, upsampled] and applies ``decoder``. A 1x1
    conv gives the logits.
    """

    def __init__(
        self,
        in_channels: int,
        classes: int,
        widths: Sequence[int],
        *,
        encoder: EncoderFactory = pooled(DoubleConv),  # noqa: B008 - a pure factory, safe to share
        decoder: BlockFactory = DoubleConv,
        skip: SkipFactory | None = None,
        bottleneck: nn.Module | None = None,
        upsampling: Upsampling = "bilinear",
    ) -> None:
        super().__init__()
        if upsampling not in ("bilinear", "transpose"):
            raise ConfigError(f"model option upsampling must be 'bilinear' or 'transpose', got {upsampling!r}")
        widths = list(widths)
        self.size_multiple = 2 ** (len(widths) - 1)
        inputs = [in_channels, *widths[:-1]]
        self.encoder = nn.ModuleList(encoder(c_in, c_out, i > 0) for i, (c_in, c_out) in enumerate(zip(inputs, widths)))
        self.bottleneck = bottleneck if bottleneck is not None else nn.Identity()
        levels = range(len(widths) - 2, -1, -1)  # decoder order: deepest skip first
        if upsampling == "bilinear":
            self.ups = nn.ModuleList(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) for _ in levels)
            up_widths = [widths[i + 1] for i in levels]
        else:
            self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in levels)
            up_widths = [widths[i] for i in levels]
        self.skips = nn.ModuleList(skip(widths[i], widths[i + 1]) for i in levels) if skip is not None else None
        self.decoder = nn.ModuleList(decoder(widths[i] + up, widths[i]) for i, up in zip(levels, up_widths))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % self.size_multiple, 0, -height % self.size_multiple))
        features = []
        for stage in self.encoder:
            x = stage(x)
            features.append(x)
        x = self.bottleneck(features.pop())
        for level, (up, block, skip) in enumerate(zip(self.ups, self.decoder, reversed(features))):
            if self.skips is not None:
                skip = self.skips[level](skip, x)
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.head(x)[..., :height, :width]


def plain_unet(
    in_channels: int = 1,
    classes: int = 1,
    *,
    base: int = 32,
    depth: int = 4,
    upsampling: Upsampling = "bilinear",
    norm: Norm = "batch",
) -> nn.Module:
    """Plain U-Net baseline: DoubleConv stages with BatchNorm + ReLU, max-pool down-sampling.

    Options: ``base`` (32) width of the first level; ``depth`` (4) resolution levels, i.e. widths
    32/64/128/256 and three 2x down-samplings; ``upsampling`` ("bilinear", keeps the deeper width
    and lets the DoubleConv reduce it, or "transpose", a 2x2 transposed conv to the skip width);
    ``norm`` ("batch", or "none": no BatchNorm, biased convolutions, DC(a, c) = 9ac + 9c^2 + 2c).

    Parameters at the defaults (in_channels=1, classes=1): 1,947,713, from DC(a, c) =
    9ac + 9c^2 + 4c (two bias-free 3x3 convs, two BatchNorms):
    encoder DC(1,32) + DC(32,64) + DC(64,128) + DC(128,256) = 1,172,640;
    decoder DC(256+128,128) + DC(128+64,64) + DC(64+32,32) = 775,040; 1x1 head 32 + 1 = 33.
    """
    encoder, decoder = double_conv_stages(norm)
    return UNet(
        in_channels, classes, stage_widths(base, depth), encoder=encoder, decoder=decoder, upsampling=upsampling
    )


def plain_unet_512(in_channels: int = 1, classes: int = 1, *, base: int = 32, norm: Norm = "batch") -> nn.Module:
    """The classic U-Net layout at half width: five levels 32..512, four down-samplings, 2x2
    transposed-conv upsampling, DoubleConv stages with BatchNorm + ReLU. Options: ``base`` (32);
    ``norm`` ("batch", or "none" for the LV-on-DICOM-MRI study's U-Net 32-512 without BatchNorm).

    Parameters at the defaults: 7,762,465 (encoder 4,713,632; four transposed convs 4 w_{i+1} w_i + w_i
    = 696,800; decoder DC(2w, w) = 2,352,000; head 33); ``norm="none"``: 7,759,521 (each of the 18
    BatchNorms' 2c parameters gives way to one conv bias of c).
    """
    encoder, decoder = double_conv_stages(norm)
    return UNet(in_channels, classes, stage_widths(base, 5), encoder=encoder, decoder=decoder, upsampling="transpose")
