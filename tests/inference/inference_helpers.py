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
from cardioseg.data.preprocess import orient, preprocess_2d
from cardioseg.data.readers.base import read_raster
from cardioseg.models.checkpoint import ModelBundle
from cardioseg.models.factory import build_model

CAMUS_PRE = PreprocessConfig(normalize="minmax", size=(64, 64))


def camus_files(camus224: Path, count: int) -> list[Path]:
    return sorted((camus224 / "val").glob("patient*_E?.png"))[:count]


def network_inputs(files: list[Path], pre: PreprocessConfig, fix: str = "transpose") -> torch.Tensor:
    """Images as the network sees them: oriented, normalised, resized; (N, 1, H, W)."""
    return torch.from_numpy(np.stack([preprocess_2d(orient(read_raster(f), fix), None, pre)[0] for f in files]))[:, None]


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
    return ModelBundle(model, cfg, pre, fix, labels={1: 1}, class_names={0: "background", 1: "LV"},
                       extra={"slice_axis": 2})
