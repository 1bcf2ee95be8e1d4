"""Whole cines: every frame segmented, the curve, ED/ES and EF, QC, and the files written.

The maths is checked end to end with a stand-in backend that returns its input (frames that are
discs of known radius segment as themselves); the real path with a small trained-shape model on
the 30-frame YBR ultrasound cine pydicom ships.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cardioseg.config import ModelConfig, PreprocessConfig
from cardioseg.data.readers.dicom_frames import read_dicom_frames
from cardioseg.errors import DataError
from cardioseg.inference.cine import biplane_pairs, segment_cine, segment_dicom_cine, write_biplane, write_cine
from cardioseg.inference.members import Member, RunOptions, load_member
from cardioseg.inference.pipeline import Segmenter
from cardioseg.plan import ClassSpec, Plan

FRAMES = 20


class Echo:
    """Backend whose foreground probability is its input image (flip-equivariant)."""

    batch_size = 16
    seconds = 0.0
    ms_per_image = 0.0

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.clip(images, 0, 1)[:, None].astype(np.float32)


class Shifted(Echo):
    """Returns its input moved 6 pixels right: flips disagree by a known amount."""

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.roll(super().probabilities(images), 6, axis=-1)


def _segmenter(backend: object, tta: bool = False, role: str | None = "lv_cavity") -> Segmenter:
    plan = Plan(layout="folders", preprocess=PreprocessConfig(normalize="none", size=(64, 64)),
                classes=(ClassSpec(id=0, name="background"), ClassSpec(id=1, name="LV", role=role)))
    return Segmenter([Member(Path("echo"), "fake", backend, plan, ModelConfig(classes=1), 0)], tta=tta)  # type: ignore[arg-type]


def _disc_cine(ed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    radii = 20.0 + 6.0 * np.cos(2 * np.pi * (np.arange(FRAMES) - ed) / FRAMES)
    rows, cols = np.mgrid[0:64, 0:64]
    return np.stack([((rows - 32) ** 2 + (cols - 32) ** 2 <= r**2) for r in radii]).astype(np.float32), radii


def test_every_frame_is_segmented_and_the_phases_found() -> None:
    frames, radii = _disc_cine()
    result = segment_cine(frames, (0.4, 0.4), _segmenter(Echo(), tta=True), batch_size=7)
    np.testing.assert_array_equal(result.labels, frames.astype(np.uint8))
    sequence = result.sequence
    assert sequence is not None and (sequence.ed, sequence.es) == (3, 13)
    np.testing.assert_allclose(sequence.area, np.pi * radii**2 * 0.16, rtol=0.03)
    assert sequence.ef == pytest.approx(100 * (1 - (14 / 26) ** 3), abs=2)
    assert result.uncertainty == [0.0] * FRAMES  # an equivariant model's flips agree exactly
    assert result.qc.flag == "ok" and result.qc.uncertainty == 0.0


def test_dicom_tags_and_disagreeing_flips_reach_the_qc() -> None:
    frames, _ = _disc_cine()
    result = segment_cine(frames, None, _segmenter(Shifted(), tta=True), tagged=(0, 1))
    assert result.sequence is not None and result.sequence.phase_source == "DICOM"
    assert all(u is not None and u > 0.1 for u in result.uncertainty)
    reasons = result.qc.reasons
    assert reasons[0].startswith("ED (frame 1 of 20): models/flips disagree") and any("EF" in r for r in reasons)
    assert reasons[-1].startswith("models/flips disagree over the cine (mean uncertainty")
    assert result.qc.flag == "check"


def test_no_lv_role_means_no_curve_said_plainly() -> None:
    frames, _ = _disc_cine()
    plan_less = _segmenter(Echo(), role="left_atrium")
    result = segment_cine(frames, None, plan_less)
    assert result.sequence is None and result.notes[0].startswith("no LV curve: no class of the plan is the LV cavity")
    assert "no LV curve, so no ED/ES or EF to check" in result.qc.reasons
    with pytest.raises(DataError, match=r"frames, rows, cols"):
        segment_cine(frames[0], None, plan_less)


def test_the_files_of_a_cine(tmp_path: Path) -> None:
    frames, _ = _disc_cine()
    segmenter = _segmenter(Echo())
    times = np.arange(FRAMES) * 40.0
    result = segment_cine(frames, (0.4, 0.4), segmenter, times_ms=times)
    row = write_cine(tmp_path, "in/cine.dcm", "cine", frames, result, segmenter, (0.4, 0.4), times)
    masks = sorted(tmp_path.glob("cine_frame*_mask.png"))
    assert len(masks) == FRAMES == row["frames"] and row["mask"] == str(masks[0])
    np.testing.assert_array_equal(np.asarray(Image.open(masks[5])), frames[5])
    curve = pd.read_csv(row["curve"])
    assert list(curve.columns) == ["frame", "time_ms", "lv_area_mm2", "lv_volume_ml", "smoothed", "phase",
                                   "qc_flag", "qc_uncertainty"]
    assert curve.loc[curve["phase"] == "ED", "frame"].tolist() == [row["ed_frame"]] == [3]
    assert Path(row["curve_plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(row["video"]).stat().st_size > 0 and Path(row["video"]).suffix in (".mp4", ".gif")
    assert row["qc_flag"] == "ok" and row["ef"] == pytest.approx(result.sequence.ef, abs=0.01)


def test_a_small_model_on_the_real_ultrasound_cine(camus_checkpoint: Path, tmp_path: Path) -> None:
    pydicom_data = pytest.importorskip("pydicom.data")
    cine = read_dicom_frames(Path(pydicom_data.get_testdata_file("examples_ybr_color.dcm")))
    member = load_member(camus_checkpoint, RunOptions("torch", "fp32", 8), tmp_path, 0)
    segmenter = Segmenter([member], tta=True)
    result = segment_dicom_cine(cine, segmenter, batch_size=8)
    assert result.labels.shape == cine.frames.shape == (30, 240, 320)
    assert len(result.uncertainty) == 30 and all(0.0 <= u <= 1.0 for u in result.uncertainty)  # type: ignore[operator]
    assert result.qc.flag in ("ok", "check") and result.qc.uncertainty == pytest.approx(np.mean(result.uncertainty))
    one = segmenter.images([cine.frames[7]])[0]
    np.testing.assert_array_equal(result.labels[7], (one[0] > 0.5).astype(np.uint8))  # the frames are predict's images
    if result.sequence is not None:
        assert result.sequence.n_frames == 30 and 0 <= result.sequence.ed < 30
        row = write_cine(tmp_path, cine.path, "ybr", cine.frames, result, segmenter, cine.spacing,
                         cine.frame_times_ms)
        assert row["frames"] == 30 and Path(row["curve"]).is_file()


def test_two_and_four_chamber_cines_of_a_patient_pair_up() -> None:
    stems = ["a/p1_2CH", "a/p1_4CH_cine", "a/p2_2CH", "b/p1_4ch", "p3_3CH", "p4-2ch", "p4-4CH"]
    assert biplane_pairs(stems) == [("a/p1", "a/p1_2CH", "a/p1_4CH_cine"), ("p4", "p4-2ch", "p4-4CH")]


def test_biplane_curve_of_a_pair(tmp_path: Path) -> None:
    frames, _ = _disc_cine()
    segmenter = _segmenter(Echo())
    two = segment_cine(frames, (0.4, 0.4), segmenter)
    four = segment_cine(frames[::2], (0.4, 0.4), segmenter)  # half the frame rate
    row = write_biplane(tmp_path, "p1", two, four, segmenter, (0.4, 0.4), (0.4, 0.4))
    assert row["volume_method"] == "biplane discs" and row["volume_unit"] == "mL" and row["ed_frame"] in (2, 3, 4)
    assert row["ef"] == pytest.approx(100 * (1 - (14 / 26) ** 3), abs=3) and row["qc_flag"] == "ok"
    assert "matched by relative position" in row["notes"]
    assert pd.read_csv(tmp_path / "p1_biplane_curve.csv")["lv_volume_ml"].notna().all()
    mixed = write_biplane(tmp_path, "p2", two, four, segmenter, (0.4, 0.4), None)
    assert mixed["volume_unit"] == "px^3" and mixed["notes"].startswith("one view's pixel spacing unknown")
