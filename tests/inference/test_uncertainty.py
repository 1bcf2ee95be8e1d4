"""The uncertainty score of the segmenter, by hand: flips and ensemble members that disagree by a known amount."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardioseg.config import ModelConfig, PreprocessConfig
from cardioseg.inference.members import Member
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.volumes import ArrayVolume
from cardioseg.plan import ClassSpec, Plan


class Ramp:
    """Ignores its input: a left-to-right ramp, so its left-right flip says the opposite."""

    batch_size = 16
    seconds = 0.0
    ms_per_image = 0.0

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        ramp = np.linspace(0, 1, images.shape[-1], dtype=np.float32)
        return np.broadcast_to(ramp, images.shape)[:, None].copy()


class Rows(Ramp):
    """A top-to-bottom ramp: the up-down flip disagrees, the left-right one does not."""

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.swapaxes(super().probabilities(np.swapaxes(images, 1, 2)), 2, 3)


def _member(backend: object, is_3d: bool = False) -> Member:
    plan = Plan(layout="folders", is_3d=is_3d, preprocess=PreprocessConfig(normalize="none", size=(64, 64)),
                classes=(ClassSpec(id=0, name="background"), ClassSpec(id=1, name="LV", role="lv_cavity")))
    return Member(Path("m"), "fake", backend, plan, ModelConfig(classes=1), 0)  # type: ignore[arg-type]


def test_flips_that_disagree_by_half_the_image() -> None:
    image = np.zeros((64, 64), np.float32)
    # identity and up-down say "right half", left-right says "left half": Dice 0, 1, 0 -> 1 - 1/3
    _, (score,) = Segmenter([_member(Ramp())], tta=True).images_with_uncertainty([image])
    assert score == pytest.approx(2 / 3)
    _, (single,) = Segmenter([_member(Ramp())]).images_with_uncertainty([image])
    assert single is None  # one opinion: nothing to disagree with
    assert Segmenter([_member(Ramp())]).new_agreement() is None


def test_ensemble_members_are_opinions_too() -> None:
    image = np.zeros((64, 64), np.float32)
    segmenter = Segmenter([_member(Ramp()), _member(Rows())])
    probs, (score,) = segmenter.images_with_uncertainty([image])
    # right half against bottom half: overlap a quarter of the image, Dice 2 * 1/4 / (1/2 + 1/2) = 0.5
    assert score == pytest.approx(0.5)
    np.testing.assert_allclose(probs[0], segmenter.images([image])[0])
    assert segmenter.n_opinions == 2 and Segmenter([_member(Ramp())], tta=True).n_opinions == 3


def test_a_volume_is_scored_as_a_whole() -> None:
    segmenter = Segmenter([_member(Ramp(), is_3d=True), _member(Rows(), is_3d=True)])
    agreement = segmenter.new_agreement()
    planes = list(segmenter.volume(ArrayVolume(np.zeros((64, 64, 3), np.float32)), 1 << 30, 2, agreement))
    assert [k for k, _ in planes] == [0, 1, 2]
    assert agreement is not None and agreement.uncertainty == pytest.approx(0.5)
