"""A classical comparison row: segmentation by one global intensity threshold, no learned features."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from cardioseg.errors import ConfigError


class IntensityThreshold(nn.Module):
    """Foreground wherever a pixel's intensity lies beyond one global threshold: a study's non-learned baseline.

    The user says whether the structure is brighter (the blood pool on contrast MRI) or darker (the LV cavity on
    echo) than its surroundings, as with any classical threshold; the threshold and the steepness are then fitted on
    the training images by the same loop as every network, so the row differs from the networks only in having no
    learned features. The polarity is not learned: from the wrong side, predicting nothing is a local minimum that
    gradient descent cannot leave. Post-processing (closing, largest component, the empty-slice rules) then does
    what a classical pipeline does after thresholding."""

    def __init__(self, in_channels: int = 1, classes: int = 1, *, structure: Literal["bright", "dark"] = "bright",
                 threshold: float = 0.5, steepness: float = 10.0):
        if structure not in ("bright", "dark"):
            raise ConfigError(f"threshold baseline: structure must be 'bright' or 'dark', not {structure!r}")
        if steepness <= 0:
            raise ConfigError("threshold baseline: steepness must be positive (the structure option sets the sign)")
        if classes != 1:
            raise ConfigError(f"the threshold baseline segments one foreground class; this plan has {classes} "
                              "output channels")
        super().__init__()
        self.in_channels = in_channels
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))
        self.steepness = nn.Parameter(torch.tensor(float(steepness if structure == "bright" else -steepness)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return (image.mean(dim=1, keepdim=True) - self.threshold) * self.steepness


def intensity_threshold(in_channels: int = 1, classes: int = 1, *, structure: Literal["bright", "dark"] = "bright",
                        threshold: float = 0.5, steepness: float = 10.0) -> nn.Module:
    """Options: ``structure`` (bright or dark foreground), ``threshold`` (0.5) and ``steepness`` (10), the starting
    point in normalised intensity units; train it with a large learning rate (0.05): Adam moves each number by about
    the learning rate per step."""
    return IntensityThreshold(in_channels, classes, structure=structure, threshold=threshold, steepness=steepness)
