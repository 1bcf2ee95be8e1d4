"""Helpers for the inference tests: real camus224 inputs and small calibrated models.

Randomly initialised networks give probabilities near 0.5 everywhere, whose thresholded masks
are noise. ``calibrate_head`` rescales the last convolution so that, on the given real images,
the logits have median 0 and standard deviation 4: the masks then cover about half of each image
in a pattern that follows the image content, and most pixels are far from the threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cardioseg.config import ModelConfig, PreprocessConfig
from cardioseg.data.preprocess import Pipeline
from cardioseg.data.readers.base import read_raster
from cardioseg.models.checkpoint import ModelBundle
from cardioseg.models.factory import build_model
from cardioseg.plan import ClassSpec, Plan

CAMUS_PRE = PreprocessConfig(normalize="minmax", size=(64, 64))


def camus_files(camus224: Path, count: int) -> list[Path]:
    return sorted((camus224 / "val").glob("patient*_E?.png"))[:count]


def network_inputs(files: list[Path], pre: PreprocessConfig, fix: str = "transpose") -> torch.Tensor:
    """Images as the network sees them: oriented, normalised, resized; (N, 1, H, W)."""
    pipeline = Pipeline(pre, fix)
    return torch.from_numpy(np.stack([pipeline.image(read_raster(f))[0] for f in files]))[:, None]


@torch.no_grad()
def calibrate_head(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Scale and shift the final 1x1 convolution: logits on ``images`` get median 0 and std 4."""
    model.eval()
    head = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    logits = model(images)
    scale = 4.0 / float(logits.std())
    head.weight.mul_(scale)
    head.bias.copy_((head.bias - logits.median()) * scale)
    check = model(images)
    assert abs(float(check.median())) < 0.05 and abs(float(check.std()) - 4.0) < 0.05, "head is not the last linear layer"
    return model


def make_bundle(
    arch: str, images: torch.Tensor, pre: PreprocessConfig = CAMUS_PRE, fix: str = "transpose",
    classes: int = 1, seed: int = 0, **options: object,
) -> ModelBundle:
    torch.manual_seed(seed)
    cfg = ModelConfig(arch=arch, encoder="resnet18", classes=classes, options=options)
    model = build_model(cfg).eval()
    if classes == 1:
        calibrate_head(model, images)
    return ModelBundle(model, cfg, camus_plan(pre, fix, classes))


def camus_plan(pre: PreprocessConfig = CAMUS_PRE, fix: str = "transpose", channels: int = 1) -> Plan:
    """The plan of a camus224 model: LV cavity alone (one channel), or the three CAMUS structures."""
    if channels == 1:
        return Plan(layout="camus_png", orientation=fix, preprocess=pre, label_map={1: 1},
                    classes=(ClassSpec(id=0, name="background"), ClassSpec(id=1, name="LV", role="lv_cavity")))
    names = ("LV", "myocardium", "left atrium")[: channels - 1]
    return Plan(layout="camus_png", orientation=fix, preprocess=pre, label_map={i: i for i in range(1, channels)},
                classes=(ClassSpec(id=0, name="background"), *(ClassSpec(id=i + 1, name=n) for i, n in enumerate(names))))
