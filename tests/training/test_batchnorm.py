"""Precise BN: running statistics re-estimated from given batches, worked out by hand."""

import torch
from torch import nn

from cardioseg.training.batchnorm import recalibrate_batchnorm


def test_statistics_become_the_plain_average_over_the_batches() -> None:
    conv = nn.Conv2d(1, 2, 1, bias=False)
    conv.weight.data = torch.tensor([1.0, 2.0]).view(2, 1, 1, 1)  # channel 0 = x, channel 1 = 2x
    model = nn.Sequential(conv, nn.BatchNorm2d(2, momentum=0.1)).eval()
    model[1].running_mean.fill_(100.0)  # stale statistics from "earlier weights"
    batches = [torch.full((4, 1, 3, 3), 1.0), torch.full((4, 1, 3, 3), 3.0)]
    assert recalibrate_batchnorm(model, batches) == 2
    bn = model[1]
    # Batch means per channel: (1, 2) then (3, 6); their plain average is (2, 4), not an EMA of them.
    torch.testing.assert_close(bn.running_mean, torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(bn.running_var, torch.zeros(2))  # each batch is constant
    assert int(bn.num_batches_tracked) == 2 and bn.momentum == 0.1
    assert not model.training  # the caller's mode is kept
    torch.testing.assert_close(conv.weight.view(2), torch.tensor([1.0, 2.0]))  # weights untouched


def test_no_batches_or_no_batchnorm_changes_nothing() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))
    model[1].running_mean.fill_(5.0)
    assert recalibrate_batchnorm(model, []) == 0
    assert float(model[1].running_mean) == 5.0
    assert recalibrate_batchnorm(nn.Conv2d(1, 1, 1), [torch.ones(1, 1, 2, 2)]) == 0
