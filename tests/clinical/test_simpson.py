"""Biplane Simpson's volumes against shapes with known volumes, and on real CAMUS masks."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.draw import disk, ellipse

from cardioseg.clinical import ClinicalError, biplane_volume, ejection_fraction, patient_ef, view_geometry

SHAPE = (260, 220)


def upright_ellipse(a: float, b: float, rotation: float = 0.0, center: tuple[int, int] = (130, 110)) -> np.ndarray:
    """Semi-axis ``a`` along the rows (the long axis, vertical), ``b`` along the columns."""
    mask = np.zeros(SHAPE, dtype=bool)
    mask[ellipse(center[0], center[1], a, b, SHAPE, rotation=rotation)] = True
    return mask


def bullet(width: int, height: int, top: int = 40, centre_col: int = 110) -> np.ndarray:
    """A rectangle (width x height) under a half-disc cap of radius width / 2: apex up, flat base."""
    radius = width / 2
    mask = np.zeros(SHAPE, dtype=bool)
    mask[top + int(radius) : top + int(radius) + height, centre_col - int(radius) : centre_col + int(radius)] = True
    rows, cols = disk((top + radius - 0.5, centre_col - 0.5), radius, shape=SHAPE)
    cap = rows < top + radius
    mask[rows[cap], cols[cap]] = True
    return mask


def ellipsoid(a: float, b: float, c: float) -> float:
    return 4 / 3 * math.pi * a * b * c


@pytest.mark.parametrize(("a", "b_2ch", "b_4ch"), [(60, 30, 24), (80, 40, 32), (80, 28, 44), (100, 50, 40)])
def test_ellipses_give_the_prolate_ellipsoid(a: float, b_2ch: float, b_4ch: float) -> None:
    result = biplane_volume(upright_ellipse(a, b_2ch), upright_ellipse(a, b_4ch))
    assert result.unit == "px^3"
    assert result.volume == pytest.approx(ellipsoid(a, b_2ch, b_4ch), rel=0.02)
    assert result.view_2ch.annulus_method == "geometric"
    assert result.view_2ch.diameters.shape == (20,)


def test_tilted_ellipses_give_the_same_volume() -> None:
    result = biplane_volume(upright_ellipse(70, 35, rotation=0.3), upright_ellipse(70, 28, rotation=-0.2))
    assert result.volume == pytest.approx(ellipsoid(70, 35, 28), rel=0.02)


def test_full_ellipse_with_atrium_uses_the_lv_la_border() -> None:
    cavity = upright_ellipse(80, 40)
    labels = cavity.astype(np.uint8)
    labels[210:240, 95:126][~cavity[210:240, 95:126]] = 3  # an atrium under the base, touching it
    geometry = view_geometry(labels == 1, atrium=labels == 3)
    assert geometry.annulus_method == "atrium"
    assert geometry.annulus[0][0] == pytest.approx(209.5, abs=0.6)  # the bottom edge of the ellipse
    assert geometry.length == pytest.approx(159, abs=1.0)  # rows 51..209: 159 px edge to edge
    result = biplane_volume(labels, labels, cavity_label=1, atrium_label=3)
    assert result.volume == pytest.approx(ellipsoid(80, 40, 40), rel=0.01)


def test_half_ellipse_flat_base_gives_the_half_ellipsoid() -> None:
    a, b = 100, 40
    mask = upright_ellipse(a, b)
    mask[131:] = False  # cut at the equator (the row of the centre kept: base edge at +0.5 px)
    expected = math.pi * b * b * ((a + 0.5) - (a**3 + 0.125) / (3 * a * a))
    result = biplane_volume(mask, mask)
    assert result.volume == pytest.approx(expected, rel=0.02)
    (row_left, col_left), (row_right, col_right) = result.view_2ch.annulus
    assert row_left == pytest.approx(130.5, abs=0.5) and row_right == pytest.approx(130.5, abs=0.5)
    assert (col_left, col_right) == pytest.approx((110 - b + 0.5, 110 + b - 0.5), abs=1.0)


@pytest.mark.parametrize(("width", "height"), [(40, 100), (60, 80)])
def test_bullet_gives_cylinder_plus_hemisphere(width: int, height: int) -> None:
    mask = bullet(width, height)
    radius = width / 2
    expected = math.pi * radius**2 * height + 2 / 3 * math.pi * radius**3
    result = biplane_volume(mask, mask)
    assert result.volume == pytest.approx(expected, rel=0.01)
    assert result.view_2ch.apex[1] == pytest.approx(109.5, abs=0.5)  # on the axis, not a corner


def test_spacing_scales_volume_by_the_product() -> None:
    m2, m4 = upright_ellipse(70, 20), upright_ellipse(70, 16)  # still elongated at 2 mm per column
    pixels = biplane_volume(m2, m4).volume
    iso = biplane_volume(m2, m4, (0.3, 0.3), (0.3, 0.3))
    assert iso.unit == "mL"
    assert iso.volume == pytest.approx(pixels * 0.3**3 / 1000, rel=1e-6)
    # Anisotropic: rows (the long axis) 2 mm, columns (the diameters) 1 mm, and the reverse.
    assert biplane_volume(m2, m4, (2.0, 1.0), (2.0, 1.0)).volume * 1000 == pytest.approx(2 * pixels, rel=0.02)
    assert biplane_volume(m2, m4, (1.0, 2.0), (1.0, 2.0)).volume * 1000 == pytest.approx(4 * pixels, rel=0.02)


def test_longer_long_axis_is_used_and_mismatch_noted() -> None:
    long, short = upright_ellipse(80, 35), upright_ellipse(60, 35)
    result = biplane_volume(long, short)
    assert result.length == pytest.approx(result.view_2ch.length)
    assert result.view_2ch.length > result.view_4ch.length
    assert any("foreshortening" in note for note in result.notes)


def test_ejection_fraction() -> None:
    assert ejection_fraction(120.0, 50.0) == pytest.approx(100 * 70 / 120)
    assert ejection_fraction(100.0, 110.0) == pytest.approx(-10.0)
    for edv, esv in [(0.0, 0.0), (100.0, -1.0), (float("nan"), 10.0)]:
        with pytest.raises(ClinicalError):
            ejection_fraction(edv, esv)


def test_patient_ef_of_shrinking_ellipses() -> None:
    ed_2ch, ed_4ch = upright_ellipse(80, 40), upright_ellipse(80, 34)
    es_2ch, es_4ch = upright_ellipse(66, 30), upright_ellipse(66, 25)
    result = patient_ef(ed_2ch, ed_4ch, es_2ch, es_4ch, (0.3, 0.3), (0.3, 0.3))
    expected = 100 * (1 - ellipsoid(66, 30, 25) / ellipsoid(80, 40, 34))
    assert result.unit == "mL"
    assert result.edv == pytest.approx(ellipsoid(80, 40, 34) * 0.027 / 1000, rel=0.02)
    assert result.ef == pytest.approx(expected, abs=1.5)
    assert result.notes == ()


def test_patient_ef_notes_esv_above_edv() -> None:
    small, big = upright_ellipse(60, 25), upright_ellipse(80, 35)
    result = patient_ef(small, small, big, big)
    assert result.ef < 0
    assert any("ESV exceeds EDV" in note for note in result.notes)


def test_stray_components_are_dropped_and_noted() -> None:
    mask = upright_ellipse(60, 30)
    clean = biplane_volume(mask, mask).volume
    mask[5, 5] = mask[250, 200] = True
    result = biplane_volume(mask, mask)
    assert result.volume == pytest.approx(clean)
    assert any("dropped 2 stray" in note for note in result.notes)


def test_atrium_not_touching_falls_back_with_a_note() -> None:
    cavity = upright_ellipse(60, 30)
    atrium = np.zeros_like(cavity)
    atrium[250:, :] = True
    geometry = view_geometry(cavity, atrium=atrium, name="4CH")
    assert geometry.annulus_method == "geometric"
    assert geometry.notes == ("4CH: atrium does not touch the cavity; geometric annulus used",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_2ch": np.zeros(SHAPE, bool)}, "2CH cavity mask is empty"),
        ({"mask_4ch": None}, "4CH view is missing"),
        ({"mask_2ch": np.full(SHAPE, 2, np.uint8)}, "not binary"),
        ({"mask_2ch": np.ones((2, 3, 4), bool)}, "must be 2D"),
        ({"spacing_2ch": (0.3, 0.3)}, "both views"),
        ({"spacing_2ch": (0.3, 0.0), "spacing_4ch": (0.3, 0.3)}, "positive"),
        ({"atrium_label": 3}, "cavity_label"),
        ({"mask_2ch": np.pad(np.ones((1, 1), bool), 5)}, "single pixel"),
    ],
)
def test_unmeasurable_input_raises(kwargs: dict, message: str) -> None:
    mask = upright_ellipse(60, 30)
    arguments = {"mask_2ch": mask, "mask_4ch": mask, **kwargs}
    with pytest.raises(ClinicalError, match=message):
        biplane_volume(**arguments)


def test_missing_view_in_label_map_mode() -> None:
    labels = upright_ellipse(60, 30).astype(np.uint8)
    with pytest.raises(ClinicalError, match="4CH view is missing"):
        biplane_volume(labels, None, cavity_label=1, atrium_label=3)


def _camus_label_map(root: Path, patient: str, view: str, phase: str) -> np.ndarray:
    labels = cv2.imread(str(root / f"{patient}_{view}_{phase}_gt.png"), cv2.IMREAD_UNCHANGED)
    return labels.T  # camus224 PNGs are stored transposed: .T puts the apex up


def test_real_camus_ed_exceeds_es_and_ef_is_plausible(camus224: Path) -> None:
    train = camus224 / "train"
    patients = sorted({p.name.split("_")[0] for p in train.glob("patient*_gt.png")})[:12]
    if len(patients) < 12:
        pytest.skip(f"fewer than 12 labelled CAMUS patients in {train}")
    results = [
        patient_ef(
            *(_camus_label_map(train, p, view, phase) for phase in ("ED", "ES") for view in ("2CH", "4CH")),
            cavity_label=1,
            atrium_label=3,
        )
        for p in patients
    ]
    efs = np.array([r.ef for r in results])
    assert np.mean([r.edv > r.esv for r in results]) >= 0.9
    assert np.mean((efs > 20) & (efs < 80)) >= 0.8, efs
    views = [v for r in results for bi in (r.ed, r.es) for v in (bi.view_2ch, bi.view_4ch)]
    assert np.mean([v.annulus_method == "atrium" for v in views]) >= 0.9
    assert all(r.unit == "px^3" for r in results)  # camus224 carries no pixel spacing
