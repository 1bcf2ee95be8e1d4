"""Two-stage models: a first stage finds the structure, the second segments the box around it at its own size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.config import ModelConfig, PreprocessConfig, load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.data.preprocess import foreground_box
from cardioseg.errors import ConfigError
from cardioseg.inference.members import Member
from cardioseg.inference.pipeline import Segmenter
from cardioseg.models.checkpoint import COARSE_PREFIX, load_bundle
from cardioseg.plan import Plan
from cardioseg.planning.planner import plan_recipe
from cardioseg.postprocess import to_labels
from cardioseg.training.run import train


def test_the_foreground_box_is_the_mask_box_widened_by_its_margin() -> None:
    mask = np.zeros((100, 100), bool)
    mask[10:20, 30:50] = True  # 10 rows x 20 columns
    # a quarter of each side: 2.5 -> at least 4 rows, 5 columns
    assert foreground_box(mask, 0.25) == (6, 24, 25, 55)
    assert foreground_box(mask, 1.0) == (0, 30, 10, 70)  # clipped at the top
    assert foreground_box(np.zeros((100, 100), bool), 0.25) == (0, 100, 0, 100)  # nothing found: look everywhere


class Block:
    """A stand-in network: probability 1 inside a fixed block of its input grid, 0 elsewhere."""

    batch_size, seconds, ms_per_image = 16, 0.0, 0.0

    def __init__(self, rows: slice, cols: slice) -> None:
        self.rows, self.cols = rows, cols

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        out = np.zeros((len(images), 1, *images.shape[-2:]), np.float32)
        out[:, 0, self.rows, self.cols] = 1.0
        return out


def test_the_second_stage_segments_where_the_first_stage_points() -> None:
    """The first stage marks a block; a second stage that calls everything in its crop foreground must return
    exactly the widened box of the first stage's mask, on the image's own grid."""
    first_plan = Plan(preprocess=PreprocessConfig(size=(32, 32)))
    second_plan = Plan(preprocess=PreprocessConfig(size=(32, 32), crop="foreground", foreground_margin=0.25))
    model_cfg = ModelConfig(arch="plain_unet", encoder=None)
    first = Member(Path("first"), "torch", Block(slice(8, 16), slice(8, 24)), first_plan, model_cfg, 0)
    second = Member(Path("second"), "torch", Block(slice(None), slice(None)), second_plan, model_cfg, 0, coarse=first)
    image = np.random.default_rng(0).random((100, 120)).astype(np.float32)

    found = to_labels(Segmenter([first]).images([image])[0]) > 0
    assert 0.05 < found.mean() < 0.3  # the block, restored to 100 x 120
    y0, y1, x0, x1 = foreground_box(found, 0.25)
    expected = np.zeros_like(found)
    expected[y0:y1, x0:x1] = True
    result = to_labels(Segmenter([second]).images([image])[0]) > 0
    assert np.array_equal(result, expected)


@pytest.fixture(scope="module")
def fine_prepared(msd_prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fine") / "prepared"
    prepare_dataset(load_config(overrides={
        "data.source": msd_prepared.parent / "raw", "data.prepared": out, "preprocess.size": [64, 64],
        "preprocess.normalize": "percentile", "preprocess.crop": "foreground",
        "data.split_ratios": [0.67, 0.17, 0.16]}), progress=False)
    return out


def test_preparing_the_second_stage_crops_each_volume_around_its_reference(fine_prepared: Path,
                                                                           msd_prepared: Path) -> None:
    fine = PreparedDataset(fine_prepared)
    for case_id in fine.cases:
        reference = fine.original_label(case_id) > 0
        box = foreground_box(reference.any(axis=2), 0.25)
        rows = fine.manifest[fine.manifest["case_id"] == case_id]
        assert {tuple(r) for r in rows[["crop_y0", "crop_y1", "crop_x0", "crop_x1"]].to_numpy()} == {box}
    # the recipe keeps the two-stage crop the data was prepared with
    recipe = plan_recipe(fine, 60.0, {"preprocess.size": (64, 64)})
    assert recipe.preprocess.crop == "foreground" and "two-stage" in recipe.reasons["preprocess.crop"]


def test_a_two_stage_model_trains_ships_in_one_file_and_segments_a_real_volume(
        msd_prepared: Path, fine_prepared: Path, tmp_path: Path) -> None:
    steps = {"train.epochs": 1, "train.batches_per_epoch": 2, "train.num_workers": 0, "train.precision": "32",
             "model.arch": "plain_unet"}
    coarse = train(load_config(overrides={"data.prepared": msd_prepared, "train.run_dir": tmp_path / "coarse",
                                          **steps}), progress=False)
    with pytest.raises(ConfigError, match=r"train\.coarse_model"):
        train(load_config(overrides={"data.prepared": fine_prepared, "train.run_dir": tmp_path / "alone", **steps}),
              progress=False)
    fine = train(load_config(overrides={"data.prepared": fine_prepared, "train.run_dir": tmp_path / "fine",
                                        "train.coarse_model": coarse.model_path, **steps}), progress=False)
    bundle = load_bundle(fine.model_path)
    assert bundle.coarse is not None and bundle.coarse.plan.preprocess.crop == "none"
    with safe_open(str(fine.model_path), "pt") as weights:
        assert any(key.startswith(COARSE_PREFIX) for key in weights.keys())

    source = msd_prepared.parent / "raw" / "imagesTr" / "la_016.nii.gz"
    result = CliRunner().invoke(app, ["predict", "-m", str(fine.model_path), str(source), "-o", str(tmp_path / "p"),
                                      "-q"])
    assert result.exit_code == 0, result.output
    import nibabel as nib

    mask, original = nib.load(tmp_path / "p" / "la_016_mask.nii.gz"), nib.load(source)
    assert mask.shape == original.shape and np.allclose(mask.affine, original.affine)
    refused = CliRunner().invoke(app, ["export", "-m", str(fine.model_path), "-o", str(tmp_path / "m.onnx")])
    assert refused.exit_code != 0 and "two-stage" in refused.output
