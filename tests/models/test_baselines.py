"""The threshold baseline: its output by hand, and its fit by the training loss (on real data: the thesis study's
comparison row, benchmarks/studies/la_mri_thesis_threshold.yaml)."""

import pytest
import torch

from cardioseg.config import ModelConfig, TrainConfig
from cardioseg.errors import ConfigError
from cardioseg.models.factory import build_model
from cardioseg.training.losses import build_loss


def test_logits_are_the_distance_from_the_threshold_times_the_steepness() -> None:
    model = build_model(ModelConfig(arch="threshold", encoder=None, options={"threshold": 0.25, "steepness": 8.0}))
    image = torch.tensor([[[[0.0, 0.25], [0.5, 1.0]]]])
    assert model(image).tolist() == [[[[-2.0, 0.0], [2.0, 6.0]]]]
    rgb = image.expand(1, 3, 2, 2)  # colour input: the mean of the channels is the intensity
    assert torch.equal(build_model(ModelConfig(arch="threshold", encoder=None, in_channels=3,
                                               options={"threshold": 0.25, "steepness": 8.0}))(rgb), model(image))
    assert sum(p.numel() for p in model.parameters()) == 2
    dark = build_model(ModelConfig(arch="threshold", encoder=None, options={"structure": "dark", "threshold": 0.25,
                                                                             "steepness": 8.0}))
    assert torch.equal(dark(image), -model(image))
    with pytest.raises(ConfigError, match="one foreground class"):
        build_model(ModelConfig(arch="threshold", encoder=None, classes=4))
    with pytest.raises(ConfigError, match="bright' or 'dark'"):
        build_model(ModelConfig(arch="threshold", encoder=None, options={"structure": "grey"}))


def test_fitted_with_the_training_loss_it_finds_the_gap_between_structure_and_background() -> None:
    """A bright disc (0.8) on a noisy background (0.3): from a threshold of 0.1, where everything is foreground,
    Adam at lr 0.05 with the training's Dice + BCE moves it into the gap and the masks become the disc."""
    generator = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    disc = ((yy - 16) ** 2 + (xx - 12) ** 2 < 64).float()
    images = (0.3 + 0.5 * disc + 0.05 * torch.randn(16, 1, 32, 32, generator=generator)).clamp(0, 1)
    labels = disc.expand(16, 1, 32, 32)
    model = build_model(ModelConfig(arch="threshold", encoder=None, options={"threshold": 0.1}))
    loss = build_loss(TrainConfig(loss="dice_bce"), binary=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        optimiser.zero_grad()
        loss(model(images), labels).backward()
        optimiser.step()
    assert 0.4 < float(model.threshold.detach()) < 0.7
    masks = model(images).detach() > 0
    assert float((masks == labels.bool()).float().mean()) > 0.99
