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
    The CT variants default to the study's widths: ``base=64`` (DoubleConv features 64, 128, 256,
    512 and a 1024 bottleneck, four 2x down-samplings, transposed-conv upsampling, BatchNorm +
    ReLU): 31,037,633 parameters for its UNET on RGB input (``in_channels=3``), 31,036,481 on grey.
    Its RA skip has no parameters (version 4 is as large as version 1) and its MFE block splits
    its input channels; this project's earlier forms stay as options (``ra: gated``,
    ``mfe_input: whole``), and ``base=32`` gives the half-width networks.

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
    GatedResidualAttentionSkip,
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


def ct_unet_doubleconv(in_channels: int = 1, classes: int = 1, *, base: int = 64, depth: int = 5) -> nn.Module:
    """CT study variant 1: DoubleConv U-Net, max-pool down, transposed-conv up, BatchNorm + ReLU.
    Variant 2 is this network trained with 10x offline augmentation (see module docstring).

    Options: ``base`` (64), ``depth`` (5). Parameters at the defaults: 31,036,481 (31,037,633 with
    ``in_channels=3``, the study's RGB input: its Table 2); ``base=32``: 7,762,465 (as ``plain_unet_512``).
    """
    return UNet(in_channels, classes, stage_widths(base, depth), upsampling="transpose")


def ct_unet_spconv(in_channels: int = 1, classes: int = 1, *, base: int = 64, depth: int = 5) -> nn.Module:
    """CT study variant 3: variant 1 with every 3x3 convolution replaced by SPConv (Zhang et al. 2020),
    except the very first, which sees the raw image and has too few channels to split. In the
    decoder, SPConv's channel split falls exactly between the concatenated skip (first half: the
    representative 3x3 path) and the upsampled features (second half: the cheap 1x1 path).

    Options: ``base`` (64, must be even), ``depth`` (5). Parameters at the defaults: 13,007,297;
    ``base=32``: 3,258,081.
    """
    widths = stage_widths(base, depth)
    if base % 2:
        raise ConfigError(f"ct_unet_spconv needs an even base (SPConv splits channels in halves), got {base}")

    def encoder(c_in: int, c_out: int, downsample: bool) -> nn.Module:
        stage = SPConvDoubleConv(c_in, c_out, plain_first=not downsample)
        return nn.Sequential(nn.MaxPool2d(2), stage) if downsample else stage

    return UNet(in_channels, classes, widths, encoder=encoder, decoder=SPConvDoubleConv, upsampling="transpose")


RAForm = Literal["study", "gated"]
"""The RA skip: the study's parameter-free one, or this project's residual trunk + learnt attention gate."""
_RA_SKIPS = {"study": ResidualAttentionSkip, "gated": GatedResidualAttentionSkip}


def _ra_skip(ra: object) -> type[nn.Module]:
    if ra not in _RA_SKIPS:
        raise ConfigError(f"ra must be one of {', '.join(_RA_SKIPS)}, got {ra!r}")
    return _RA_SKIPS[cast(str, ra)]


def ct_unet_ra(in_channels: int = 1, classes: int = 1, *, base: int = 64, depth: int = 5, ra: RAForm = "study") -> nn.Module:
    """CT study variant 4: variant 1 with a residual-attention (RA) block on every skip connection.

    ``ra``: ``study`` (default), ``x * (1 + alpha)`` with a parameter-free attention map from the
    skip and the coarser decoder features (``blocks.ResidualAttentionSkip``), so the network has
    exactly variant 1's parameters, as the study reports; ``gated``, this project's earlier form,
    a ResBlock trunk and a learnt attention gate (``blocks.GatedResidualAttentionSkip``).
    Options: ``base`` (64), ``depth`` (5), ``ra``. Parameters at the defaults: 31,036,481 (as
    variant 1); ``ra=gated``: 37,831,849; ``base=32, ra=gated``: 9,462,873.
    """
    return UNet(in_channels, classes, stage_widths(base, depth), skip=_ra_skip(ra), upsampling="transpose")


def ct_unet_mfe_cie(in_channels: int = 1, classes: int = 1, *, base: int = 64, depth: int = 5, ra: RAForm = "study",
                    mfe_input: Literal["split", "whole"] = "split") -> nn.Module:
    """CT study variant 5: every encoder level (bottleneck included) is a ConvModule, DoubleConv
    followed by an MFE block (multi-scale features) and a CIE block (dilated context, rates 2/6/10);
    skips are residual-attention blocks as in variant 4; the decoder keeps plain DoubleConvs.

    ``mfe_input``: ``split`` (default, the study's): the MFE block cuts its input channels into
    1/4, 1/8, 1/2, 1/8 and each branch works on its part; ``whole``: every branch reads all of it.
    Options: ``base`` (64, must be divisible by 8 for the MFE split), ``depth`` (5), ``ra``,
    ``mfe_input``. Parameters at the defaults: 78,377,697; ``base=32, ra=gated, mfe_input=whole``:
    21,534,025 (the CIE block at 512 channels alone is 7.9M).
    """
    widths = stage_widths(base, depth)
    if base % 8:
        raise ConfigError(f"ct_unet_mfe_cie needs base divisible by 8 (MFE splits channels in eighths), got {base}")
    if mfe_input not in ("split", "whole"):
        raise ConfigError(f"mfe_input must be split or whole, got {mfe_input!r}")
    split = mfe_input == "split"
    return UNet(
        in_channels,
        classes,
        widths,
        encoder=pooled(lambda c_in, c_out: MFECIEModule(c_in, c_out, split_input=split)),
        skip=_ra_skip(ra),
        upsampling="transpose",
    )
