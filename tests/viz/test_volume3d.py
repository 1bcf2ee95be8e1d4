"""The interactive 3D view: surfaces in millimetres, a colour per class, a bounded size, an HTML file that needs no network."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from cardioseg.data.prepared import PreparedDataset
from cardioseg.viz.palette import hex_colour
from cardioseg.viz.volume3d import MAX_POINTS, surface, volume_figure, write_volume_html


def test_surfaces_of_a_box_are_in_millimetres() -> None:
    ref = np.zeros((20, 20, 20), bool)
    ref[4:14, 4:10, 4:8] = True  # 10 x 6 x 4 voxels
    pred = np.zeros_like(ref)
    pred[4:12, 4:10, 4:8] = True
    fig = volume_figure(pred, ref, (1.0, 2.0, 3.0), None, "box")
    assert fig is not None
    meshes = [t for t in fig.data if isinstance(t, go.Mesh3d)]
    assert [m.name for m in meshes] == ["class 1 reference", "class 1 prediction"]
    ref_mesh = meshes[0]
    # The 0.5 iso-surface runs half a voxel inside the outer voxel centres: extent (n - 1) voxels.
    assert np.ptp(ref_mesh.x) == pytest.approx(9 * 1.0, abs=1.0)
    assert np.ptp(ref_mesh.y) == pytest.approx(5 * 2.0, abs=2.0)
    assert np.ptp(ref_mesh.z) == pytest.approx(3 * 3.0, abs=3.0)
    assert fig.layout.scene.xaxis.title.text == "x [mm]" and fig.layout.scene.aspectmode == "data"


def test_empty_prediction_is_labelled_and_both_empty_gives_none() -> None:
    ref = np.zeros((8, 8, 8), bool)
    ref[2:6, 2:6, 2:6] = True
    fig = volume_figure(np.zeros_like(ref), ref, None, None, "empty prediction")
    assert fig is not None and [t.name for t in fig.data] == ["class 1 reference", "class 1 prediction (empty)"]
    assert fig.layout.scene.xaxis.title.text == "x [voxels]"
    assert volume_figure(np.zeros_like(ref), np.zeros_like(ref), None, None, "nothing") is None


def test_real_atrium_in_scanner_space_opens_offline(msd_small: PreparedDataset, tmp_path: Path) -> None:
    case_id = sorted(msd_small.cases)[0]
    ref = msd_small.original_label(case_id)
    affine = np.asarray(msd_small.cases[case_id]["affine"])
    fig = volume_figure(ref, ref, msd_small.spacing(case_id), affine, case_id)
    assert fig is not None
    corners = affine @ np.array([[0, 0, 0, 1], [*ref.shape, 1]]).T  # the volume's extent in mm
    mesh = fig.data[0]
    assert corners[0, 0] <= min(mesh.x) and max(mesh.x) <= corners[0, 1]
    assert corners[2, 0] <= min(mesh.z) and max(mesh.z) <= corners[2, 1]
    html = write_volume_html(fig, tmp_path / "view.html").read_text()
    assert "Plotly.newPlot" in html and len(html) > 3_000_000  # plotly.js inlined
    assert not re.search(r"<script[^>]*\bsrc=", html)  # and nothing loaded from elsewhere


def test_each_class_in_its_colour_reference_translucent() -> None:
    ref = np.zeros((24, 24, 24), np.uint8)
    ref[2:10, 2:10, 2:10] = 1
    ref[12:22, 12:22, 12:22] = 3
    fig = volume_figure(ref, ref, (1.0, 1.0, 1.0), None, "two classes", {1: "LV endocardium", 3: "left atrium"})
    assert fig is not None
    assert [(t.name, t.color) for t in fig.data] == [
        ("LV endocardium reference", hex_colour(1)), ("LV endocardium prediction", hex_colour(1)),
        ("left atrium reference", hex_colour(3)), ("left atrium prediction", hex_colour(3))]
    assert hex_colour(1) != hex_colour(3)
    assert fig.data[0].opacity < fig.data[1].opacity  # reference see-through, prediction solid


def test_a_finely_sampled_real_atrium_fits_the_point_budget(msd_heart_la: Path) -> None:
    """A real MSD atrium resampled to 0.625 mm voxels (as a finer scan would give it): its full-detail
    surface holds several times the points the whole view may hold, so it is meshed more coarsely."""
    import nibabel as nib

    ref = np.asarray(nib.load(msd_heart_la / "labelsTr" / "la_003.nii.gz").dataobj) > 0
    hits = np.argwhere(ref)
    crop = ref[tuple(slice(a, b + 1) for a, b in zip(hits.min(0), hits.max(0)))]
    fine = crop.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    full_detail, _ = surface(fine, budget=10**9)
    assert len(full_detail) > 2 * MAX_POINTS
    fig = volume_figure(fine, fine, (0.625, 0.625, 0.685), None, "la_003 at 0.625 mm")
    assert fig is not None
    assert sum(len(t.x) for t in fig.data) <= MAX_POINTS
    assert all(len(t.x) > MAX_POINTS / 8 for t in fig.data)  # coarser, not emptied
