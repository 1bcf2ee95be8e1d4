"""evaluate.every_case: an overlay of every image and slice with a contour, and a 3D view of every volume."""

from pathlib import Path

import numpy as np
from PIL import Image

from cardioseg.artifacts import EvaluationFiles
from cardioseg.data.prepared import PreparedDataset
from cardioseg.viz.every_case import write_every_case
from cardioseg.viz.palette import class_colour
from evaluation_folders import eroded_predictions


def holds_colour(path: Path, colour: tuple[int, int, int]) -> bool:
    rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return bool((np.abs(rgb.astype(int) - colour).sum(axis=1) == 0).any())


def test_every_echo_image_gets_its_overlay(camus_small: PreparedDataset, tmp_path: Path) -> None:
    predictions = eroded_predictions(camus_small)
    files = EvaluationFiles(tmp_path)
    drawn = write_every_case(camus_small, predictions, {c: 0.9 for c in predictions}, files.overlays, files.volume3d)
    assert sorted(drawn.overlays) == sorted(predictions) and drawn.n_overlays == len(predictions) == 16
    assert not drawn.views  # 2D images have no 3D view
    first = drawn.overlays[sorted(predictions)[0]][0]
    assert first.parent == files.overlays and holds_colour(first, class_colour(1))


def test_every_slice_with_a_contour_and_every_volume_in_3d(msd_small: PreparedDataset, tmp_path: Path) -> None:
    predictions = eroded_predictions(msd_small)
    case_id = sorted(predictions)[0]
    axis = msd_small.cases[case_id]["slice_axis"]
    drawn_slices = np.moveaxis((predictions[case_id] > 0) | (msd_small.original_label(case_id) > 0), axis, 0)
    expected = [k + 1 for k in range(drawn_slices.shape[0]) if drawn_slices[k].any()]
    files = EvaluationFiles(tmp_path)
    drawn = write_every_case(msd_small, predictions, {}, files.overlays, files.volume3d)
    names = [p.name for p in drawn.overlays[case_id]]
    assert names == [f"slice_{k:03d}.png" for k in expected] and 0 < len(expected) < drawn_slices.shape[0]
    assert sorted(drawn.views) == sorted(predictions)
    page = drawn.views[case_id].read_text(encoding="utf-8")
    assert "mesh3d" in page and case_id in page
