"""`cardioseg report`: one self-contained HTML file from an echo or MRI evaluation, and its bad inputs."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.config import load_config
from cardioseg.errors import DataError
from cardioseg.fileio import write_npz
from cardioseg.report.html import build_report
from cardioseg.report.inputs import load_evaluation
from cardioseg.viz.frames import DISPLAY_HEIGHT
from cardioseg.viz.palette import hex_colour
from cardioseg.viz.volume3d import MAX_POINTS

EXTERNAL = re.compile(r"""<(?:script|img|video|link|iframe)[^>]*(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


NO_MEDIA = {"report.max_videos": 0, "report.max_cases": 1}  # the bad-input tests need no videos


def copy_evaluation(evaluation: Path, dest: Path) -> Path:
    return Path(shutil.copytree(evaluation, dest))


def test_echo_report_is_self_contained(echo_report: Path) -> None:
    html = echo_report.read_text()
    assert not EXTERNAL.search(html)  # nothing fetched: every image and video is inline
    assert html.count('src="data:image/png;base64,') >= 2  # distributions, Bland-Altman
    assert html.count('src="data:image/webp;base64,') == 3  # best, median and worst cases
    assert html.count('src="data:video/mp4;base64,') == 4  # one video per patient (4 patients)
    assert "Left-ventricular volumes and ejection fraction" in html and "Bland-Altman" in html
    assert 'class="sortable"' in html and "patient0001_2CH_ED" in html
    assert "the cases of this evaluation are 2D images" in html  # no 3D view, said so
    videos = sorted(p.name for p in (echo_report.parent / "videos").iterdir())
    assert videos == [f"patient000{i}.mp4" for i in range(1, 5)]


def test_mri_report_has_volumes_and_3d_view(mri_report: Path) -> None:
    html = mri_report.read_text()
    assert "Volumes of the 3D segmentations" in html and "left atrium volume" in html
    assert 'id="view3d-plot"' in html and not EXTERNAL.search(html)
    assert html.count('src="data:video/mp4;base64,') == 1
    assert len(list(mri_report.parent.glob("volume3d_*.html"))) == 1
    assert f'<span class="swatch" style="border-color: {hex_colour(1)}"></span>left atrium' in html  # the legend
    # two volumes: the agreement table says why r and the limits are missing instead of showing r = ±1
    row = re.search(r'<td class="text">left atrium volume</td>(.*?)</tr>', html, re.S)
    assert row and "n = 2: too few cases for a correlation / limits of agreement" in row.group(1)
    assert row.group(1).count(">n/a</td>") == 3  # Pearson r, SD of differences, limits of agreement


def images_of(html: str) -> list[tuple[str, Image.Image]]:
    return [(mime, Image.open(io.BytesIO(base64.b64decode(data))))
            for mime, data in re.findall(r'src="data:(image/[a-z]+);base64,([^"]+)"', html)]


def points_of(html: str) -> int:
    """Surface points in the report's 3D view (plotly's typed arrays: dtype and base64 bytes)."""
    found = re.search(r'<script type="application/json" id="view3d-figure">(.*?)</script>', html, re.S)
    assert found
    figure = json.loads(found.group(1))
    return sum(len(base64.b64decode(t["x"]["bdata"])) // np.dtype(t["x"]["dtype"]).itemsize
               for t in figure["data"] if isinstance(t["x"], dict))


def test_volume_report_stays_small(mri_report: Path) -> None:
    """The size follows from the design: plotly.js is carried compressed, the 3D view holds at most MAX_POINTS
    surface points, case pictures are lossy WebP at display size, figures no wider than a page."""
    from plotly.offline import get_plotlyjs

    html, library = mri_report.read_text(), len(get_plotlyjs())
    assert 0 < points_of(html) <= MAX_POINTS
    figure = re.search(r'id="view3d-figure">(.*?)</script>', html, re.S)
    packed = re.search(r'id="plotly-gz">(.*?)</script>', html, re.S)
    assert figure and len(figure.group(1)) < 40 * MAX_POINTS  # float32 points, 16-bit triangles
    assert packed and len(packed.group(1)) < library / 2
    assert len(html) < 0.75 * library  # the whole report weighs less than the library would alone
    images = images_of(html)
    cases = [image for mime, image in images if mime == "image/webp"]
    assert cases and all(image.height <= DISPLAY_HEIGHT + 100 and image.width <= 2 * DISPLAY_HEIGHT for image in cases)
    assert all(image.width <= 1600 for _, image in images)


def test_run_folder_finds_its_evaluation_and_curves(camus_eval: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    evaluation = copy_evaluation(camus_eval, run / "evaluation")
    (run / "model.safetensors").write_bytes(b"")
    shutil.copy(evaluation / "bland_altman_ef.png", run / "training_curves.png")  # any PNG stands in
    (run / "config.yaml").write_text("model:\n  arch: unet\n")
    html = build_report(run, load_config(overrides=NO_MEDIA)).read_text()
    assert (run / "report.html").is_file()
    assert "Loss and validation Dice per epoch" in html and "arch: unet" in html
    assert "No videos" in html


def test_evaluation_elsewhere_is_taken_from_the_config_only_for_its_own_model(camus_eval: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"")
    evaluation = copy_evaluation(camus_eval, tmp_path / "evaluation")
    cfg = load_config(overrides={"evaluate.out_dir": str(evaluation), **NO_MEDIA})
    html = build_report(run, cfg).read_text()
    assert "no evaluation found for this run" in html  # the summary names another model
    summary = json.loads((evaluation / "summary.json").read_text())
    summary["model"] = str(run / "model.safetensors")
    (evaluation / "summary.json").write_text(json.dumps(summary))
    assert "no evaluation found" not in build_report(run, cfg).read_text()


def test_no_predictions_is_a_note_not_a_crash(camus_eval: Path, tmp_path: Path) -> None:
    evaluation = copy_evaluation(camus_eval, tmp_path / "evaluation")
    write_npz(evaluation / "predictions.npz", {})
    summary = json.loads((evaluation / "summary.json").read_text())
    del summary["clinical"]  # an evaluation from before clinical outputs: the report computes them
    (evaluation / "summary.json").write_text(json.dumps(summary))
    html = build_report(evaluation, load_config()).read_text()
    assert "this evaluation has no predictions" in html
    assert "no predictions: no clinical index computed" in html
    assert "No videos" in html and "Per-case metrics" in html


def test_missing_4ch_and_empty_masks_are_noted(camus_eval: Path, tmp_path: Path) -> None:
    evaluation = copy_evaluation(camus_eval, tmp_path / "evaluation")
    with np.load(evaluation / "predictions.npz") as store:
        predictions = {k: store[k] for k in store.files if not k.startswith("patient0002_4CH")}
    predictions["patient0003_2CH_ES"][:] = 0
    write_npz(evaluation / "predictions.npz", predictions)
    summary = json.loads((evaluation / "summary.json").read_text())
    del summary["clinical"]
    (evaluation / "summary.json").write_text(json.dumps(summary))
    html = build_report(evaluation, load_config(overrides=NO_MEDIA)).read_text()
    assert "ED: no 4CH view, so no biplane volume" in html
    assert "predicted ES: 2CH cavity mask is empty" in html


def test_missing_prepared_dataset_still_gives_a_report(camus_eval: Path, tmp_path: Path) -> None:
    evaluation = copy_evaluation(camus_eval, tmp_path / "evaluation")
    summary = json.loads((evaluation / "summary.json").read_text())
    summary["data"] = str(tmp_path / "moved_away")
    (evaluation / "summary.json").write_text(json.dumps(summary))
    html = build_report(evaluation, load_config(overrides=NO_MEDIA)).read_text()
    assert "not found" in html and "no case pictures or videos" in html
    assert "Left-ventricular volumes and ejection fraction" in html  # from the evaluation's own tables


def test_relative_prepared_path_is_found_above_the_evaluation(camus_eval: Path, tmp_path: Path) -> None:
    evaluation = copy_evaluation(camus_eval, tmp_path / "project" / "runs" / "evaluation")
    summary = json.loads((evaluation / "summary.json").read_text())
    shutil.copytree(summary["data"], tmp_path / "project" / "prepared")
    summary["data"] = "prepared"  # as recorded by an evaluation run from the project folder
    (evaluation / "summary.json").write_text(json.dumps(summary))
    loaded = load_evaluation(evaluation)
    assert loaded.prepared is not None and loaded.prepared.root == tmp_path / "project" / "prepared"
    assert loaded.notes == [] and len(loaded.predictions) == 16


def test_not_a_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neither a training run"):
        build_report(tmp_path, load_config())


def test_cli_report(camus_eval: Path, tmp_path: Path) -> None:
    evaluation = copy_evaluation(camus_eval, tmp_path / "evaluation")
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(evaluation), "--out", str(out), "--set", "report.max_videos=0",
                                      "--set", "report.max_cases=1"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "Report:" in result.output
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert bad.exit_code == 1 and "folder not found" in bad.output


def test_volume_table_of_an_older_evaluation_shows_percent(msd_eval: Path, tmp_path: Path) -> None:
    """Evaluations written before the columns carried their unit stored ``rel_error`` as a fraction."""
    import pandas as pd

    evaluation = copy_evaluation(msd_eval, tmp_path / "evaluation")
    table = pd.read_csv(evaluation / "clinical_volumes.csv")
    table.insert(len(table.columns) - 1, "rel_error", table.pop("rel_error_pct") / 100)
    table.to_csv(evaluation / "clinical_volumes.csv", index=False)
    html = build_report(evaluation, load_config(overrides=NO_MEDIA)).read_text()
    percent = 100 * float(table["rel_error"].iloc[0])
    assert f'<td data-value="{percent!r}">{percent:.1f}</td>' in html
