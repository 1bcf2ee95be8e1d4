"""Pixels of unknown class (255: background, or a structure not drawn on that image) count in no loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cardioseg.config import TrainConfig, load_config
from cardioseg.data.dataset import SliceDataset
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.plan import IGNORE_LABEL
from cardioseg.training.losses import MaskedBCE, build_loss


def test_masked_bce_by_hand() -> None:
    """Logits 0 and 0, targets 1 and unknown: the loss is that of the first pixel alone, log 2."""
    loss = MaskedBCE()(torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, IGNORE_LABEL]]]]))
    assert float(loss) == pytest.approx(math.log(2))
    moved = MaskedBCE()(torch.tensor([[[[0.0, 9.0]]]]), torch.tensor([[[[1.0, IGNORE_LABEL]]]]))
    assert float(moved) == pytest.approx(math.log(2))  # the unknown pixel's logit does not matter


@pytest.mark.parametrize(("labels", "loss"), [({1: 1, 2: 2}, "dice_ce"), ({2: 1}, "dice_bce")])
def test_undrawn_sunnybrook_myocardium_gets_no_gradient(labels: dict[int, int], loss: str, sunnybrook5: Path,
                                                        tmp_path: Path) -> None:
    """On the real slices whose myocardium nobody drew, the network is told nothing about their non-cavity pixels."""
    cfg = load_config(overrides={"data.source": sunnybrook5, "data.prepared": tmp_path / "sb", "data.labels": labels,
                                 "preprocess.size": [32, 32]})
    prepared = PreparedDataset(prepare_dataset(cfg, progress=False).out_dir)
    binary = prepared.plan.binary
    dataset = SliceDataset(prepared, None, binary)
    undrawn = [i for i in range(len(dataset)) if (dataset.labels[i] == IGNORE_LABEL).any()]
    assert len(undrawn) == 96 - 37  # the slices without a usable epicardial contour
    _, target = dataset[undrawn[0]]
    logits = torch.randn(1, prepared.plan.out_channels, 32, 32, requires_grad=True)
    build_loss(TrainConfig(loss=loss), binary)(logits, target[None]).backward()
    unknown = (target == IGNORE_LABEL).reshape(32, 32)
    assert unknown.any() and (~unknown).any()
    grad = logits.grad[0].abs().sum(0)
    assert float(grad[unknown].max()) == 0.0
    assert float(grad[~unknown].max()) > 0.0
