"""Ensembles and flip TTA: shapes, layouts and averaging, with stand-in backends and real checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from inference_helpers import CAMUS_PRE, camus_files, camus_plan, make_bundle, network_inputs
from PIL import Image

from cardioseg.config import ModelConfig, PreprocessConfig, load_config
from cardioseg.errors import ConfigError
from cardioseg.inference.members import Member
from cardioseg.inference.pipeline import Segmenter, flip_tta
from cardioseg.inference.predict import predict_files
from cardioseg.models.checkpoint import save_bundle


class Echo:
    """Backend whose foreground probability is its input image (flip-equivariant)."""

    batch_size = 16
    seconds = 0.0
    ms_per_image = 0.0

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.clip(images, 0, 1)[:, None].astype(np.float32)


class Ramp(Echo):
    """Backend that ignores its input: a left-to-right ramp, so flips change its answer."""

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        ramp = np.linspace(0, 1, images.shape[-1], dtype=np.float32)
        return np.broadcast_to(ramp, images.shape)[:, None].copy()


class Constant(Echo):
    def __init__(self, value: float, classes: int = 1) -> None:
        self.value, self.classes = value, classes

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.full((len(images), self.classes, *images.shape[1:]), self.value, np.float32)


def _member(backend: object, size: int = 64, fix: str = "none", classes: int = 1) -> Member:
    plan = camus_plan(PreprocessConfig(size=(size, size)), fix, classes)
    return Member(Path(f"m{size}{fix}"), "fake", backend, plan, ModelConfig(classes=classes), 0)  # type: ignore[arg-type]


def _gradient(height: int = 40, width: int = 60) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return (3.0 * rows + cols).astype(np.float32)


@pytest.mark.parametrize("fix", ["none", "transpose"])
def test_probabilities_come_back_in_the_input_layout(fix: str) -> None:
    image = _gradient()
    prob = Segmenter([_member(Echo(), fix=fix)]).images([image])[0]
    expected = (image - image.min()) / (image.max() - image.min())
    assert prob.shape == (1, 40, 60)
    np.testing.assert_allclose(prob[0], expected, atol=0.02)


def test_tta_averages_the_flipped_answers() -> None:
    images = np.stack([_gradient(32, 32)] * 2) / 200.0
    np.testing.assert_allclose(flip_tta(Echo(), images), Echo().probabilities(images), atol=1e-6)
    ramp = np.linspace(0, 1, 32, dtype=np.float32)
    # identity and up-down flip see the ramp as is; the left-right flip's answer is flipped back
    expected = np.broadcast_to((2 * ramp + ramp[::-1]) / 3, (32, 32))
    np.testing.assert_allclose(flip_tta(Ramp(), images)[0, 0], expected, atol=1e-6)


def test_ensemble_averages_members_of_different_sizes_and_layouts() -> None:
    segmenter = Segmenter([_member(Constant(0.2), 48, "none"), _member(Constant(0.6), 64, "transpose")], tta=True)
    probs = segmenter.images([_gradient(), _gradient(30, 20)])
    assert [p.shape for p in probs] == [(1, 40, 60), (1, 30, 20)]
    np.testing.assert_allclose(probs[0], 0.4, atol=1e-6)


def test_ensemble_members_must_agree_on_classes() -> None:
    with pytest.raises(ConfigError, match="disagree on the task"):
        Segmenter([_member(Constant(0.5)), _member(Constant(0.5, classes=3), classes=3)])


def test_checkpoint_ensemble_with_tta_is_the_mean_of_its_members(
    camus224: Path, camus_checkpoint: Path, tmp_path: Path
) -> None:
    """Two real checkpoints (64x64 and 96x96 inputs) on two camus224 images, each alone and together."""
    pre96 = CAMUS_PRE.model_copy(update={"size": (96, 96)})
    other = save_bundle(make_bundle("plain_unet", network_inputs(camus_files(camus224, 8), pre96), pre96, seed=1, base=8),
                        tmp_path / "other.safetensors")
    images = camus_files(camus224, 2)
    probs = {}
    for name, models in {"a": [camus_checkpoint], "b": [other], "ab": [camus_checkpoint, other]}.items():
        cfg = load_config(overrides={"predict.out_dir": tmp_path / name, "predict.tta": True,
                                     "predict.probabilities": True, "predict.backend": "torch"})
        predict_files(images, models, cfg)
        probs[name] = [np.load(tmp_path / name / f"{p.stem}_prob.npy") for p in images]
    for a, b, ab, path in zip(probs["a"], probs["b"], probs["ab"], images):
        assert ab.shape == (224, 224)
        np.testing.assert_allclose(ab, (a + b) / 2, atol=1e-5)
        mask = np.asarray(Image.open(tmp_path / "ab" / f"{path.stem}_mask.png"))
        np.testing.assert_array_equal(mask, ab > 0.5)
