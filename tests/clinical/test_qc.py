"""Quality control: each rule on a hand-drawn case, the uncertainty score by hand, and real reference masks passing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from cardioseg.clinical.qc import (
    UNCERTAINTY_LIMIT,
    PairwiseAgreement,
    area_limits_mm2,
    assess,
    assess_for_plan,
    disagreement,
    ef_reason,
)
from cardioseg.plan import ClassSpec, Plan

NAMES = {1: "LV endocardium", 2: "LV myocardium", 3: "left atrium"}


def _disc(shape: tuple[int, ...], centre: tuple[float, ...], radius: float) -> np.ndarray:
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def _heart(size: int = 200) -> np.ndarray:
    """A cavity disc in a myocardial ring, with an atrium disc touching the ring below."""
    labels = np.zeros((size, size), np.uint8)
    labels[_disc(labels.shape, (80, 100), 40)] = 2
    labels[_disc(labels.shape, (80, 100), 30)] = 1
    labels[_disc(labels.shape, (145, 100), 25) & (labels == 0)] = 3
    return labels


def test_a_plausible_heart_passes() -> None:
    result = assess(_heart(), NAMES)
    assert result == assess(_heart(), NAMES, roles={1: "lv_cavity", 2: "lv_myocardium", 3: "left_atrium"})
    assert (result.flag, result.reasons, result.uncertainty) == ("ok", (), None)
    assert result.as_row() == {"qc_flag": "ok", "qc_reasons": "", "qc_uncertainty": None}


def test_an_empty_and_a_tiny_structure_are_named() -> None:
    labels = _heart()
    labels[labels == 3] = 0
    labels[121:126, 98:103] = 3  # 25 px of 40,000 (0.06 %), just below the wall
    result = assess(labels, NAMES)
    assert result.flag == "check" and result.reasons == ("left atrium tiny (25 px, 0.06% of the image)",)
    labels[labels == 3] = 0
    assert assess(labels, NAMES).reasons == ("left atrium empty",)


def test_several_components_holes_and_a_detached_atrium() -> None:
    labels = _heart()
    labels[_disc(labels.shape, (80, 100), 5)] = 0  # background hole in the cavity: 81 px of 2,800
    assert assess(labels, NAMES).reasons == ("LV endocardium has holes (81 px)",)
    labels = _heart()
    labels[labels == 3] = 0
    labels[_disc(labels.shape, (175, 30), 15)] = 3  # far from the LV
    labels[_disc(labels.shape, (175, 170), 15)] = 3  # and in two pieces
    assert assess(labels, NAMES).reasons == ("left atrium in 2 pieces", "left atrium does not touch the LV")


def test_a_stray_speck_is_not_a_second_piece() -> None:
    labels = _heart()
    labels[190:193, 190:193] = 3  # 9 px against an atrium of ~1,400: under 2 %
    assert assess(labels, NAMES).flag == "ok"


def test_a_cavity_outside_its_wall_is_flagged() -> None:
    labels = _heart()
    labels[labels == 3] = 0
    labels[65:] = np.where(labels[65:] == 2, 0, labels[65:])  # the wall caps only the top of the cavity
    reasons = assess(labels, {1: "LV endocardium", 2: "LV myocardium"}).reasons
    assert reasons == ("LV endocardium not enclosed by the LV myocardium (33% of its outline)",)


def test_size_limits_follow_the_spacing_and_the_view() -> None:
    low, high = area_limits_mm2("lv_cavity")
    assert 400 < low < 500 and 8500 < high < 9500  # 5 mL and 450 mL ellipsoids with L = 2 D
    labels = _heart()
    cavity_mm2 = np.count_nonzero(labels == 1)  # at 1 mm per pixel: ~28 cm²
    assert assess(labels, NAMES, spacing=(1.0, 1.0)).flag == "ok"
    big = assess(labels, NAMES, spacing=(2.0, 2.0)).reasons  # 4x the areas: cavity 113 cm², atrium 78 cm²
    assert big == (f"LV endocardium area {4 * cavity_mm2 / 100:.1f} cm² outside 4-89 cm²",
                   "left atrium area 78.4 cm² outside 4-68 cm²")
    small = (0.1, 0.1)  # 0.28 cm²: too small for an apical view, possible for an apical short-axis slice
    assert assess(labels, NAMES, spacing=small).reasons == ()
    assert assess(labels, NAMES, spacing=small, view="4CH").reasons[0].startswith("LV endocardium area 0.3 cm²")


def test_volumes_in_ml_and_relative_size_without_spacing() -> None:
    ball = _disc((60, 60, 60), (30, 30, 30), 20).astype(np.uint8)  # 33,401 voxels
    assert assess(ball, {1: "left atrium"}, spacing=(1.0, 1.0, 1.0)).flag == "ok"  # 33.4 mL
    assert assess(ball, {1: "left atrium"}, spacing=(3.0, 3.0, 1.0)).reasons == (
        "left atrium volume 301 mL outside 5-300 mL",)
    leak = np.zeros((100, 100), np.uint8)
    leak[:60] = 1
    assert assess(leak, {1: "foreground"}).reasons == ("foreground covers 60% of the image",)


def test_ef_and_uncertainty_reasons() -> None:
    assert ef_reason(60.0) is None and ef_reason(None) is None and ef_reason(float("nan")) is None
    assert ef_reason(-12.0) == "EF -12 % outside 5-85 %"
    assert assess(_heart(), NAMES, ef=91.0).reasons == ("EF 91 % outside 5-85 %",)
    calm = assess(_heart(), NAMES, uncertainty=UNCERTAINTY_LIMIT)
    assert calm.flag == "ok" and calm.as_row()["qc_uncertainty"] == UNCERTAINTY_LIMIT
    assert assess(_heart(), NAMES, uncertainty=0.25).reasons == ("models/flips disagree (uncertainty 0.25 > 0.1)",)


def test_pairwise_disagreement_by_hand() -> None:
    left, right = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    left[:, :2], right[:, 1:3] = 1, 1  # Dice 2*4/(8+8) = 0.5
    assert disagreement([left, left], [1]) == 0.0
    assert disagreement([left, right], [1]) == pytest.approx(0.5)
    assert disagreement([left, right, left], [1]) == pytest.approx(1 - (0.5 + 1 + 0.5) / 3)
    # class 2 empty in both opinions counts as agreement: mean over classes (0.5 + 1) / 2
    assert disagreement([left, right], [1, 2]) == pytest.approx(0.25)
    assert disagreement([left], [1]) is None
    planes = PairwiseAgreement([1])  # a volume plane by plane equals the volume at once
    planes.add([left, right])
    planes.add([right, right])
    assert planes.uncertainty == pytest.approx(disagreement([np.stack([left, right]), np.stack([right, right])], [1]))


def test_binary_plan_labels_say_one_whatever_the_class_id() -> None:
    plan = Plan(classes=(ClassSpec(id=0, name="background"), ClassSpec(id=3, name="LA", role="left_atrium")))
    labels = np.zeros((100, 100), np.uint8)
    labels[_disc(labels.shape, (50, 50), 20)] = 1
    labels[_disc(labels.shape, (50, 50), 3)] = 0
    assert assess_for_plan(labels, plan, name="p1_4CH_ES.png").reasons == ("LA has holes (29 px)",)


def test_every_camus_reference_of_the_validation_split_passes(camus224: Path) -> None:
    files = sorted((camus224 / "val").glob("patient*_gt.png"))
    assert len(files) == 200
    flagged = {f.name: assess(np.asarray(Image.open(f)), NAMES).reasons for f in files}
    assert {name: reasons for name, reasons in flagged.items() if reasons} == {}


def test_real_reference_with_a_displaced_atrium_is_flagged(camus224: Path) -> None:
    labels = np.asarray(Image.open(camus224 / "val" / "patient0200_4CH_ED_gt.png")).copy()
    atrium = labels == 3
    labels[atrium] = 0
    labels[np.roll(atrium, 60, axis=0) & (labels == 0)] = 3  # 60 px down the rows: away from the LV
    assert "left atrium does not touch the LV" in assess(labels, NAMES).reasons


def test_msd_left_atrium_references_are_plausible_volumes(msd_heart_la: Path) -> None:
    for path in sorted((msd_heart_la / "labelsTr").glob("la_00*.nii.gz")):
        image = nib.load(path)
        result = assess(np.asarray(image.dataobj), {1: "left atrium"}, image.header.get_zooms()[:3])
        assert result.flag == "ok", (path.name, result.reasons)


def test_enclosed_background_is_what_binary_fill_holes_fills() -> None:
    from scipy import ndimage

    from cardioseg.clinical.qc import enclosed

    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[3, 3] = False  # one enclosed pixel
    ring[0:3, 5] = False  # a notch open to the border: not a hole
    assert np.argwhere(enclosed(ring)).tolist() == [[3, 3]]
    rng = np.random.default_rng(0)
    for k in range(100):
        mask = rng.random((5 + k % 17, 6 + k % 13) if k % 3 else (6, 7, 8)) > 0.45
        np.testing.assert_array_equal(enclosed(mask), ndimage.binary_fill_holes(mask) & ~mask)
