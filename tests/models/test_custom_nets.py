"""The hand-written networks (``unet``, ``custom_nets``, ``blocks``): shapes, gradients, sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cardioseg.errors import ConfigError
from cardioseg.models.blocks import CIEBlock, MFEBlock, SPConv
from cardioseg.models.registry import get_model_entry, list_models

NETWORKS = [
    "plain_unet",
    "plain_unet_512",
    "resunet",
    "resunet_improved",
    "ct_unet_doubleconv",
    "ct_unet_spconv",
    "ct_unet_ra",
    "ct_unet_mfe_cie",
]

# Parameter counts at the defaults (in_channels=1, classes=1), as documented in each factory.
PARAMETER_RANGES = {
    "plain_unet": (1_947_713, 1_947_713),
    "plain_unet_512": (7_762_465, 7_762_465),
    "resunet": (33.0e6, 33.3e6),
    "resunet_improved": (36.8e6, 37.2e6),
    "ct_unet_doubleconv": (7_762_465, 7_762_465),
    "ct_unet_spconv": (3.2e6, 3.3e6),
    "ct_unet_ra": (9.4e6, 9.55e6),
    "ct_unet_mfe_cie": (21.4e6, 21.7e6),
}


def build(name: str, **kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    return get_model_entry(name).factory(**kwargs)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def double_conv(c_in: int, c_out: int) -> int:
    """Two bias-free 3x3 convs and two BatchNorms (weight + bias each)."""
    return 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out


def test_all_networks_are_registered() -> None:
    assert set(NETWORKS) <= set(list_models())


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize(("in_channels", "classes"), [(1, 1), (1, 3), (3, 3)])
def test_output_shape_for_odd_sizes(name: str, in_channels: int, classes: int) -> None:
    model = build(name, in_channels=in_channels, classes=classes).eval()
    with torch.no_grad():
        out = model(torch.randn(1, in_channels, 33, 47))
    assert out.shape == (1, classes, 33, 47)


@pytest.mark.parametrize("name", NETWORKS)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = build(name, classes=2).train()
    model(torch.randn(2, 1, 33, 47)).sum().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NETWORKS)
def test_parameter_count_in_documented_range(name: str) -> None:
    entry = get_model_entry(name)
    count = n_params(build(name))
    low, high = PARAMETER_RANGES[name]
    assert low <= count <= high
    assert f"{count:,}" in (entry.factory.__doc__ or ""), "docstring count is out of date"


@pytest.mark.parametrize("name", NETWORKS)
def test_eval_is_deterministic(name: str) -> None:
    model = build(name).eval()
    x = torch.randn(2, 1, 33, 47)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_plain_unet_count_matches_the_formula() -> None:
    # Bilinear: encoder DC(in, w0), DC(w_{i-1}, w_i); decoder DC(w_i + w_{i+1}, w_i); 1x1 head.
    # widths 32/64/128/256: 9,632 + 55,552 + 221,696 + 885,760 = 1,172,640 (encoder)
    # + 590,336 + 147,712 + 36,992 = 775,040 (decoder) + 33 (head) = 1,947,713.
    for base, depth, classes in [(32, 4, 1), (16, 3, 3), (8, 5, 2)]:
        w = [base * 2**i for i in range(depth)]
        expected = (
            double_conv(1, w[0])
            + sum(double_conv(w[i - 1], w[i]) for i in range(1, depth))
            + sum(double_conv(w[i] + w[i + 1], w[i]) for i in range(depth - 1))
            + w[0] * classes
            + classes
        )
        model = build("plain_unet", classes=classes, base=base, depth=depth)
        assert n_params(model) == expected
    assert n_params(build("plain_unet")) == 1_947_713


def test_plain_unet_512_count_matches_the_formula() -> None:
    # Transposed: ConvTranspose2d(w_{i+1}, w_i, 2) has 4 w_{i+1} w_i weights + w_i biases,
    # then DC(2 w_i, w_i).
    w = [32, 64, 128, 256, 512]
    expected = (
        double_conv(1, w[0])
        + sum(double_conv(w[i - 1], w[i]) for i in range(1, 5))
        + sum(4 * w[i + 1] * w[i] + w[i] + double_conv(2 * w[i], w[i]) for i in range(4))
        + w[0]
        + 1
    )
    assert expected == 7_762_465
    assert n_params(build("plain_unet_512")) == expected


def test_resunet_count_matches_the_formula() -> None:
    def res_block(c_in: int, c_out: int) -> int:  # 1x1 projection (conv + BN) whenever shapes change
        return double_conv(c_in, c_out) + c_in * c_out + 2 * c_out

    w = [64, 128, 256, 512, 1024]
    expected = (
        res_block(1, w[0])
        + sum(res_block(w[i - 1], w[i]) for i in range(1, 5))
        + sum(res_block(w[i] + w[i + 1], w[i]) for i in range(4))
        + w[0]
        + 1
    )
    assert n_params(build("resunet")) == expected == 33_130_433


@pytest.mark.parametrize("upsampling", ["bilinear", "transpose"])
@pytest.mark.parametrize("depth", [2, 3, 5])
def test_plain_unet_options(upsampling: str, depth: int) -> None:
    model = build("plain_unet", base=8, depth=depth, upsampling=upsampling).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 33, 47)).shape == (1, 1, 33, 47)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("plain_unet", {"upsampling": "nearest"}),
        ("plain_unet", {"base": 0}),
        ("plain_unet", {"depth": 1}),
        ("resunet", {"base": 2.5}),
        ("ct_unet_spconv", {"base": 31}),
        ("ct_unet_mfe_cie", {"base": 20}),
    ],
)
def test_bad_options_raise_config_error(name: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        build(name, **options)


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(TypeError):
        build("resunet", bsae=32)


@pytest.mark.parametrize("channels", [8, 16, 24, 64, 512])
def test_mfe_channel_split(channels: int) -> None:
    widths = MFEBlock.branch_widths(channels)
    assert widths == (channels // 4, channels // 8, channels // 2, channels // 8)
    assert sum(widths) == channels
    block = MFEBlock(channels).eval()
    x = torch.randn(1, channels, 5, 7)
    with torch.no_grad():
        assert tuple(branch(x).shape[1] for branch in block.branches) == widths
        assert block(x).shape == x.shape


@pytest.mark.parametrize("channels", [0, 4, 12, 20, 36])
def test_mfe_rejects_channels_not_divisible_by_8(channels: int) -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        MFEBlock(channels)


def test_cie_uses_dilation_rates_2_6_10() -> None:
    block = CIEBlock(16)
    dilated = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert sorted(m.dilation for m in dilated) == [(2, 2), (6, 6), (10, 10)]
    assert all(m.padding == m.dilation for m in dilated)  # size-preserving
    model = build("ct_unet_mfe_cie")
    cie_blocks = [m for m in model.modules() if isinstance(m, CIEBlock)]
    assert len(cie_blocks) == 5  # every encoder level, bottleneck included
    x = torch.randn(1, 16, 9, 11)
    with torch.no_grad():
        assert block.eval()(x).shape == x.shape


def test_spconv_fuses_two_paths_with_softmax_weights() -> None:
    conv = SPConv(8, 6).eval()
    x = torch.randn(2, 8, 9, 11)
    with torch.no_grad():
        out = conv(x)
        rep = conv.bn_rep(conv.gwc(x[:, :4]) + conv.pwc(x[:, :4]))
        red = conv.bn_red(conv.cheap(x[:, 4:]))
        w = torch.softmax(torch.stack([rep.mean((2, 3)), red.mean((2, 3))]), dim=0)[..., None, None]
    assert out.shape == (2, 6, 9, 11)
    torch.testing.assert_close(out, w[0] * rep + w[1] * red)
    assert conv.gwc.groups == 2


def test_spconv_rejects_an_unsplittable_input() -> None:
    with pytest.raises(ValueError, match="cannot split"):
        SPConv(1, 32)
