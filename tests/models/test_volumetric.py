"""The contract of the 3D networks: blocks of planes in, logits of the same shape out, every parameter trained."""

from __future__ import annotations

import pytest
import torch

from cardioseg.config import ModelConfig
from cardioseg.models.factory import build_model
from cardioseg.models.registry import get_model_entry, list_models
from cardioseg.models.summary import summarize

VOLUMETRIC = [arch for arch in list_models() if get_model_entry(arch).spatial_dims == 3]


def test_the_registry_has_3d_networks() -> None:
    assert {"unet3d", "segresnet3d"} <= set(VOLUMETRIC)


@pytest.mark.parametrize("arch", VOLUMETRIC)
@pytest.mark.parametrize("classes", [1, 4])
def test_a_block_of_planes_gives_logits_of_its_shape_and_trains_every_parameter(arch: str, classes: int) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, encoder=None, classes=classes)).train()
    block = torch.randn(2, 1, 16, 32, 48)  # planes, rows, columns all different: a swapped axis shows
    logits = model(block)
    assert logits.shape == (2, classes, 16, 32, 48)
    logits.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(bool(g.abs().sum() > 0) for g in grads) >= 0.95 * len(grads)


def test_the_summary_of_a_3d_network_is_per_window() -> None:
    figures = summarize(ModelConfig(arch="unet3d", encoder=None, window_planes=16), size=32)
    flat = summarize(ModelConfig(arch="unet3d", encoder=None, window_planes=32), size=32)
    assert figures.total_params == flat.total_params == 4_805_534  # MONAI UNet 16..256, two residual units
    # twice the planes, twice the multiply-accumulates (every layer is a convolution over the block)
    assert flat.macs == pytest.approx(2 * figures.macs, rel=1e-6)
