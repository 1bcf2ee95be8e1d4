"""``models.summary`` and ``cardioseg models --summary``: figures checked by hand and against the profiler."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.config import ModelConfig
from cardioseg.errors import ConfigError
from cardioseg.models.factory import build_model
from cardioseg.models.summary import summarize, summarize_model
from cardioseg.models.unet import plain_unet

FLOAT = 4  # bytes


def test_one_conv_and_relu_by_hand() -> None:
    # Conv2d 1->4, k3, no padding, on 8x8: weight 4*9 + bias 4 = 40 parameters, output 4 x 6 x 6.
    # Autograd keeps the conv's input (1*8*8 floats; its weight is a parameter) and the ReLU's output (4*6*6).
    # MACs: every one of the 4*6*6 outputs is a 1*3*3 dot product.
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    figures = summarize_model(model, size=8)
    assert figures.total_params == figures.trainable_params == 40
    assert figures.param_mb == pytest.approx(40 * FLOAT / 1e6)
    assert figures.activation_mb == pytest.approx((64 + 144) * FLOAT / 1e6)
    assert figures.total_mb == pytest.approx((40 + 64 + 144) * FLOAT / 1e6)
    assert figures.layers_with_params == 1
    assert figures.leaf_modules == 2
    assert figures.macs == 4 * 6 * 6 * 9
    assert figures.gflops == pytest.approx(2 * 1296 / 1e9)


def test_a_tensor_saved_twice_is_counted_once() -> None:
    # The ReLU output (2 x 4 x 4) is kept by the ReLU and again as the second conv's input: one buffer.
    # Input 1 x 4 x 4 kept by the first conv. MACs: 2*16*9 + 1*16*2.
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 1))
    figures = summarize_model(model, size=4)
    assert figures.activation_mb == pytest.approx((16 + 32) * FLOAT / 1e6)
    assert figures.macs == 2 * 16 * 9 + 16 * 2
    assert (figures.layers_with_params, figures.leaf_modules) == (2, 3)


def test_transposed_conv_and_linear_macs_by_hand() -> None:
    # ConvTranspose2d 1->3, k2, stride 2 on 4x4: each of the 16 inputs spreads over 3*2*2 outputs = 192 MACs.
    # Then Linear(3*8*8 -> 5): 192 * 5 = 960 MACs.
    model = nn.Sequential(nn.ConvTranspose2d(1, 3, 2, stride=2), nn.Flatten(), nn.Linear(192, 5))
    figures = summarize_model(model, size=4)
    assert figures.macs == 16 * 3 * 4 + 192 * 5
    assert figures.total_params == (1 * 3 * 4 + 3) + (192 * 5 + 5)


def test_parameter_counts_equal_numel_sums() -> None:
    model = plain_unet(base=8)
    for p in model.encoder[0].parameters():
        p.requires_grad_(False)
    figures = summarize_model(model, size=16)
    assert figures.total_params == sum(p.numel() for p in model.parameters())
    assert figures.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert figures.trainable_params < figures.total_params
    assert figures.param_mb == pytest.approx(figures.total_params * FLOAT / 1e6)


def test_the_model_is_left_untouched() -> None:
    model = plain_unet(base=4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summarize_model(model, size=16)
    assert not model.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)


def profiled_backward_memory(model: nn.Module, image: torch.Tensor) -> int:
    """Bytes the allocator still holds after a training forward pass, as torch.profiler records them.

    Everything allocated and freed inside the pass nets to zero; what stays is the output and what
    autograd keeps. The input was allocated before profiling, but the first conv keeps it: add it back.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        output = model(image)
    net = sum(event.self_cpu_memory_usage for event in prof.events())
    return net - output.numel() * output.element_size() + image.numel() * image.element_size()


def test_plain_unet_backward_memory_agrees_with_the_profiler() -> None:
    torch.manual_seed(0)
    model = plain_unet().train()
    independent = profiled_backward_memory(model, torch.randn(1, 1, 64, 64))
    measured = summarize_model(plain_unet(), size=64).activation_mb * 1e6
    assert independent > 1e6  # the profiler did record the allocations
    assert measured == pytest.approx(independent, rel=0.2)


def test_summarize_builds_from_the_config_with_options() -> None:
    cfg = ModelConfig(arch="plain_unet", encoder=None, options={"base": 4, "norm": "none"})
    figures = summarize(cfg, size=16)
    assert figures.total_params == sum(p.numel() for p in build_model(cfg).parameters())


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_bad_size_is_a_config_error(size: object) -> None:
    with pytest.raises(ConfigError, match="size"):
        summarize_model(nn.Conv2d(1, 1, 1), size=size)  # type: ignore[arg-type]


def test_a_size_the_model_cannot_take_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot run on a 2 x 2 image"):
        summarize_model(nn.Conv2d(1, 1, 3), size=2)


def test_cli_prints_the_table() -> None:
    result = CliRunner().invoke(
        app, ["models", "--summary", "plain_unet", "--size", "32", "--classes", "2", "--set", "model.options.base=4"]
    )
    assert result.exit_code == 0, result.output
    expected = sum(p.numel() for p in plain_unet(classes=2, base=4).parameters())
    assert f"{expected:,}" in result.output
    for label in [
        "trainable parameters",
        "parameter memory (MB)",
        "forward/backward pass memory (MB)",
        "total memory (MB)",
        "layers with parameters",
        "leaf modules",
        "GFLOPs",
    ]:
        assert label in result.output
    assert "1 x 32 x 32" in result.output


def test_cli_reports_an_unknown_architecture_in_one_line() -> None:
    result = CliRunner().invoke(app, ["models", "--summary", "no_such_net"])
    assert result.exit_code == 1
    assert "unknown architecture 'no_such_net'" in result.output
    assert "Traceback" not in result.output


def test_cli_without_summary_still_lists_the_models() -> None:
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0
    assert "plain_unet" in result.output and "encoders of the echo study" in result.output
