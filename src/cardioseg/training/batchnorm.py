"""BatchNorm statistics that match the weights being evaluated ("precise BN").

During training each BatchNorm layer keeps an exponential moving average of the batch statistics
it has seen. In a short run the weights change so fast that this average describes networks that
no longer exist: the network normalises with stale statistics in evaluation mode and can output
nothing at all (MA-Net on MobileNetV2 after 45 steps: training loss 0.13, validation Dice 0.00;
0.85 once the statistics were re-estimated). Re-estimating them from recent training batches with
the current weights, just before validation, removes the lag.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [layer for layer in model.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)]


def set_batchnorm_momentum(model: nn.Module, momentum: float) -> int:
    """Give every BatchNorm layer the same running-statistics momentum; returns how many were changed."""
    changed = [layer for layer in batchnorm_layers(model) if layer.momentum != momentum]
    for layer in changed:
        layer.momentum = momentum
    return len(changed)


def slow_batchnorm_layers(model: nn.Module, below: float = 0.05) -> int:
    """How many BatchNorm layers use a running-statistics momentum under ``below`` (TensorFlow-style 0.01)."""
    return sum(1 for layer in batchnorm_layers(model) if layer.momentum is not None and layer.momentum < below)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace every BatchNorm's running statistics by their plain average over ``batches``.

    The weights are untouched; the model's train/eval mode and each layer's momentum are
    restored. Returns the number of batches used (0 leaves the statistics as they were).
    """
    layers = batchnorm_layers(model)
    batches = list(batches)
    if not layers or not batches:
        return 0
    momenta = [layer.momentum for layer in layers]
    was_training = model.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average: every batch weighs the same
    model.train()
    try:
        for images in batches:
            model(images)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    return len(batches)
