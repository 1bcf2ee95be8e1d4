"""Segmentation losses; binary tasks use one logit channel, multi-class tasks K+1 channels."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss
from torch import nn

from cardioseg.config import TrainConfig
from cardioseg.errors import ConfigError


class WeightedSum(nn.Module):
    """w * Dice + (1 - w) * pixel loss (the echo study weights Dice and BCE 0.5/0.5)."""

    def __init__(self, dice: nn.Module, pixel: nn.Module, dice_weight: float):
        super().__init__()
        self.dice, self.pixel, self.dice_weight = dice, pixel, dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice_weight * self.dice(logits, target) + (1 - self.dice_weight) * self.pixel(logits, target)


def build_loss(cfg: TrainConfig, binary: bool) -> nn.Module:
    mode = "binary" if binary else "multiclass"
    dice = DiceLoss(mode=mode, from_logits=True)
    pixel: nn.Module = nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss()
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
        return FocalLoss(mode=mode)
    raise ConfigError(f"unknown loss {cfg.loss!r}")
