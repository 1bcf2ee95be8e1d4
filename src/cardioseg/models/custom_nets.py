"""Hand-written segmentation networks from the literature, all on the ``UNet`` skeleton.

ResUNet family (echocardiography)
    ``resunet``           residual blocks in encoder and decoder (Zhang et al. 2018).
    ``resunet_improved``  ResUNet + Inception module + attention + LeakyReLU.
    ``resunet`` is the ablation of ``resunet_improved``: same widths, depth and upsampling.

CT-study U-Net variants
    1. ``ct_unet_doubleconv``  DoubleConv U-Net (architecturally ``plain_unet_512``).
    2. variant 1 trained on 10x offline-augmented data. This is a data concern, not a network:
       train ``ct_unet_doubleconv`` on a training set enlarged ten-fold offline with an
       augmentation preset (``cardioseg.data.augment``); there is deliberately no separate model.
    3. ``ct_unet_spconv``      SPConv in place of the plain 3x3 convolutions.
    4. ``ct_unet_ra``          DoubleConv with residual-attention (RA) skip connections.
    5. ``ct_unet_mfe_cie``     ConvModule (DoubleConv + MFE + CIE) in the encoder, RA skips.
    The CT variants default to ``base=32`` (widths 32..512, four 2x down-samplings, transposed-conv
    upsampling, BatchNorm + ReLU). The study's own base width and depth are not known to us;
    32..512 is the common half-width U-Net and matches ``plain_unet_512``.

Every factory takes ``in_channels``, ``classes``, ``base`` and ``depth`` (number of resolution
levels) and handles any input size (see ``UNet``). Parameter counts are for in_channels=1, classes=1.
"""

from __future__ import annotations

from typing import Literal, cast

from torch import nn

from cardioseg.errors import ConfigError
from cardioseg.models.blocks import (
    Activation,
    AttentionGate,
    InceptionModule,
    MFECIEModule,
    ResBlock,
    Residual,
    ResidualAttentionSkip,
    SPConvDoubleConv,
    SqueezeExcitation,
)
from cardioseg.models.unet import EncoderFactory, UNet, pooled, stage_widths

BlockConvs = Literal[2, 3]
"""3x3 convolutions per ResUNet residual block: 2 (ResUNet) or 3 (the improved-ResUNet paper)."""


def _residual_encoder(activation: Activation, convs: BlockConvs) -> EncoderFactory:
    def make(in_channels: int, out_channels: int, downsample: bool) -> nn.Module:
        return ResBlock(in_channels, out_channels, stride=2 if downsample else 1, activation=activation, convs=convs)

    return make


def _checked_block_convs(block_convs: object) -> BlockConvs:
    """``block_convs`` as given, if it is 2 (ResUNet's block) or 3 (the improved ResUNet paper's)."""
    if type(block_convs) is not int or block_convs not in (2, 3):
        raise ConfigError(f"model option block_convs must be 2 or 3, got {block_convs!r}")
    return cast(BlockConvs, block_convs)


def resunet(
    in_channels: int = 1, classes: int = 1, *, base: int = 64, depth: int = 5, block_convs: BlockConvs = 2
) -> nn.Module:
    """ResUNet (Zhang et al. 2018, "Road extraction by deep residual U-Net"): U-Net whose stages are
    residual blocks with 1x1 projection shortcuts; the encoder down-samples with stride-2 residual
    blocks, the decoder upsamples bilinearly. ReLU.

    Options: ``base`` (64), ``depth`` (5: widths 64/128/256/512/1024), ``block_convs`` (2; 3 gives
    every residual block, encoder and decoder, the improved-ResUNet paper's three 3x3 convolutions
    with strides 1, 1, 2 in down-sampling blocks, 1, 1, 1 elsewhere). Parameters at the defaults:
    33,130,433 (expected range 33.0M-33.3M); ``base=32``: 8,287,201; ``block_convs=3``: 48,840,385.
    """
    convs = _checked_block_convs(block_convs)
    return UNet(
        in_channels,
        classes,
        stage_widths(base, depth),
        encoder=_residual_encoder("relu", convs),
        decoder=lambda c_in, c_out: ResBlock(c_in, c_out, convs=convs),
    )


def resunet_improved(
    in_channels: int = 1, classes: int = 1, *, base: int = 64, depth: int = 5, block_convs: BlockConvs = 2
) -> nn.Module:
    """Improved ResUNet for echocardiography: ``resunet`` plus
      * an Inception module (1x1, 3x3, 5x5 and pooling branches for multi-scale context) added
        residually at the bottleneck, where its 5x5 branch sees a large part of the image;
      * attention: additive attention gates (Oktay et al. 2018) on the four skips decide *where*
        encoder features pass; squeeze-excitation after each decoder ResBlock re-weights *which*
        channels matter;
      * LeakyReLU (slope 0.01) everywhere: negative inputs keep a small gradient (no dead units).
    Reference design: five encoder ResBlocks 64 -> 1024 and four decoder ResBlocks back to 64.

    Options: ``base`` (64; must be divisible by 4 for the Inception split), ``depth`` (5),
    ``block_convs`` (2, or 3 for the paper's residual block of its Table 1: three 3x3 convolutions,
    strides 1, 1, 2; as in ``resunet``). Parameters at the defaults: 36,979,493 (expected range
    36.8M-37.2M); ``base=32``: 9,251,095; ``block_convs=3``: 52,689,445.
    """
    widths = stage_widths(base, depth)
    if widths[-1] % 4:
        raise ConfigError(f"resunet_improved needs base * 2**(depth-1) divisible by 4, got {widths[-1]}")
    convs = _checked_block_convs(block_convs)
    act: Activation = "leaky_relu"
    return UNet(
        in_channels,
        classes,
        widths,
        encoder=_residual_encoder(act, convs),
        decoder=lambda c_in, c_out: nn.Sequential(
            ResBlock(c_in, c_out, activation=act, convs=convs), SqueezeExcitation(c_out)
        ),
        skip=lambda c_skip, c_gate: AttentionGate(c_skip, c_gate, activation=act),
        bottleneck=Residual(InceptionModule(widths[-1], widths[-1], activation=act)),
    )


def ct_unet_doubleconv(in_channels: int = 1, classes: int = 1, *, base: int = 32, depth: int = 5) -> nn.Module:
    """CT study variant 1: DoubleConv U-Net, max-pool down, transposed-conv up, BatchNorm + ReLU.
    Variant 2 is this network trained with 10x offline augmentation (see module docstring).

    Options: ``base`` (32), ``depth`` (5). Parameters at the defaults: 7,762,465 (as ``plain_unet_512``).
    """
    return UNet(in_channels, classes, stage_widths(base, depth), upsampling="transpose")


def ct_unet_spconv(in_channels: int = 1, classes: int = 1, *, base: int = 32, depth: int = 5) -> nn.Module:
    """CT study variant 3: variant 1 with every 3x3 convolution replaced by SPConv (Zhang et al. 2020),
    except the very first, which sees the raw image and has too few channels to split. In the
    decoder, SPConv's channel split falls exactly between the concatenated skip (first half: the
    representative 3x3 path) and the upsampled features (second half: the cheap 1x1 path).

    Options: ``base`` (32, must be even), ``depth`` (5). Parameters at the defaults: 3,258,081
    (expected range 3.2M-3.3M, about 42% of variant 1).
    """
    widths = stage_widths(base, depth)
    if base % 2:
        raise ConfigError(f"ct_unet_spconv needs an even base (SPConv splits channels in halves), got {base}")

    def encoder(c_in: int, c_out: int, downsample: bool) -> nn.Module:
        stage = SPConvDoubleConv(c_in, c_out, plain_first=not downsample)
        return nn.Sequential(nn.MaxPool2d(2), stage) if downsample else stage

    return UNet(in_channels, classes, widths, encoder=encoder, decoder=SPConvDoubleConv, upsampling="transpose")


def ct_unet_ra(in_channels: int = 1, classes: int = 1, *, base: int = 32, depth: int = 5) -> nn.Module:
    """CT study variant 4: variant 1 with a residual-attention (RA) block on every skip connection:
    the skip is refined by a ResBlock and scaled by ``1 + alpha`` from an attention gate driven by
    the coarser decoder features (see ``blocks.ResidualAttentionSkip``).

    Options: ``base`` (32), ``depth`` (5). Parameters at the defaults: 9,462,873 (expected range 9.4M-9.55M).
    """
    return UNet(
        in_channels, classes, stage_widths(base, depth), skip=ResidualAttentionSkip, upsampling="transpose"
    )


def ct_unet_mfe_cie(in_channels: int = 1, classes: int = 1, *, base: int = 32, depth: int = 5) -> nn.Module:
    """CT study variant 5: every encoder level (bottleneck included) is a ConvModule, DoubleConv
    followed by an MFE block (multi-scale features) and a CIE block (dilated context, rates 2/6/10);
    skips are residual-attention blocks as in variant 4; the decoder keeps plain DoubleConvs.

    Options: ``base`` (32, must be divisible by 8 for the MFE split), ``depth`` (5). Parameters at
    the defaults: 21,534,025 (expected range 21.4M-21.7M; the CIE block at 512 channels alone is 7.9M).
    """
    widths = stage_widths(base, depth)
    if base % 8:
        raise ConfigError(f"ct_unet_mfe_cie needs base divisible by 8 (MFE splits channels in eighths), got {base}")
    return UNet(
        in_channels,
        classes,
        widths,
        encoder=pooled(MFECIEModule),
        skip=ResidualAttentionSkip,
        upsampling="transpose",
    )
