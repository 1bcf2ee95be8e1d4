"""The documented first hour, walked as a new user would, on real CAMUS files, with only the quick start's flags.

init -> images in data/images, masks of the same names in data/masks -> prepare with -c from outside
the project -> train -> evaluate -> report. The file names start with ``patient`` (the CAMUS PNG
layout's landmark), the masks hold four labels, and nothing beyond the quick start is typed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardioseg.artifacts import EvaluationFiles, RunFiles
from cardioseg.cli import app
from cardioseg.data.prepared import PreparedDataset
from cardioseg.models.checkpoint import load_bundle


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_first_hour_from_init_to_report(camus224: Path, tmp_path: Path) -> None:
    project = tmp_path / "myproject"
    _run("init", str(project))
    for image in sorted((camus224 / "train").glob("patient000[1-8]_*_E?.png")):
        shutil.copy(image, project / "data" / "images" / image.name)
        shutil.copy(image.with_name(image.stem + "_gt.png"), project / "data" / "masks" / image.name)
    config = str(project / "cardioseg.yaml")

    _run("prepare", "-c", config, "-q")  # from outside the project: paths are the file's
    prepared = PreparedDataset(project / "prepared")
    assert prepared.plan.layout == "folders"  # images/ + masks/ decide it, not the patient* names
    assert [c.id for c in prepared.plan.foreground] == [1, 2, 3] and prepared.plan.out_channels == 4
    assert prepared.manifest.patient_id.nunique() == 8

    # planned (the starter file leaves the recipe to the planner), cut to 20 epochs; the loss follows the 3 classes
    _run("train", "-c", config, "--epochs", "20", "-q")
    run = RunFiles(project / "runs" / "first")
    plan = load_bundle(run.model).plan
    assert plan.recipe is not None
    # the planned run's last step: post-processing chosen on the validation patients, into the plan
    assert plan.postprocess is not None and run.postprocess_choice.is_file()
    trained = run.model.read_bytes()
    again = _run("train", "-c", config, "--epochs", "20", "-q")  # the same command, typed again
    assert "is a finished run" in " ".join(again.split()) and run.model.read_bytes() == trained
    _run("evaluate", "-m", str(run.model), "-d", str(project / "prepared"), "--split", "all", "-q")
    evaluation = EvaluationFiles(run.evaluation / "prepared-all")  # named by dataset and split
    summary = json.loads(evaluation.summary.read_text())
    dice = {r["class_name"]: r["mean"] for r in summary["metrics"]["raw"] if r["metric"] == "dice"}
    assert set(dice) == {"class1", "class2", "class3"}
    assert dice["class1"] > 0.5, dice  # the LV cavity, after 20 epochs on 26 images
    _run("report", str(run.root))
    assert run.report.stat().st_size > 10_000


def test_masks_of_0_and_255_map_with_the_values_in_the_files(camus224: Path, tmp_path: Path) -> None:
    """``--labels 255:1`` on 0/255 masks (what most people type); ``1:1,2:2`` on binary masks warns."""
    import numpy as np
    from PIL import Image

    for folder in ("images", "masks"):
        (tmp_path / "raw" / folder).mkdir(parents=True)
    for image in sorted((camus224 / "val").glob("patient*_2CH_ED.png"))[:6]:
        shutil.copy(image, tmp_path / "raw" / "images" / image.name)
        gt = np.array(Image.open(image.with_name(image.stem + "_gt.png")))
        Image.fromarray(np.where(gt == 1, 255, 0).astype(np.uint8)).save(tmp_path / "raw" / "masks" / image.name)
    _run("prepare", "-s", str(tmp_path / "raw"), "-o", str(tmp_path / "p255"), "--labels", "255:1", "-q")
    assert PreparedDataset(tmp_path / "p255").labels[:].max() == 1
    output = _run("prepare", "-s", str(tmp_path / "raw"), "-o", str(tmp_path / "p12"), "--labels", "1:1,2:2", "-q")
    assert "class 2 (class2) occurs in no mask" in output
    result = CliRunner().invoke(app, ["prepare", "-s", str(tmp_path / "raw"), "-o", str(tmp_path / "pn"),
                                      "--set", "data.class_names=[background, LV]", "-q"])
    assert result.exit_code == 1 and "one name per foreground class" in result.output
