"""Deep supervision: the loss also scores the decoder's coarser outputs, as nnU-Net trains.

A 1x1 head on each of the last few coarser decoder stages predicts the classes; its logits are upsampled to
the target and scored with the same loss, weighted 1, 1/2, 1/4... from the finest output down. The heads
belong to the training module, not to the network: a trained model predicts exactly as one trained without.
"""

from __future__ import annotations

import torch
from segmentation_models_pytorch import Linknet, MAnet, Unet
from torch import nn

from cardioseg.errors import ConfigError

SUPPORTED = (Unet, MAnet, Linknet)
"""networks whose decoder is one block per scale, coarse to fine (``decoder.blocks``)"""


class DeepSupervision(nn.Module):
    """Heads on the ``levels`` decoder stages just coarser than the output, and the weighted loss over them."""

    def __init__(self, model: nn.Module, arch: str, levels: int, in_channels: int, classes: int) -> None:
        super().__init__()
        if not isinstance(model, SUPPORTED):
            raise ConfigError(f"train.deep_supervision needs a decoder with one block per scale (U-Net, MA-Net, "
                              f"LinkNet); {arch} has none: set train.deep_supervision=0")
        blocks = list(model.decoder.blocks)
        if levels >= len(blocks):
            raise ConfigError(f"train.deep_supervision={levels}: {arch}'s decoder has only {len(blocks) - 1} "
                              "stages coarser than its output")
        self.stages = blocks[-1 - levels:-1]
        self._outputs: list[torch.Tensor] = []
        self._probing = False
        for stage in self.stages:  # kept for training steps only: validation and BatchNorm recalibration
            stage.register_forward_hook(  # (no gradients) need no stage outputs
                lambda m, _i, out: self._outputs.append(out)
                if self._probing or (m.training and torch.is_grad_enabled()) else None)
        channels = self._stage_channels(model, in_channels)
        self.heads = nn.ModuleList(nn.Conv2d(c, classes, kernel_size=1) for c in channels)
        weights = [0.5 ** k for k in range(levels + 1)]  # finest (the network's output) first
        self.weights = [w / sum(weights) for w in weights]

    def _stage_channels(self, model: nn.Module, in_channels: int) -> list[int]:
        """The channel count of each supervised stage, from one forward pass of a small blank image."""
        was_training = model.training
        model.eval()
        self._probing = True
        with torch.no_grad():
            self.reset()
            model(torch.zeros(1, in_channels, 64, 64))
            channels = [out.shape[1] for out in self._outputs]
        self._probing = False
        model.train(was_training)
        self.reset()
        return channels

    def reset(self) -> None:
        """Forget the stage outputs of the last forward pass."""
        self._outputs = []

    def loss(self, loss_fn: nn.Module, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The weighted loss of the output and of each supervised stage, upsampled to the target's size."""
        total = self.weights[0] * loss_fn(logits, target)
        for weight, head, stage_out in zip(self.weights[1:], reversed(self.heads), reversed(self._outputs)):
            coarse = nn.functional.interpolate(head(stage_out).float(), size=logits.shape[-2:], mode="bilinear",
                                               align_corners=False)
            total = total + weight * loss_fn(coarse, target)
        self.reset()
        return total
