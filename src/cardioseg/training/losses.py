"""Segmentation losses; binary tasks use one logit channel, multi-class tasks K+1 channels.

Pixels labelled ``IGNORE_LABEL`` (their class is unknown: background, or a structure that was not
drawn on that image) count in no loss term.
"""

from __future__ import annotations

import torch
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss
from torch import nn

from cardioseg.config import TrainConfig
from cardioseg.errors import ConfigError
from cardioseg.plan import IGNORE_LABEL


class MaskedBCE(nn.Module):
    """Binary cross-entropy over the pixels whose label is known."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        known = target != IGNORE_LABEL
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target.clamp(0, 1), reduction="none")
        return (loss * known).sum() / known.sum().clamp(min=1)


class WeightedSum(nn.Module):
    """w * Dice + (1 - w) * pixel loss (the echo study weights Dice and BCE 0.5/0.5)."""

    def __init__(self, dice: nn.Module, pixel: nn.Module, dice_weight: float):
        super().__init__()
        self.dice, self.pixel, self.dice_weight = dice, pixel, dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice_weight * self.dice(logits, target) + (1 - self.dice_weight) * self.pixel(logits, target)


def default_loss(binary: bool) -> str:
    """The loss when none is set: Dice + BCE for one foreground class (the echo study's), Dice + CE for several."""
    return "dice_bce" if binary else "dice_ce"


def build_loss(cfg: TrainConfig, binary: bool) -> nn.Module:
    if cfg.loss is None:
        cfg = cfg.model_copy(update={"loss": default_loss(binary)})
    mode = "binary" if binary else "multiclass"
    dice = DiceLoss(mode=mode, from_logits=True, ignore_index=IGNORE_LABEL)
    pixel: nn.Module = MaskedBCE() if binary else nn.CrossEntropyLoss(ignore_index=IGNORE_LABEL)
    if cfg.loss == "bce":
        if not binary:
            raise ConfigError("loss bce is for binary tasks; use dice_ce for several classes")
        return pixel
    if cfg.loss == "dice":
        return dice
    if cfg.loss in ("dice_bce", "dice_ce"):
        if (cfg.loss == "dice_bce") != binary:
            raise ConfigError(f"loss {cfg.loss} does not fit a {'binary' if binary else 'multi-class'} task")
        return WeightedSum(dice, pixel, cfg.dice_weight)
    if cfg.loss == "focal":
        return FocalLoss(mode=mode, ignore_index=IGNORE_LABEL)
    raise ConfigError(f"unknown loss {cfg.loss!r}")
