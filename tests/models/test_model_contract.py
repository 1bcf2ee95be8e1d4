"""The contract every registered model keeps, in the manner of segmentation_models_pytorch's tests/models/base.py.

Parametrised over ``list_models()``: a model is held to it the moment it is added to the table.
smp models are built with the resnet18 encoder, the hand-written networks at width ``base=8``
(when their factory has that option), all from a fixed seed. For each model:

(a) logits of shape (B, classes, H, W) for 1 and 4 classes. The input is 65 x 47: neither side is a
    multiple of any power of two (so padding/cropping bugs show) and the two differ (so a
    transpose shows). Architectures that cannot take such a size are listed in ``SIZE_RULES``
    with the reason; they must refuse it with an error naming the multiple they need, and are
    then tested at the next size they accept.
(b) a loss reaches every parameter: each has a finite gradient, nearly all a non-zero one.
(c) a bf16 autocast + channels_last forward on CPU (the training and prediction fast path) is
    finite and agrees with float32 on the thresholded/argmax masks.
(d) the ONNX file of ``cardioseg.inference.export`` matches PyTorch (its ``deployable`` wrapper)
    on probabilities and masks, for a binary (1 channel) and a 4-class head; binary heads other
    than ``BINARY_EXPORTS_BY_DEFAULT`` are marked slow (see there why).

For (c) and (d) the random network's head is calibrated (as in tests/inference/inference_helpers):
uncalibrated logits sit near 0 everywhere and the masks would be noise that any rounding flips.
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cardioseg.config import ExportConfig, ModelConfig, PreprocessConfig
from cardioseg.errors import ConfigError
from cardioseg.models.factory import build_model
from cardioseg.models.registry import MODELS, get_model_entry, list_models
from cardioseg.plan import ClassSpec, Plan

NOT_NETWORKS = {"threshold": "a classical baseline of two numbers: no head to calibrate, one foreground class only "
                             "(tests/models/test_baselines.py)"}
# 3D networks keep their own contract (tests/models/test_volumetric.py)
ARCHS = [arch for arch in list_models() if arch not in NOT_NETWORKS and get_model_entry(arch).spatial_dims == 2]
ODD_SIZE = (65, 47)
BATCH = 2  # BatchNorm in train mode needs more than one value per channel, also at the deepest 1x1 level


@dataclass(frozen=True)
class SizeRule:
    """What input sizes an architecture takes: sides a multiple of ``multiple`` and at least ``minimum``."""

    multiple: int
    minimum: int
    reason: str
    too_small: str = ""
    """Pattern of the error raised below ``minimum`` (for a size not a multiple, smp names the multiple)."""


_STRIDE = "smp checks that H and W are multiples of the encoder's output stride"
SIZE_RULES: dict[str, SizeRule] = {
    "unetplusplus": SizeRule(32, 32, f"{_STRIDE} (32 for resnet18)"),
    "manet": SizeRule(32, 32, f"{_STRIDE} (32 for resnet18)"),
    "linknet": SizeRule(32, 32, f"{_STRIDE} (32 for resnet18)"),
    "fpn": SizeRule(32, 32, f"{_STRIDE} (32 for resnet18)"),
    "deeplabv3plus": SizeRule(16, 16, f"{_STRIDE} (16: the last stage is dilated)"),
    "deeplabv3": SizeRule(8, 8, f"{_STRIDE} (8: the last two stages are dilated)"),
    "pspnet": SizeRule(8, 8, f"{_STRIDE} (8: PSPNet uses three encoder stages)"),
    # Below 128, PAN's feature pyramid attention pools its 1/16 features to nothing and fails
    # inside PyTorch with this unhelpful message; the test records it rather than hiding it.
    "pan": SizeRule(16, 128, f"{_STRIDE} (16); its pyramid pooling needs 1/16 features of 8x8", "too small"),
}
ANY_SIZE = SizeRule(1, 1, "pads to its own multiple and crops back, or resizes its skips (smp Unet)")

UNUSED_PARAMETERS: dict[str, tuple[tuple[str, ...], str]] = {
    "pspnet": (
        ("encoder.layer3.", "encoder.layer4."),
        "PSPNet runs encoder_depth=3 stages, but smp builds (and saves) the whole resnet18",
    ),
}
"""Parameters an architecture has but never uses: they get no gradient at all (grad None)."""

MIN_NONZERO_GRADIENTS = 0.95
"""Share of parameter tensors that must get a non-zero gradient. A few may legitimately get exactly
zero: a conv bias right before a train-mode BatchNorm is cancelled by the batch mean (PAN), and at
width 8 a squeeze-excitation gate has a single hidden ReLU unit, which can be dead (resunet_improved)."""

BF16_MIN_AGREEMENT = 0.9  # measured 0.955 (ct_unet_spconv, 4 classes) to 0.997
EXPORT_SIZE = 64
MAX_PROB_DIFF = 1e-3
MIN_MASK_AGREEMENT = 0.99


def rule(arch: str) -> SizeRule:
    return SIZE_RULES.get(arch, ANY_SIZE)


def valid_size(arch: str, size: tuple[int, int] = ODD_SIZE) -> tuple[int, int]:
    """``size`` rounded up to the nearest one the architecture accepts."""
    r = rule(arch)
    height, width = (math.ceil(max(side, r.minimum) / r.multiple) * r.multiple for side in size)
    return height, width


def model_config(arch: str, classes: int) -> ModelConfig:
    """A small, randomly initialised instance: resnet18 for smp models, width ``base=8`` for the
    hand-written ones (when their factory has that option)."""
    entry = get_model_entry(arch)
    narrow = not entry.uses_encoder and "base" in inspect.signature(entry.factory).parameters
    return ModelConfig(arch=arch, encoder="resnet18" if entry.uses_encoder else None, encoder_weights=None,
                       classes=classes, options={"base": 8} if narrow else {})


def build(arch: str, classes: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(model_config(arch, classes))


def smooth_images(batch: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Raw intensities 0..255 with structure at 1/8 of the image size: (batch, 1, H, W) float32."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    coarse = torch.rand(batch, 1, max(2, height // 8), max(2, width // 8), generator=generator)
    return 255.0 * F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def minmax(images: torch.Tensor) -> torch.Tensor:
    """Per-image min-max scaling to 0..1: the plan's normalisation, which the exported graph applies itself."""
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images - low) / (high - low)


@torch.no_grad()
def calibrate_head(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Scale and shift each output channel of the last convolution: on ``images`` its logits get median 0, std 4.

    The masks then cover about half of each image (binary) or split it among the classes (argmax),
    following the image content, and most pixels are far from a decision boundary. Per channel,
    unlike tests/inference's version, so that a 4-class head is calibrated too.
    """
    model.eval()
    head = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    logits = model(images).transpose(0, 1).flatten(1)
    scale = 4.0 / logits.std(dim=1)
    head.weight.mul_(scale.view(-1, *[1] * (head.weight.ndim - 1)))
    head.bias.copy_((head.bias - logits.median(dim=1).values) * scale)
    check = model(images).transpose(0, 1).flatten(1)
    assert check.median(dim=1).values.abs().max() < 0.05, "head is not the last linear layer"
    assert (check.std(dim=1) - 4.0).abs().max() < 0.05, "head is not the last linear layer"
    return model


def masks(output: torch.Tensor) -> torch.Tensor:
    """Masks from logits (B, C, H, W): logit > 0 for one channel, else the argmax over the classes."""
    return output[:, 0] > 0 if output.shape[1] == 1 else output.argmax(dim=1)


def check_not_degenerate(mask: torch.Tensor, classes: int) -> None:
    """The calibrated masks must hold every class, or agreement between two backends would prove little."""
    shares = [float((mask == k).float().mean()) for k in range(max(classes, 2))]
    assert min(shares) > 0.02, f"class shares {shares}: the calibrated head is degenerate"


# -- the table ------------------------------------------------------------------------------------


def test_every_row_is_named_by_its_key_and_described() -> None:
    assert [name for name, entry in MODELS.items() if entry.name != name] == []
    assert [name for name, entry in MODELS.items() if not entry.description.strip()] == []


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown architecture 'unetz'") as caught:
        get_model_entry("unetz")
    assert all(name in str(caught.value) for name in ARCHS)


def test_size_rules_and_exceptions_name_registered_models() -> None:
    assert set(SIZE_RULES) <= set(ARCHS)
    assert set(UNUSED_PARAMETERS) <= set(ARCHS)


# -- (a) output shape ------------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [1, 4])
@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape(arch: str, classes: int) -> None:
    model = build(arch, classes).eval()
    size = valid_size(arch)
    with torch.no_grad():
        out = model(torch.randn(BATCH, 1, *size))
    assert out.shape == (BATCH, classes, *size), rule(arch).reason
    assert out.dtype == torch.float32


@pytest.mark.parametrize("arch", sorted(SIZE_RULES))
def test_sizes_it_cannot_take_are_refused_by_name(arch: str) -> None:
    r = rule(arch)
    model = build(arch, 1).eval()
    with torch.no_grad(), pytest.raises(RuntimeError, match=f"divisible by {r.multiple}. Consider pad"):
        model(torch.randn(BATCH, 1, *ODD_SIZE))
    if r.minimum > r.multiple:
        with torch.no_grad(), pytest.raises(RuntimeError, match=r.too_small):
            model(torch.randn(BATCH, 1, r.minimum // 2, r.minimum // 2))


# -- (b) gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter(arch: str) -> None:
    model = build(arch, 4).train()
    out = model(smooth_images(BATCH, valid_size(arch)) / 255.0)
    # Random per-pixel weights: a plain sum would give a constant upstream gradient, which a
    # train-mode BatchNorm removes entirely (its batch mean cancels it).
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).mean().backward()

    prefixes, why = UNUSED_PARAMETERS.get(arch, ((), "every parameter is used"))
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    unused = {name for name in params if name.startswith(prefixes)} if prefixes else set()
    no_grad = {name for name, p in params.items() if p.grad is None}
    assert no_grad == unused, f"without gradient: {sorted(no_grad ^ unused)[:5]} ({why})"
    used = {name: p for name, p in params.items() if name not in unused}
    assert all(torch.isfinite(p.grad).all() for p in used.values())
    zero = sorted(name for name, p in used.items() if not p.grad.abs().sum() > 0)
    assert len(zero) <= (1 - MIN_NONZERO_GRADIENTS) * len(used), f"zero gradients: {zero}"


# -- (c) bf16 autocast + channels_last -------------------------------------------------------------


@pytest.mark.parametrize("classes", [1, 4])
@pytest.mark.parametrize("arch", ARCHS)
def test_bf16_channels_last_agrees_with_float32(arch: str, classes: int) -> None:
    images = minmax(smooth_images(4, valid_size(arch, (EXPORT_SIZE, EXPORT_SIZE))))
    model = calibrate_head(build(arch, classes), images)
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = fast(images.contiguous(memory_format=torch.channels_last))
    assert low.dtype == torch.bfloat16, "autocast did not run the network in bf16"
    assert low.shape == reference.shape
    assert torch.isfinite(low).all()
    check_not_degenerate(masks(reference), classes)
    agreement = float((masks(low.float()) == masks(reference)).float().mean())
    assert agreement >= BF16_MIN_AGREEMENT


# -- (d) ONNX export parity ------------------------------------------------------------------------


def plan_for(classes: int, size: tuple[int, int]) -> Plan:
    names = ["background", "LV"] if classes == 1 else ["background", "LV", "MYO", "LA"]
    return Plan(preprocess=PreprocessConfig(size=size, normalize="minmax"),
                classes=tuple(ClassSpec(id=i, name=name) for i, name in enumerate(names)))


BINARY_EXPORTS_BY_DEFAULT = ("plain_unet",)
"""An export takes 3 to 15 s here, so by default every architecture is exported once, with the
4-class head (softmax; tests/inference/test_export_parity covers binary heads on real images),
and one binary head keeps the sigmoid path in the default run. The rest is marked exhaustive:
left out of the default run (2 minutes), run with `pytest -m exhaustive`."""
EXPORT_CASES = [pytest.param(arch, 4, id=f"{arch}-4") for arch in ARCHS] + [
    pytest.param(arch, 1, id=f"{arch}-1", marks=() if arch in BINARY_EXPORTS_BY_DEFAULT else pytest.mark.exhaustive)
    for arch in ARCHS
]


@pytest.mark.parametrize(("arch", "classes"), EXPORT_CASES)
def test_onnx_export_matches_pytorch(arch: str, classes: int, tmp_path: Path) -> None:
    # Imported here: should the inference package fail to import, parts (a)-(c) still run.
    from cardioseg.inference.export import deployable, export_bundle
    from cardioseg.inference.onnx_backend import open_session
    from cardioseg.models.checkpoint import ModelBundle

    size = valid_size(arch, (EXPORT_SIZE, EXPORT_SIZE))
    raw = smooth_images(4, size, seed=2)
    model = calibrate_head(build(arch, classes), minmax(raw))
    bundle = ModelBundle(model=model, model_cfg=model_config(arch, classes), plan=plan_for(classes, size))
    exported = export_bundle(bundle, tmp_path / "m.onnx", ExportConfig()).path

    x = raw.numpy()
    with torch.no_grad():
        expected = deployable(bundle)(torch.from_numpy(x)).numpy()
    got = open_session(exported, threads=1).run(None, {"image": x})[0]
    assert got.shape == expected.shape == (4, classes, *size)
    assert np.abs(got - expected).max() < MAX_PROB_DIFF
    if classes == 1:
        mask_got, mask_expected = got[:, 0] > 0.5, expected[:, 0] > 0.5
    else:
        mask_got, mask_expected = got.argmax(axis=1), expected.argmax(axis=1)
    check_not_degenerate(torch.from_numpy(mask_expected).long(), classes)
    assert (mask_got == mask_expected).mean() >= MIN_MASK_AGREEMENT
