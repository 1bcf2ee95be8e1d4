"""Cine curves, ED/ES and EF on hand-made masks: discs of known radius frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from cardioseg.clinical.sequence import biplane_sequence, cine_sequence, detect_phases, smooth
from cardioseg.clinical.volumes import ClinicalError

FRAMES = 30


def _radii(frames: int = FRAMES, ed: int = 4) -> np.ndarray:
    """Largest (30 px) at frame ``ed``, smallest (22 px) half a cycle later."""
    return 26.0 + 4.0 * np.cos(2 * np.pi * (np.arange(frames) - ed) / frames)


def _cine(radii: np.ndarray, size: int = 96) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size]
    return np.stack([((rows - size / 2) ** 2 + (cols - size / 2) ** 2 <= r**2) for r in radii]).astype(np.uint8)


def test_areas_ed_es_and_ef_of_pulsing_discs() -> None:
    radii = _radii()
    result = cine_sequence(_cine(radii), cavity=1, spacing=(0.5, 0.5))
    assert (result.ed, result.es, result.phase_source) == (4, 19, "detected")
    np.testing.assert_allclose(result.area, np.pi * radii**2 * 0.25, rtol=0.03)  # mm² at 0.5 mm per pixel
    assert result.area_unit == "mm²" and result.volume_unit == "mL" and result.method == "single-plane discs"
    # a disc's discs are a sphere's, scaled: EF = 1 - (22/30)³ = 60.6 %, up to pixelation
    assert result.ef == pytest.approx(100 * (1 - (22 / 30) ** 3), abs=1.5)
    # a full disc's geometric annulus joins its corners 45° from the base: the sphere less a cap of h = r(1 - cos 45°)
    r = 30 * 0.5
    h = r * (1 - np.cos(np.pi / 4))
    assert result.edv == pytest.approx((4 / 3 * np.pi * r**3 - np.pi * h**2 * (3 * r - h) / 3) / 1000, rel=0.01)
    table = result.to_frame()
    assert list(table.columns) == ["frame", "lv_area_mm2", "lv_volume_ml", "smoothed", "phase"]
    assert table["phase"].tolist().count("ED") == 1 and table.loc[19, "phase"] == "ES"


def test_a_single_failed_frame_is_never_ed_or_es() -> None:
    curve = 1000 + 300 * np.cos(2 * np.pi * np.arange(FRAMES) / FRAMES)
    curve[10] = 5000.0  # one frame segmented as a huge blob
    curve[25] = 1.0  # and one almost empty
    ed, es, smoothed = detect_phases(curve)
    assert (ed, es) == (0, 15)
    assert smoothed[10] < 1400 and smoothed[25] > 900


def test_smoothing_keeps_a_clean_peak_and_short_curves_alone() -> None:
    clean = 100 + 40 * np.sin(2 * np.pi * np.arange(40) / 40)
    np.testing.assert_allclose(smooth(clean), clean, atol=0.6)  # a quadratic filter follows the peak
    assert smooth([3.0, 1.0, 2.0]).tolist() == [3.0, 1.0, 2.0]
    assert smooth([1.0, np.nan, 3.0]).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ClinicalError, match="no frame"):
        smooth([np.nan, np.nan])


def test_tagged_frames_win_and_moving_them_moves_the_ef() -> None:
    labels = _cine(_radii())
    tagged = cine_sequence(labels, cavity=1, tagged=(0, 15))
    assert (tagged.ed, tagged.es, tagged.phase_source) == (0, 15, "DICOM")
    assert tagged.volume_unit == "px^3" and tagged.area_unit == "px²"
    detected = cine_sequence(labels, cavity=1)
    moved = tagged.with_phases(detected.ed, detected.es)
    assert moved.phase_source == "user" and moved.ef == pytest.approx(detected.ef)
    assert moved.ef > tagged.ef  # the true extremes give the largest EF
    with pytest.raises(ClinicalError, match="ES frame 30 is outside the cine's frames 0-29"):
        tagged.with_phases(0, 30)
    assert "only one of ED and ES" in cine_sequence(labels, cavity=1, tagged=(3, None)).notes[0]


def test_an_empty_frame_is_noted_not_measured() -> None:
    labels = _cine(_radii())
    labels[7] = 0
    result = cine_sequence(labels, cavity=1, times_ms=np.arange(FRAMES) * 33.3)
    assert np.isnan(result.volume[7]) and result.notes == ("frame 7: view cavity mask is empty",)
    assert (result.ed, result.es) == (4, 19)
    assert result.to_frame().columns[1] == "time_ms"
    with pytest.raises(ClinicalError, match="3 frame times for 30 frames"):
        cine_sequence(labels, cavity=1, times_ms=[0, 1, 2])


def test_biplane_curve_of_a_two_and_four_chamber_pair() -> None:
    two = _cine(_radii())
    four = _cine(_radii(15, ed=2))  # half the frame rate: matched by relative position
    result = biplane_sequence(two, four, cavity=1, spacing_2ch=(0.5, 0.5), spacing_4ch=(0.5, 0.5))
    assert result.method == "biplane discs" and "matched by relative position" in result.notes[0]
    assert result.ed in (3, 4, 5) and result.es in (18, 19, 20)
    assert result.ef == pytest.approx(100 * (1 - (22 / 30) ** 3), abs=3)
    with pytest.raises(ClinicalError, match="frames, rows, cols"):
        cine_sequence(two[0], cavity=1)
