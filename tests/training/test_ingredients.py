"""Training ingredients of issue 14, measured in benchmarks/ingredients.py: progressive resizing, deep supervision
and checkpoint averaging. Here: what each does, on hand-checked tensors and on a short real run."""

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn

from cardioseg.config import ModelConfig, load_config
from cardioseg.errors import ConfigError
from cardioseg.models.checkpoint import load_bundle
from cardioseg.models.factory import build_model
from cardioseg.plan import IGNORE_LABEL
from cardioseg.training.callbacks import TailAverage
from cardioseg.training.deep_supervision import DeepSupervision
from cardioseg.training.module import half_size
from cardioseg.training.run import train


def test_half_size_averages_images_and_keeps_labels_and_unknown_pixels() -> None:
    images = torch.arange(128 * 128, dtype=torch.float32).reshape(1, 1, 128, 128)
    labels = torch.zeros(1, 128, 128, dtype=torch.int64)
    labels[0, 32:64, 64:128] = 2
    labels[0, :8, :8] = IGNORE_LABEL
    small, small_labels = half_size(images, labels)
    assert small.shape == (1, 1, 64, 64) and small_labels.shape == (1, 64, 64) and small_labels.dtype == torch.int64
    assert small[0, 0, 0, 0] == (0 + 1 + 128 + 129) / 4  # a 2x2 block's mean
    assert (small_labels[0, 16:32, 32:64] == 2).all() and (small_labels[0, :4, :4] == IGNORE_LABEL).all()
    assert int((small_labels == 2).sum()) == 16 * 32 and int((small_labels == IGNORE_LABEL).sum()) == 16
    binary = torch.zeros(2, 1, 96, 160)
    assert [t.shape for t in half_size(binary, binary)] == [(2, 1, 64, 96), (2, 1, 64, 96)]  # multiples of 32


def test_deep_supervision_weighs_the_coarser_stages_half_as_much_each() -> None:
    model = build_model(ModelConfig(arch="unet", encoder="resnet18", classes=3))
    supervised = DeepSupervision(model, "unet", levels=2, in_channels=1, classes=3)
    decoder = model.decoder.blocks
    assert [h.in_channels for h in supervised.heads] == [decoder[-3].conv2[0].out_channels,
                                                         decoder[-2].conv2[0].out_channels]
    assert supervised.weights == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    model.train()
    logits = model(torch.randn(2, 1, 64, 64))
    assert [o.shape[-1] for o in supervised._outputs] == [16, 32]  # the 1/4 and 1/2 stages, kept in training

    def mean_logit(out: torch.Tensor, _target: torch.Tensor) -> torch.Tensor:
        return out.mean()

    coarse = [nn.functional.interpolate(head(o), size=(64, 64), mode="bilinear").mean()
              for head, o in zip(supervised.heads, supervised._outputs)]
    expected = 4 / 7 * logits.mean() + 2 / 7 * coarse[1] + 1 / 7 * coarse[0]
    found = supervised.loss(mean_logit, logits, torch.zeros(2, 64, 64))
    assert float(found.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 1, 64, 64))
    assert supervised._outputs == []  # validation keeps nothing


def test_deep_supervision_refuses_a_decoder_without_stages() -> None:
    model = build_model(ModelConfig(arch="fpn", encoder="resnet18", classes=1))
    with pytest.raises(ConfigError, match="fpn has none"):
        DeepSupervision(model, "fpn", levels=2, in_channels=1, classes=1)


def test_checkpoint_averaging_follows_the_weights_then_averages_the_last_share_flat() -> None:
    """A weight set to the step number after each of 10 steps; the last 30 % (steps 7-10, by progress = step / 10)
    average to 8.5, and before the tail the average is the current weight."""

    class One(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1))

    module, tail = One(), TailAverage(0.3, total_steps=10, budget_s=None)
    trainer = SimpleNamespace(global_step=0, callbacks=[], current_epoch=0)
    tail.setup(trainer, module, "fit")
    averaged = next(tail._average_model.module.parameters()).detach()
    for step in range(1, 11):
        with torch.no_grad():
            module.weight.fill_(step)
        trainer.global_step = step
        tail.on_train_batch_end(trainer, module, None, None, step - 1)
        if step == 5:
            assert float(averaged) == 5.0 and tail.tail_steps == 0
    assert tail.tail_steps == 4 and float(averaged) == pytest.approx((7 + 8 + 9 + 10) / 4)
    resumed = TailAverage(0.3, total_steps=10, budget_s=None)
    resumed.load_state_dict(tail.state_dict())
    assert resumed.tail_steps == 4


def test_a_run_with_all_three_trains_saves_the_network_alone_and_predicts(camus64: Path, tmp_path: Path) -> None:
    """Half size for the first half of 8 steps, deep supervision throughout, the last half's weights averaged: the
    saved model is a plain U-Net (no heads) whose masks overlap the reference, so the ingredients train the network
    they wrap."""
    cfg = load_config(overrides={
        "data.prepared": camus64, "train.run_dir": tmp_path / "run", "model.arch": "unet",
        "model.encoder": "resnet18", "train.epochs": 2, "train.batch_size": 8, "train.batches_per_epoch": 4,
        "train.num_workers": 0, "train.progressive_resize": 0.5, "train.deep_supervision": 2, "train.lr": 3e-3,
        "train.recalibrate_bn_batches": 4, "train.average_last": 0.5,
    })
    result = train(cfg, progress=False)
    assert result.steps == 8
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert any(key.startswith("deep_supervision.heads.") for key in state)
    bundle = load_bundle(result.model_path)
    assert not any("heads" in key for key in bundle.model.state_dict())
    assert result.best_val_dice is not None and result.best_val_dice > 0.3
