"""Whole sequences: every frame of a cine segmented, its LV curve, ED/ES and EF, QC, and what predict writes.

``segment_cine`` segments the frames in batches with the shared ``Segmenter`` (each frame's
uncertainty score comes with it), post-processes each frame as predict does a 2D image, and hands
the label maps to ``clinical.sequence`` for the curve, the ED/ES frames (the DICOM's when tagged)
and the EF. The QC of the cine is that of its ED and ES frames, the EF's plausibility and the mean
uncertainty; findings on other frames are counted.

``write_cine`` writes, for input stem ``S``: ``S_frameNNN_mask.png`` per frame, ``S_curve.csv``
(one row per frame), ``S_curve.png`` and ``S_contours.mp4`` (GIF without an H.264 encoder), and
returns the row of ``predictions.csv``. Cines named like ``<patient>_2CH...`` and
``<patient>_4CH...`` are a pair (``biplane_pairs``); ``write_biplane`` writes their biplane
volume curve as ``<patient>_biplane_curve.csv`` / ``.png`` and returns its row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardioseg.artifacts import PredictionFiles
from cardioseg.clinical.echo import echo_labels
from cardioseg.clinical.qc import UNCERTAINTY_LIMIT, QcResult, assess_for_plan, ef_reason
from cardioseg.clinical.sequence import SequenceResult, biplane_sequence, cine_sequence
from cardioseg.clinical.volumes import ClinicalError
from cardioseg.config import PostprocessConfig
from cardioseg.data.readers.dicom_frames import DicomFrames
from cardioseg.errors import DataError
from cardioseg.fileio import write_png, write_with
from cardioseg.inference.pipeline import Segmenter
from cardioseg.postprocess import probabilities_to_labels
from cardioseg.viz.cine import cine_video, plot_curve
from cardioseg.viz.video import write_video

CURVE_TABLE, CURVE_PLOT, CONTOUR_VIDEO, BIPLANE = "_curve.csv", "_curve.png", "_contours", "_biplane"
_VIEW_OF_CINE = re.compile(r"^(.*?)[\s_.-]+([24]CH)(?![A-Za-z])", re.IGNORECASE)
DEFAULT_FPS = 25.0
"""Frame rate of the video when the DICOM gives no frame times."""


@dataclass(frozen=True)
class CineResult:
    """One cine segmented: label maps (F, H, W), per-frame uncertainty and QC, the curve (None without an LV cavity)."""

    labels: np.ndarray
    uncertainty: list[float | None]
    frame_qc: list[QcResult]
    sequence: SequenceResult | None
    qc: QcResult
    notes: tuple[str, ...] = ()


def segment_cine(
    frames: np.ndarray,
    spacing: Sequence[float] | None,
    segmenter: Segmenter,
    *,
    postprocess: PostprocessConfig | None = None,
    tagged: tuple[int | None, int | None] = (None, None),
    times_ms: Sequence[float] | None = None,
    batch_size: int = 16,
    name: str = "",
) -> CineResult:
    """Segment every frame of a grey cine (F, H, W) and measure it (module docstring)."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or len(frames) == 0:
        raise DataError(f"a cine needs frames of shape (frames, rows, cols), got {frames.shape}", name or None)
    post = postprocess or PostprocessConfig()
    plan = segmenter.plan
    labels = np.zeros(frames.shape, np.uint8)
    uncertainty: list[float | None] = []
    for start in range(0, len(frames), batch_size):
        batch = list(frames[start : start + batch_size])
        probs, scores = segmenter.images_with_uncertainty(batch, post.threshold)
        for k, prob in enumerate(probs, start):
            labels[k] = probabilities_to_labels(prob, post, segmenter.slice_axis)
        uncertainty += scores
    frame_qc = [assess_for_plan(frame, plan, spacing, score, name) for frame, score in zip(labels, uncertainty)]
    sequence, notes = _sequence(labels, segmenter, spacing, tagged, times_ms)
    return CineResult(labels, uncertainty, frame_qc, sequence, cine_qc(frame_qc, sequence, uncertainty), notes)


def segment_dicom_cine(cine: DicomFrames, segmenter: Segmenter, **options: Any) -> CineResult:
    """``segment_cine`` of a multi-frame DICOM: its spacing, frame times and tagged ED/ES frames."""
    return segment_cine(cine.frames, cine.spacing, segmenter, tagged=(cine.ed_frame, cine.es_frame),
                        times_ms=cine.frame_times_ms, name=str(cine.path), **options)


def _sequence(
    labels: np.ndarray, segmenter: Segmenter, spacing: Sequence[float] | None,
    tagged: tuple[int | None, int | None], times_ms: Sequence[float] | None,
) -> tuple[SequenceResult | None, tuple[str, ...]]:
    """The curve of the plan's LV cavity class (a one-channel model's labels say 1), or None and why not."""
    plan = segmenter.plan
    echo, why = echo_labels(plan)
    if echo is None:
        return None, (f"no LV curve: {why}",)
    cavity = 1 if plan.binary else echo.cavity
    atrium = None if plan.binary else echo.atrium
    try:
        sequence = cine_sequence(labels, cavity, spacing, atrium=atrium, tagged=tagged, times_ms=times_ms)
    except ClinicalError as exc:
        return None, (f"no LV curve: {exc.problem}",)
    return sequence, ((why,) if why else ()) + sequence.notes


def cine_qc(frame_qc: Sequence[QcResult], sequence: SequenceResult | None,
            uncertainty: Sequence[float | None]) -> QcResult:
    """The cine's verdict: its ED and ES frames' reasons, the EF's plausibility, the mean uncertainty."""
    reasons: list[str] = []
    key = {sequence.ed: "ED", sequence.es: "ES"} if sequence is not None else {}
    for frame, phase in sorted(key.items()):  # frames counted from 1, as the video and the app show them
        reasons += [f"{phase} (frame {frame + 1} of {len(frame_qc)}): {reason}" for reason in frame_qc[frame].reasons]
    if sequence is None:
        reasons.append("no LV curve, so no ED/ES or EF to check")
    elif (reason := ef_reason(sequence.ef)) is not None:
        reasons.append(reason)
    elif not np.isfinite(sequence.ef):
        reasons.append("EF not measurable at the ED/ES frames")
    others = sum(1 for k, qc in enumerate(frame_qc) if qc.flag == "check" and k not in key)
    if others:
        reasons.append(f"{others} of the other {len(frame_qc) - len(key)} frames have QC findings")
    known = [u for u in uncertainty if u is not None]
    mean = float(np.mean(known)) if known else None
    if mean is not None and mean > UNCERTAINTY_LIMIT:
        reasons.append(f"models/flips disagree over the cine (mean uncertainty {mean:.2f} > {UNCERTAINTY_LIMIT})")
    return QcResult("check" if reasons else "ok", tuple(reasons), mean)


def write_cine(
    out_dir: Path, source: str | Path, stem: str | Path, frames: np.ndarray, result: CineResult,
    segmenter: Segmenter, spacing: Sequence[float] | None, times_ms: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Per-frame masks, the curve (CSV, PNG) and the contour video of one cine; its row of predictions.csv
    (``mask`` is the first frame's, ``frames`` says how many follow it)."""
    files = PredictionFiles(Path(out_dir))
    stem = str(stem)
    masks = [write_png(files.mask(f"{stem}_frame{k:03d}"), mask) for k, mask in enumerate(result.labels)]
    row: dict[str, Any] = {"source": str(source), "kind": "cine", "mask": str(masks[0]), "frames": len(masks),
                           "shape": "x".join(map(str, result.labels.shape))}
    plan = segmenter.plan
    names = {1: plan.foreground[0].name} if plan.binary else plan.class_names
    title = Path(stem).name
    if result.sequence is not None:
        curve = Path(out_dir) / f"{stem}{CURVE_TABLE}"
        table = result.sequence.to_frame()
        table["qc_flag"] = [qc.flag for qc in result.frame_qc]
        table["qc_uncertainty"] = [qc.as_row()["qc_uncertainty"] for qc in result.frame_qc]
        row["curve"] = str(write_with(curve, lambda tmp: table.to_csv(tmp, index=False)))
        row["curve_plot"] = str(plot_curve(result.sequence, Path(out_dir) / f"{stem}{CURVE_PLOT}", title))
        row.update(result.sequence.summary())
    fps = _fps(times_ms)
    video = cine_video(frames, result.labels, result.sequence, names, spacing, fps, title)
    row["video"] = str(write_video(video, Path(out_dir) / f"{stem}{CONTOUR_VIDEO}"))
    row["notes"] = "; ".join(result.notes)
    return {**row, **result.qc.as_row()}


def _fps(times_ms: Sequence[float] | None) -> float:
    """Real time from the frame times (their median step), else ``DEFAULT_FPS``."""
    if times_ms is None or len(times_ms) < 2:
        return DEFAULT_FPS
    step = float(np.median(np.diff(np.asarray(times_ms, float))))
    return 1000.0 / step if step > 0 else DEFAULT_FPS


def biplane_pairs(stems: Iterable[str]) -> list[tuple[str, str, str]]:
    """(patient, 2CH stem, 4CH stem) of the cines whose names give the same patient and both apical views."""
    views: dict[str, dict[str, str]] = {}
    for stem in stems:
        match = _VIEW_OF_CINE.match(Path(stem).name)
        if match:
            patient = str(Path(stem).with_name(match.group(1)))
            views.setdefault(patient, {}).setdefault(match.group(2).upper(), stem)
    return [(patient, found["2CH"], found["4CH"]) for patient, found in sorted(views.items())
            if {"2CH", "4CH"} <= set(found)]


def write_biplane(
    out_dir: Path, patient: str, two: CineResult, four: CineResult, segmenter: Segmenter,
    spacing_2ch: Sequence[float] | None, spacing_4ch: Sequence[float] | None,
    times_ms: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The biplane volume curve of a 2CH + 4CH pair of cines (on the 2CH's frames): CSV, PNG and its row."""
    row: dict[str, Any] = {"source": patient, "kind": "biplane cine pair"}
    echo, why = echo_labels(segmenter.plan)
    if echo is None:
        return {**row, "notes": f"no biplane curve: {why}"}
    cavity, atrium = (1, None) if segmenter.plan.binary else (echo.cavity, echo.atrium)
    if (spacing_2ch is None) != (spacing_4ch is None):
        spacing_2ch = spacing_4ch = None  # mm and pixels cannot be mixed: both views in pixel units
        row["notes"] = "one view's pixel spacing unknown: volumes in px³"
    try:
        sequence = biplane_sequence(two.labels, four.labels, cavity, spacing_2ch, spacing_4ch, atrium=atrium,
                                    times_ms=times_ms)
    except ClinicalError as exc:
        return {**row, "notes": f"no biplane curve: {exc.problem}"}
    stem = f"{patient}{BIPLANE}"
    table = sequence.to_frame()
    row["curve"] = str(write_with(Path(out_dir) / f"{stem}{CURVE_TABLE}", lambda tmp: table.to_csv(tmp, index=False)))
    row["curve_plot"] = str(plot_curve(sequence, Path(out_dir) / f"{stem}{CURVE_PLOT}", f"{Path(patient).name} biplane"))
    reason = ef_reason(sequence.ef)
    qc = QcResult("check" if reason else "ok", (reason,) if reason else (), None)
    notes = "; ".join([*filter(None, [row.get("notes")]), *sequence.notes])
    return {**row, **sequence.summary(), "notes": notes, **qc.as_row()}

