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
    "ct_unet_doubleconv": (31_036_481, 31_036_481),
    "ct_unet_spconv": (12.9e6, 13.1e6),
    "ct_unet_ra": (31_036_481, 31_036_481),
    "ct_unet_mfe_cie": (78.0e6, 78.6e6),
}


def test_the_ct_study_unet_has_its_published_parameter_count() -> None:
    """Its Table 2: 31,037,633 parameters for the UNET on RGB input; version 4 (RA skips) exactly as many."""
    assert n_params(build("ct_unet_doubleconv", in_channels=3)) == 31_037_633
    assert n_params(build("ct_unet_ra", in_channels=3)) == 31_037_633
    assert n_params(build("ct_unet_ra", base=32, ra="gated")) == 9_462_873  # this project's earlier form, kept


def test_study_ra_skip_is_parameter_free_attention_that_never_erases() -> None:
    from cardioseg.models.blocks import ResidualAttentionSkip

    skip = ResidualAttentionSkip(4, 8)
    x, g = torch.randn(1, 4, 6, 6), torch.randn(1, 8, 3, 3)
    alpha = torch.sigmoid(x.mean(1, keepdim=True) + torch.nn.functional.interpolate(
        g.mean(1, keepdim=True), size=(6, 6), mode="bilinear", align_corners=False))
    torch.testing.assert_close(skip(x, g), x * (1 + alpha))
    assert not list(skip.parameters())
    ratio = skip(x, g) / x
    assert float(ratio.min()) > 1.0 and float(ratio.max()) < 2.0  # scaled by 1 + alpha, alpha in (0, 1)


def test_study_mfe_branches_each_read_their_own_part_of_the_input() -> None:
    block = MFEBlock(16).eval()
    first_convs = [next(m for m in branch.modules() if isinstance(m, nn.Conv2d)) for branch in block.branches]
    assert [conv.in_channels for conv in first_convs] == [4, 2, 8, 2]  # torch.split(x, [C/4, C/8, C/2, C/8])
    x = torch.randn(1, 16, 5, 5)
    changed = x.clone()
    changed[:, 4:6] += 10.0  # only the second part (channels 4..5): only branch 2 sees it
    with torch.no_grad():
        outputs = [branch(part) for branch, part in zip(block.branches, torch.split(x, [4, 2, 8, 2], dim=1))]
        after = [branch(part) for branch, part in zip(block.branches, torch.split(changed, [4, 2, 8, 2], dim=1))]
    assert [bool(torch.equal(a, b)) for a, b in zip(outputs, after)] == [True, False, True, True]
    whole = MFEBlock(16, split_input=False)
    assert [next(m for m in b.modules() if isinstance(m, nn.Conv2d)).in_channels for b in whole.branches] == [16] * 4


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
    from cardioseg.config import ModelConfig
    from cardioseg.models.factory import build_model

    with pytest.raises(ConfigError, match=r"resunet has no option\(s\) bsae; it takes: .*base"):
        build_model(ModelConfig(arch="resunet", encoder=None, classes=1, options={"bsae": 32}))


@pytest.mark.parametrize("channels", [8, 16, 24, 64, 512])
def test_mfe_channel_split(channels: int) -> None:
    widths = MFEBlock.branch_widths(channels)
    assert widths == (channels // 4, channels // 8, channels // 2, channels // 8)
    assert sum(widths) == channels
    block = MFEBlock(channels).eval()
    x = torch.randn(1, channels, 5, 7)
    with torch.no_grad():
        parts = torch.split(x, list(widths), dim=1)
        assert tuple(branch(part).shape[1] for branch, part in zip(block.branches, parts)) == widths
        assert block(x).shape == x.shape
        assert MFEBlock(channels, split_input=False).eval()(x).shape == x.shape


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


def double_conv_without_norm(c_in: int, c_out: int) -> int:
    """Two 3x3 convs with bias, no BatchNorm."""
    return 9 * c_in * c_out + c_out + 9 * c_out * c_out + c_out


@pytest.mark.parametrize("name", ["plain_unet", "plain_unet_512"])
def test_norm_none_has_no_batchnorm_and_trains_one_step(name: str) -> None:
    model = build(name, base=4, norm="none").train()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in build(name, base=4).modules())
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    target = (x > 0).float()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(2):
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), target)
        losses.append(loss.item())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert losses[1] < losses[0]


def test_norm_none_parameter_count_by_hand() -> None:
    # widths 4, 8; bilinear: the decoder sees 4 + 8 channels.
    # DC'(1,4) = 36+4+144+4 = 188; DC'(4,8) = 288+8+576+8 = 880; DC'(12,4) = 432+4+144+4 = 584; head 4+1 = 5
    model = build("plain_unet", base=4, depth=2, norm="none")
    expected = double_conv_without_norm(1, 4) + double_conv_without_norm(4, 8) + double_conv_without_norm(12, 4) + 5
    assert n_params(model) == expected == 1657


def test_norm_none_is_reachable_from_the_config() -> None:
    from cardioseg.config import load_config, parse_override
    from cardioseg.models.factory import build_model

    cfg = load_config(None, dict(parse_override(s) for s in ["model.arch=plain_unet", "model.options.norm=none"]))
    model = build_model(cfg.model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_params(model) < n_params(build("plain_unet"))


def three_conv_res_block(c_in: int, c_out: int) -> int:
    """Three bias-free 3x3 convs, three BatchNorms, and the 1x1 projection (conv + BN) the shapes need here."""
    return 9 * c_in * c_out + 2 * 9 * c_out * c_out + 3 * 2 * c_out + c_in * c_out + 2 * c_out


def test_resunet_three_conv_blocks_parameter_count_by_hand() -> None:
    # widths 4, 8, 16. Encoder RB3(1,4) = 36+288+24+12 = 360, RB3(4,8) = 288+1152+48+48 = 1536,
    # RB3(8,16) = 1152+4608+96+160 = 6016; decoder RB3(24,8) = 3136, RB3(12,4) = 800; head 5.
    model = build("resunet", base=4, depth=3, block_convs=3)
    expected = (
        three_conv_res_block(1, 4)
        + three_conv_res_block(4, 8)
        + three_conv_res_block(8, 16)
        + three_conv_res_block(24, 8)
        + three_conv_res_block(12, 4)
        + 5
    )
    assert n_params(model) == expected == 11_853


def test_three_conv_block_downsamples_at_its_last_convolution() -> None:
    model = build("resunet", base=4, depth=3, block_convs=3)
    down = model.encoder[1]
    strides = [m.stride for m in down.body if isinstance(m, nn.Conv2d)]
    assert strides == [(1, 1), (1, 1), (2, 2)]
    assert down.shortcut[0].stride == (2, 2)
    assert [m.stride for m in model.encoder[0].body if isinstance(m, nn.Conv2d)] == [(1, 1)] * 3
    assert [m.stride for m in build("resunet", base=4, depth=3).encoder[1].body if isinstance(m, nn.Conv2d)] == [
        (2, 2),
        (1, 1),
    ]


@pytest.mark.parametrize("name", ["resunet", "resunet_improved"])
def test_three_conv_blocks_keep_the_output_shape(name: str) -> None:
    model = build(name, base=8, depth=3, block_convs=3, classes=2).eval()
    two = build(name, base=8, depth=3, classes=2)
    assert n_params(model) > n_params(two)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 33, 47)).shape == (1, 2, 33, 47)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("plain_unet", {"norm": "layer"}),
        ("plain_unet_512", {"norm": None}),
        ("resunet", {"block_convs": 4}),
        ("resunet_improved", {"block_convs": True}),
        ("resunet", {"block_convs": 3.0}),
    ],
)
def test_bad_new_options_raise_config_error(name: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"norm|block_convs"):
        build(name, **options)
