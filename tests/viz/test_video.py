"""Overlay videos of real volumes and echo patients, the GIF fallback, and radiological slice orientation."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import nibabel as nib
import numpy as np
import pytest

from cardioseg.data.prepared import PreparedDataset
from cardioseg.report import videos as videos_module
from cardioseg.report.videos import echo_video, volume_video
from cardioseg.viz import video as video_module
from cardioseg.viz.slices import display_plane, display_spacing, foreground_range
from cardioseg.viz.video import write_video
from evaluation_folders import eroded_predictions


def frame_count(path: Path) -> int:
    with imageio.get_reader(path) as reader:
        return sum(1 for _ in reader)


def test_display_plane_puts_anterior_up_and_patient_right_left() -> None:
    plane = np.arange(6).reshape(2, 3)  # axes (x, y) of an axial slice
    ras = np.eye(4)  # x grows towards the patient's right, y towards anterior: both flipped for display
    assert np.array_equal(display_plane(plane, 2, ras), plane.T[::-1, ::-1])
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])  # x grows towards the left, y towards posterior: as displayed
    assert np.array_equal(display_plane(plane, 2, lps), plane.T)
    assert np.array_equal(display_plane(plane, 2, None), plane)
    assert display_spacing((1.0, 2.0, 3.0), 2, ras) == (2.0, 1.0)  # rows now run along y


def test_foreground_range_covers_both_masks() -> None:
    pred, ref = np.zeros((4, 4, 30), bool), np.zeros((4, 4, 30), bool)
    pred[1, 1, 10], ref[2, 2, 20] = True, True
    assert foreground_range(pred, ref, slice_axis=2, margin=3) == (7, 23)
    assert foreground_range(np.zeros((4, 4, 5)), slice_axis=2) == (0, 4)


def test_volume_video_plays_the_slices_with_foreground(msd_small: PreparedDataset, tmp_path: Path) -> None:
    case_id = sorted(msd_small.cases)[0]
    pred = eroded_predictions(msd_small)[case_id]
    video = volume_video(msd_small, case_id, pred)
    assert video.mime == "video/mp4" and video.data[4:8] == b"ftyp"
    path = write_video(video, tmp_path / case_id)
    first, last = foreground_range(pred, msd_small.original_label(case_id), slice_axis=2)
    assert path.suffix == ".mp4" and frame_count(path) == last - first + 1


def test_gif_when_no_encoder(camus_small: PreparedDataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_ffmpeg(frames: list[np.ndarray], fps: float) -> bytes:
        raise OSError("ffmpeg not available")

    monkeypatch.setattr(video_module, "_mp4", no_ffmpeg)
    video, _ = echo_video(camus_small, "patient0002", eroded_predictions(camus_small))
    assert video is not None and video.mime == "image/gif" and video.data[:6] == b"GIF89a"
    assert frame_count(write_video(video, tmp_path / "clip")) == 4


def test_echo_video_shows_the_four_frames(camus_small: PreparedDataset, tmp_path: Path) -> None:
    video, notes = echo_video(camus_small, "patient0001", eroded_predictions(camus_small))
    assert video is not None and notes == []
    assert frame_count(write_video(video, tmp_path / "patient0001")) == 4  # 2CH ED, ES, 4CH ED, ES


def test_patient_without_4ch_is_noted(camus_small: PreparedDataset) -> None:
    predictions = {c: p for c, p in eroded_predictions(camus_small).items() if not c.startswith("patient0001_4CH")}
    video, notes = echo_video(camus_small, "patient0001", predictions)
    assert video is not None and notes == ["patient0001: no 4CH view to show"]


def test_whole_sequence_when_the_original_layout_gives_it(camus_small: PreparedDataset, tmp_path: Path) -> None:
    """CAMUS original layout: the 2CH half sequence (ED..ES) is played, contours on its first and last frames."""
    image = camus_small.original_image("patient0001_2CH_ED")
    sequence = tmp_path / "patient0001_2CH_half_sequence.nii.gz"
    stored = np.stack([image.T] * 6, axis=-1)  # files hold (lateral, depth, time): the reader transposes
    nib.save(nib.Nifti1Image(stored.astype(np.uint8), np.eye(4)), sequence)
    prepared = PreparedDataset(camus_small.root)  # a fresh view: the shared fixture keeps its meta
    for phase in ("ED", "ES"):
        prepared.cases[f"patient0001_2CH_{phase}"]["meta"].update({"sequence_path": str(sequence), "ED": 1, "ES": 18})
    video, notes = echo_video(prepared, "patient0001", eroded_predictions(prepared))
    assert video is not None and notes == []
    hold, still = videos_module.HOLD_ANNOTATED, round(videos_module.SEQUENCE_FPS / videos_module.FRAME_FPS)
    # 6 sequence frames with ED and ES held; then the 4CH view's ED and ES frames, a second each
    assert frame_count(write_video(video, tmp_path / "seq")) == 4 + 2 * hold + 2 * still
