"""`cardioseg evaluate` scores exactly what `cardioseg predict` writes: same segmenter, backends, TTA, ensembles.

Real camus224 images and a real MSD volume; the masks evaluate keeps (``predictions.npz``) are
compared voxel for voxel with the files predict writes for the same raw inputs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from inference_helpers import CAMUS_PRE, camus_files, make_bundle, network_inputs
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from cardioseg.artifacts import EvaluationFiles, PredictionFiles
from cardioseg.cli import app
from cardioseg.config import Config, ModelConfig, PreprocessConfig, load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.evaluate import case_probabilities, score_case
from cardioseg.evaluation.metrics import overlap_metrics
from cardioseg.inference.members import Member
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.torch_backend import TorchBackend
from cardioseg.models.checkpoint import ModelBundle, save_bundle
from cardioseg.plan import ClassSpec, Plan

POST = ["--set", "evaluate.postprocess.closing_radius=1", "--set", "evaluate.postprocess.largest_component=true"]
PREDICT_POST = ["--closing-radius", "1", "--largest-component"]


@pytest.fixture(scope="module")
def two_models(camus224: Path, camus_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The calibrated 64x64 test checkpoint and a second one at 96x96: an ensemble of different plans."""
    folder = tmp_path_factory.mktemp("two")
    first = Path(shutil.copy(camus_checkpoint, folder / "first.safetensors"))
    pre96 = CAMUS_PRE.model_copy(update={"size": (96, 96)})
    other = make_bundle("plain_unet", network_inputs(camus_files(camus224, 8), pre96), pre96, seed=1, base=8)
    models = [first, save_bundle(other, folder / "other.safetensors")]
    for model in models:  # exported once, next to the checkpoint, where --backend onnx finds it
        assert CliRunner().invoke(app, ["export", "-m", str(model)]).exit_code == 0
    return models


def _models(models: list[Path]) -> list[str]:
    return [arg for m in models for arg in ("-m", str(m))]


def _raw_camus_folder(camus224: Path, folder: Path, count: int) -> Path:
    """A raw CAMUS-PNG folder of the first ``count`` validation images and their references."""
    folder.mkdir()
    for file in camus_files(camus224, count):
        shutil.copy(file, folder / file.name)
        shutil.copy(file.with_name(file.stem + "_gt.png"), folder / f"{file.stem}_gt.png")
    return folder


def test_evaluate_scores_the_masks_predict_writes_2d(camus224: Path, two_models: list[Path], tmp_path: Path) -> None:
    raw = _raw_camus_folder(camus224, tmp_path / "raw", 6)
    runner = CliRunner()
    shipped = [*_models(two_models), "--tta", "--backend", "onnx"]
    evaluated = runner.invoke(app, ["evaluate", *shipped, "-d", str(raw), "--split", "all", "-o", str(tmp_path / "ev"),
                                    "-q", *POST])
    assert evaluated.exit_code == 0, evaluated.output
    images = sorted(raw.glob("patient*_E?.png"))
    predicted = runner.invoke(app, ["predict", *shipped, *map(str, images), "-o", str(tmp_path / "pred"), "-q",
                                    *PREDICT_POST])
    assert predicted.exit_code == 0, predicted.output

    files = EvaluationFiles(tmp_path / "ev")
    summary = json.loads(files.summary.read_text())
    assert summary["backends"] == ["onnx", "onnx"] and summary["tta"] and len(summary["models"]) == 2
    with np.load(files.predictions) as store:
        kept = {key: store[key] for key in store}
    per_case = pd.read_csv(files.per_case)
    prepared = PreparedDataset(files.prepared)  # the raw folder, prepared on the fly to the models' plan
    post = per_case[per_case.variant == "post"].set_index("case_id")
    assert len(kept) == len(images) == len(post)
    for image in images:
        written = np.array(Image.open(PredictionFiles(tmp_path / "pred").mask(image.stem)))
        np.testing.assert_array_equal(written.T, kept[image.stem])  # camus224 is stored transposed
        dice = overlap_metrics(written.T == 1, prepared.original_label(image.stem) == 1)["dice"]
        assert post.loc[image.stem, "dice"] == pytest.approx(dice, abs=1e-9)


@pytest.fixture(scope="module")
def small_msd(small_volume: Path, msd_heart_la: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-volume MSD folder: the cut-down la_003 and its label cut the same way."""
    root = tmp_path_factory.mktemp("msd")
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    shutil.copy(small_volume, root / "imagesTr" / "la_003.nii.gz")
    label = nib.load(msd_heart_la / "labelsTr" / "la_003.nii.gz")
    middle = label.shape[2] // 2
    cropped = label.slicer[64:192, 72:184, middle - 2 : middle + 3]
    nib.save(nib.Nifti1Image(np.asanyarray(cropped.dataobj), cropped.affine, cropped.header),
             root / "labelsTr" / "la_003.nii.gz")
    descriptor = json.loads((msd_heart_la / "dataset.json").read_text())
    descriptor["training"] = [{"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}]
    (root / "dataset.json").write_text(json.dumps(descriptor))
    return root


def test_evaluate_scores_the_masks_predict_writes_3d(small_msd: Path, two_models: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    shipped = [*_models(two_models), "--tta", "--backend", "torch", "--precision", "32"]
    evaluated = runner.invoke(app, ["evaluate", *shipped, "-d", str(small_msd), "--split", "all",
                                    "-o", str(tmp_path / "ev"), "-q", *POST])
    assert evaluated.exit_code == 0, evaluated.output
    volume = small_msd / "imagesTr" / "la_003.nii.gz"
    predicted = runner.invoke(app, ["predict", *shipped, str(volume), "-o", str(tmp_path / "pred"), "-q", *PREDICT_POST])
    assert predicted.exit_code == 0, predicted.output
    written = np.asanyarray(nib.load(PredictionFiles(tmp_path / "pred").mask("la_003", volume=True)).dataobj)
    with np.load(EvaluationFiles(tmp_path / "ev").predictions) as store:
        np.testing.assert_array_equal(written, store["la_003"])
    assert written.any()


class Brightness(nn.Module):
    """A pixel-wise model: logit = 12 (normalised intensity - 0.55), so bright blood pools are foreground."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        nn.init.constant_(self.conv.weight, 12.0)
        nn.init.constant_(self.conv.bias, -12.0 * 0.55)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.conv(x)


def test_volume_sliced_along_any_axis_scores_alike(msd_heart_la: Path, tmp_path: Path) -> None:
    """The same pixel-wise model on la_003 sliced along axis 0, 1 and 2: the same 3D Dice within 0.01.

    A reassembly or post-processing along the wrong axis (post-processing of axis-0 volumes used
    to run along axis 2) changes the mask completely.
    """
    root = tmp_path / "one"
    for folder in ("imagesTr", "labelsTr"):  # la_003 around its atrium, every slice: a quarter of the voxels
        (root / folder).mkdir(parents=True)
        whole = nib.load(msd_heart_la / folder / "la_003.nii.gz")
        part = whole.slicer[64:192, 72:184, :]
        nib.save(nib.Nifti1Image(np.asanyarray(part.dataobj), part.affine, part.header), root / folder / "la_003.nii.gz")
    descriptor = json.loads((msd_heart_la / "dataset.json").read_text())
    descriptor["training"] = [{"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}]
    (root / "dataset.json").write_text(json.dumps(descriptor))
    pre = PreprocessConfig(normalize="percentile", percentiles=(1.0, 99.0), size=(128, 128))
    cfg = load_config(overrides={"data.source": root, "data.prepared": tmp_path / "prepared",
                                 "preprocess.normalize": "percentile", "preprocess.percentiles": [1, 99],
                                 "preprocess.size": [128, 128], "evaluate.postprocess.largest_component": True})
    prepared = PreparedDataset(prepare_dataset(cfg, progress=False).out_dir)
    scores = {}
    for axis in (0, 1, 2):
        plan = Plan(layout="msd", is_3d=True, slice_axis=axis, preprocess=pre, label_map=None,
                    classes=(ClassSpec(id=0, name="background"), ClassSpec(id=1, name="left atrium", role="left_atrium")))
        bundle = ModelBundle(Brightness().eval(), ModelConfig(arch="unet", classes=1), plan)
        member = Member(Path(f"axis{axis}"), "torch", TorchBackend(bundle, precision="32"), plan, bundle.model_cfg, 2)
        segmenter = Segmenter([member])
        [(case, prob)] = list(case_probabilities(segmenter, prepared, ["la_003"], 16))
        result, post = score_case(prob, prepared.original_label(case), plan, cfg, prepared.spacing(case), axis, [])
        scores[axis] = (result["raw"]["left atrium"]["dice"], result["post"]["left atrium"]["dice"])
    raw = [s[0] for s in scores.values()]
    post = [s[1] for s in scores.values()]
    assert min(post) > 0.05, scores  # the bright pools overlap the atrium (they are not only the atrium)
    assert max(raw) - min(raw) < 0.01 and max(post) - min(post) < 0.01, scores


def test_post_processing_runs_along_the_slice_axis() -> None:
    """A bar 20 voxels long along axis 0, 3x3 across: its axis-0 slices are 9 voxels, its axis-2 slices 60."""
    prob = np.zeros((1, 20, 10, 10), np.float32)
    prob[0, :, 4:7, 4:7] = 0.9
    ref = (prob[0] > 0.5).astype(np.uint8)
    plan = Plan(is_3d=True)
    cfg = Config()
    cfg.evaluate.postprocess.min_slice_area = 20
    along_0 = score_case(prob, ref, plan, cfg, None, 0, [])[1]
    along_2 = score_case(prob, ref, plan, cfg, None, 2, [])[1]
    assert not along_0.any()  # every axis-0 slice holds 9 < 20 voxels: emptied
    np.testing.assert_array_equal(along_2, ref)  # the three axis-2 slices hold 60 voxels each: kept


def test_undrawn_classes_are_left_out_of_that_cases_metrics() -> None:
    """Myocardium undrawn on a slice: no myocardium score for it, the cavity still scored (255 = unknown)."""
    ref = np.full((8, 8), 255, np.uint8)
    ref[2:5, 2:5] = 1
    prob = np.zeros((3, 8, 8), np.float32)
    prob[0] = 1.0
    prob[:, 2:5, 2:5] = [[[0.0]], [[1.0]], [[0.0]]]
    prob[:, 0, 0] = [0.0, 0.0, 1.0]  # myocardium predicted where nobody drew it: no penalty
    plan = Plan(classes=(ClassSpec(id=0, name="background"), ClassSpec(id=1, name="cavity"), ClassSpec(id=2, name="myo")))
    scores, _ = score_case(prob, ref, plan, Config(), None, 2, [2])
    assert set(scores["raw"]) == {"cavity"} and scores["raw"]["cavity"]["dice"] == 1.0
    scores, _ = score_case(prob, ref, plan, Config(), None, 2, [])
    assert set(scores["raw"]) == {"cavity", "myo"} and scores["raw"]["myo"]["dice"] == 0.0


def test_an_earlier_evaluation_is_replaced_only_with_overwrite(camus224: Path, camus_checkpoint: Path,
                                                               tmp_path: Path) -> None:
    model = Path(shutil.copy(camus_checkpoint, tmp_path / "model.safetensors"))
    raw = _raw_camus_folder(camus224, tmp_path / "echo_lab", 4)
    runner = CliRunner()

    def evaluate(*extra: str) -> str:
        result = runner.invoke(app, ["evaluate", "-m", str(model), "-d", str(raw), "-q", *extra])
        return " ".join(result.output.split()) + f" [exit {result.exit_code}]"

    said = evaluate("--split", "all")
    assert said.endswith("[exit 0]")
    # one patient's 2CH and 4CH at ED and ES: the console shows the EF agreement and names the clinical files
    assert "EF (biplane Simpson, 1 of 1 patients measurable)" in said and "EF: bias" in said
    assert "Clinical files: clinical_ef.csv" in said
    first = EvaluationFiles(tmp_path / "evaluation" / "echo_lab-all")
    assert json.loads(first.summary.read_text())["split"] == "all"
    written = first.summary.stat().st_mtime_ns

    refused = evaluate("--split", "all")
    assert "already holds an evaluation" in refused and "--overwrite" in refused and refused.endswith("[exit 1]")
    assert first.summary.stat().st_mtime_ns == written  # untouched

    assert evaluate("--split", "all", "--overwrite").endswith("[exit 0]")
    assert first.summary.stat().st_mtime_ns > written
