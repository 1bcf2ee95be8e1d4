"""Building blocks shared by the hand-written networks (``unet``, ``custom_nets``).

Every block maps (B, C_in, H, W) to (B, C_out, H, W): none changes the spatial size except
``ResBlock`` with ``stride=2``. Convolutions that feed a BatchNorm have no bias. Blocks with an
activation take ``activation="relu" | "leaky_relu"`` (LeakyReLU with PyTorch's slope 0.01).
``ConvBNAct`` and ``DoubleConv`` take ``norm="batch" | "none"``; without BatchNorm the
convolutions get their bias back, since nothing downstream absorbs a shift any more.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Activation = Literal["relu", "leaky_relu"]
Norm = Literal["batch", "none"]
NORMS: tuple[Norm, ...] = ("batch", "none")


def make_activation(name: Activation) -> nn.Module:
    """The activation module called ``name``."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01)
    raise ValueError(f"unknown activation {name!r}; use 'relu' or 'leaky_relu'")


class ConvBNAct(nn.Sequential):
    """Convolution (no bias), BatchNorm, activation; 'same' padding for odd kernels.

    ``norm="none"`` drops the BatchNorm and gives the convolution a bias: conv-act.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        dilation: int = 1,
        activation: Activation = "relu",
        norm: Norm = "batch",
    ) -> None:
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; use 'batch' or 'none'")
        conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            bias=norm == "none",
        )
        normalisation = [nn.BatchNorm2d(out_channels)] if norm == "batch" else []
        super().__init__(conv, *normalisation, make_activation(activation))


class DoubleConv(nn.Sequential):
    """(conv3x3-BN-act) x 2: the stage of U-Net (Ronneberger et al. 2015), with BatchNorm unless ``norm="none"``."""

    def __init__(
        self, in_channels: int, out_channels: int, *, activation: Activation = "relu", norm: Norm = "batch"
    ) -> None:
        super().__init__(
            ConvBNAct(in_channels, out_channels, activation=activation, norm=norm),
            ConvBNAct(out_channels, out_channels, activation=activation, norm=norm),
        )


class ResBlock(nn.Module):
    """Residual block (He et al. 2016): act(BN(conv3x3(act(BN(conv3x3(x))))) + shortcut(x)).

    The shortcut is the identity when shapes agree, else a 1x1 projection (conv + BN) with the
    same stride. ``stride=2`` halves the resolution, as in ResUNet (Zhang et al. 2018).
    ``convs=3`` is the improved-ResUNet block (its Table 1): three conv3x3-BN with strides
    1, 1, ``stride``, i.e. it down-samples at the last convolution instead of the first.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        activation: Activation = "relu",
        convs: Literal[2, 3] = 2,
    ) -> None:
        super().__init__()
        if convs not in (2, 3):
            raise ValueError(f"ResBlock has 2 or 3 convolutions, got {convs!r}")
        strides = [stride, 1] if convs == 2 else [1, 1, stride]
        layers: list[nn.Module] = []
        for i, conv_stride in enumerate(strides):
            c_in = in_channels if i == 0 else out_channels
            layers += [
                nn.Conv2d(c_in, out_channels, 3, stride=conv_stride, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
            ]
            if i < len(strides) - 1:
                layers.append(make_activation(activation))
        self.body = nn.Sequential(*layers)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class Residual(nn.Module):
    """``x + body(x)``: turns a shape-preserving module into a residual refinement."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class InceptionModule(nn.Module):
    """Inception module (Szegedy et al. 2015, GoogLeNet v1) for multi-scale features.

    Four parallel branches, each ``out_channels // 4`` wide and concatenated: 1x1; 1x1 then 3x3;
    1x1 then 5x5; 3x3 max-pool (stride 1) then 1x1. Every convolution is conv-BN-act.
    """

    def __init__(self, in_channels: int, out_channels: int, *, activation: Activation = "relu") -> None:
        super().__init__()
        if out_channels % 4:
            raise ValueError(f"InceptionModule needs out_channels divisible by 4, got {out_channels}")
        width = out_channels // 4
        self.branches = nn.ModuleList(
            [
                ConvBNAct(in_channels, width, 1, activation=activation),
                nn.Sequential(
                    ConvBNAct(in_channels, width, 1, activation=activation),
                    ConvBNAct(width, width, 3, activation=activation),
                ),
                nn.Sequential(
                    ConvBNAct(in_channels, width, 1, activation=activation),
                    ConvBNAct(width, width, 5, activation=activation),
                ),
                nn.Sequential(
                    nn.MaxPool2d(3, stride=1, padding=1),
                    ConvBNAct(in_channels, width, 1, activation=activation),
                ),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al. 2018): re-weight channels by a gate learnt from their global means."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class AttentionGate(nn.Module):
    """Additive attention gate of Attention U-Net (Oktay et al. 2018).

    The gating signal ``g`` is the coarser decoder feature map; the encoder skip ``x`` is scaled
    pixel-wise by ``alpha = sigmoid(psi(act(W_x x + up(W_g g))))`` in (0, 1), so that the decoder
    receives the skip features only where they are relevant to the coarse prediction. The
    intermediate width is half the skip's; ``W_g g`` is computed at the coarse resolution and
    resized bilinearly to the skip's size.
    """

    def __init__(self, skip_channels: int, gate_channels: int, *, activation: Activation = "relu") -> None:
        super().__init__()
        inter = max(skip_channels // 2, 1)
        self.theta_x = nn.Sequential(nn.Conv2d(skip_channels, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.phi_g = nn.Sequential(nn.Conv2d(gate_channels, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.act = make_activation(activation)
        self.psi = nn.Sequential(nn.Conv2d(inter, 1, 1, bias=False), nn.BatchNorm2d(1), nn.Sigmoid())

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The attention map alpha, shape (B, 1, H, W) like ``x``."""
        gate = F.interpolate(self.phi_g(g), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.psi(self.act(self.theta_x(x) + gate))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.coefficients(x, g)


class ResidualAttentionSkip(nn.Module):
    """Residual-attention (RA) skip connection of the CT study's version 4: ``x * (1 + alpha(x, g))``, no parameters.

    ``alpha`` is additive attention as in an attention gate, but with the channel means of the
    skip ``x`` and of the coarser decoder features ``g`` (upsampled to ``x``) standing in for the
    gate's learnt 1x1 projections: ``alpha = sigmoid(mean_c(x) + mean_c(g))``. Parameter-free,
    which is what keeps the study's version 4 exactly as large as version 1. As in residual
    attention learning (Wang et al. 2017) the mask enters as ``1 + alpha``, so attention can
    emphasise skip features but never erase them.
    """

    def __init__(self, skip_channels: int, gate_channels: int, *, activation: Activation = "relu") -> None:
        super().__init__()

    @staticmethod
    def coefficients(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        gate = F.interpolate(g.mean(1, keepdim=True), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(x.mean(1, keepdim=True) + gate)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * (1 + self.coefficients(x, g))


class GatedResidualAttentionSkip(nn.Module):
    """This project's RA skip (``ra: gated``): ``trunk(x) * (1 + alpha(x, g))`` with a learnt attention gate.

    The skip features are refined by a residual block (the trunk of residual attention learning)
    and re-weighted by an attention gate driven by the coarser decoder features ``g``.
    """

    def __init__(self, skip_channels: int, gate_channels: int, *, activation: Activation = "relu") -> None:
        super().__init__()
        self.trunk = ResBlock(skip_channels, skip_channels, activation=activation)
        self.attention = AttentionGate(skip_channels, gate_channels, activation=activation)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.trunk(x) * (1 + self.attention.coefficients(x, g))


class SPConv(nn.Module):
    """SPConv, a drop-in for a 3x3 convolution (Zhang et al. 2020, "Split to Be Slim").

    Many feature maps are near-duplicates, so the input channels are split by ``ratio``:
      * representative part: 3x3 group-wise conv (``groups``) + 1x1 point-wise conv, summed
        (the point-wise conv restores the cross-group mixing a group conv loses), then BN;
      * redundant part: one cheap 1x1 conv, then BN.
    Both produce ``out_channels`` maps. The parameter-free fusion takes each output's global
    average per channel, softmaxes the two values per channel and returns the weighted sum,
    an SE-like selection without learnt weights. Simplifications against the official code:
    stride 1 only (the U-Nets downsample by pooling) and no bias before BN. Output is
    normalised but not activated, as in the paper's bottleneck.
    """

    def __init__(self, in_channels: int, out_channels: int, *, ratio: float = 0.5, groups: int = 2) -> None:
        super().__init__()
        self.rep_channels = int(in_channels * ratio)
        red_channels = in_channels - self.rep_channels
        if self.rep_channels < groups or self.rep_channels % groups or out_channels % groups or red_channels < 1:
            raise ValueError(
                f"SPConv cannot split {in_channels} input channels at ratio {ratio} into {groups} groups "
                f"with {out_channels} outputs (use an ordinary convolution for such a layer)"
            )
        self.gwc = nn.Conv2d(self.rep_channels, out_channels, 3, padding=1, groups=groups, bias=False)
        self.pwc = nn.Conv2d(self.rep_channels, out_channels, 1, bias=False)
        self.bn_rep = nn.BatchNorm2d(out_channels)
        self.cheap = nn.Conv2d(red_channels, out_channels, 1, bias=False)
        self.bn_red = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rep, red = x[:, : self.rep_channels], x[:, self.rep_channels :]
        out_rep = self.bn_rep(self.gwc(rep) + self.pwc(rep))
        out_red = self.bn_red(self.cheap(red))
        weights = torch.stack([out_rep.mean((2, 3)), out_red.mean((2, 3))], dim=-1).softmax(dim=-1)
        return out_rep * weights[..., 0, None, None] + out_red * weights[..., 1, None, None]


class SPConvDoubleConv(nn.Sequential):
    """DoubleConv with SPConv in place of both 3x3 convolutions: (SPConv-act) x 2.

    ``plain_first=True`` keeps an ordinary conv3x3-BN-act as the first layer, for the stem that
    sees the raw image, whose one or three channels cannot be split into two groups.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, plain_first: bool = False, activation: Activation = "relu"
    ) -> None:
        first = (
            ConvBNAct(in_channels, out_channels, activation=activation)
            if plain_first
            else nn.Sequential(SPConv(in_channels, out_channels), make_activation(activation))
        )
        super().__init__(first, SPConv(out_channels, out_channels), make_activation(activation))


class MFEBlock(nn.Module):
    """Multi-scale feature extraction (MFE): four receptive fields side by side, added to the input.

    The ``channels`` maps are shared out as 1/4, 1/8, 1/2, 1/8 over the branches
      1. 1x1;  2. 3x3 max-pool (stride 1) + 1x1;  3. 1x1 + 3x3;  4. 1x1 + 3x3 + 3x3 (a 5x5 field).
    ``split_input`` (the CT study's form) cuts the *input* into those four parts (``torch.split``)
    and each branch works on its own part; otherwise (``mfe_input: whole``) every branch reads the
    whole input, as in an Inception module, and only the outputs are shared out. The
    concatenation is fused by a 1x1 conv + BN, added to the input, then activated.
    """

    def __init__(self, channels: int, *, activation: Activation = "relu", split_input: bool = True) -> None:
        super().__init__()
        widths = self.branch_widths(channels)
        self.split = list(widths) if split_input else None
        c1, c2, c3, c4 = widths
        i1, i2, i3, i4 = widths if split_input else (channels,) * 4
        self.branches = nn.ModuleList(
            [
                ConvBNAct(i1, c1, 1, activation=activation),
                nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvBNAct(i2, c2, 1, activation=activation)),
                nn.Sequential(
                    ConvBNAct(i3, c3, 1, activation=activation),
                    ConvBNAct(c3, c3, activation=activation),
                ),
                nn.Sequential(
                    ConvBNAct(i4, c4, 1, activation=activation),
                    ConvBNAct(c4, c4, activation=activation),
                    ConvBNAct(c4, c4, activation=activation),
                ),
            ]
        )
        self.fuse = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.act = make_activation(activation)

    @staticmethod
    def branch_widths(channels: int) -> tuple[int, int, int, int]:
        """The widths (C/4, C/8, C/2, C/8) of the four branches; C must be a positive multiple of 8."""
        if channels <= 0 or channels % 8:
            raise ValueError(f"MFEBlock needs a channel count divisible by 8, got {channels}")
        return channels // 4, channels // 8, channels // 2, channels // 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.split, dim=1) if self.split else (x,) * len(self.branches)
        fused = self.fuse(torch.cat([branch(part) for branch, part in zip(self.branches, parts)], dim=1))
        return self.act(x + fused)


class CIEBlock(nn.Module):
    """Context information extraction (CIE): parallel dilated 3x3 convs, fused and added to the input.

    Dilation rates 2, 6 and 10 give receptive fields of 5, 13 and 21 pixels at no extra
    resolution loss; each branch keeps ``channels`` maps, the concatenation is fused by a 1x1
    conv + BN, added to the input, then activated.
    """

    rates: tuple[int, ...] = (2, 6, 10)

    def __init__(self, channels: int, *, activation: Activation = "relu") -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            ConvBNAct(channels, channels, dilation=rate, activation=activation) for rate in self.rates
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(len(self.rates) * channels, channels, 1, bias=False), nn.BatchNorm2d(channels)
        )
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))
        return self.act(x + fused)


class MFECIEModule(nn.Sequential):
    """The ConvModule of the CT study's variant 5: DoubleConv, then MFE, then CIE."""

    def __init__(self, in_channels: int, out_channels: int, *, activation: Activation = "relu",
                 split_input: bool = True) -> None:
        super().__init__(
            DoubleConv(in_channels, out_channels, activation=activation),
            MFEBlock(out_channels, activation=activation, split_input=split_input),
            CIEBlock(out_channels, activation=activation),
        )
