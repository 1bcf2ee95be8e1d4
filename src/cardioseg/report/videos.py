"""The report's overlay videos: through the slices of a volume, or through the frames of an echo patient.

A cardiologist checks a segmentation by scrolling, not from one slice: a volume is played slice
by slice over the range holding any foreground (predicted or reference); an echo patient is
played view by view, either its annotated ED/ES frames (camus224) or, when the original CAMUS
layout gives the whole sequence (``meta["sequence_path"]``), the sequence with the contours on
the frames that have masks. Encoding: ``cardioseg.viz.video``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cardioseg.anatomy import PHASES, VIEWS
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import CardiosegError
from cardioseg.evaluation.clinical_outputs import echo_views
from cardioseg.viz.frames import grey_levels, overlay_frame
from cardioseg.viz.slices import display_spacing, foreground_range, volume_slice
from cardioseg.viz.video import Video, encode_video

VOLUME_FPS = 8.0
FRAME_FPS = 1.0  # ED/ES frames only: one second each
SEQUENCE_FPS = 10.0
HOLD_ANNOTATED = 5  # a sequence frame with contours is shown this many times, so it can be read


def volume_video(prepared: PreparedDataset, case_id: str, prediction: np.ndarray) -> Video:
    """The slices of one volume holding any foreground, in radiological orientation."""
    info = prepared.cases[case_id]
    axis, affine = info["slice_axis"], info.get("affine")
    image, ref = prepared.original_image(case_id), prepared.original_label(case_id)
    window = grey_levels(image)
    spacing = display_spacing(prepared.spacing(case_id), axis, affine)
    first, last = foreground_range(prediction, ref, slice_axis=axis)
    depth = image.shape[axis]
    frames = [
        overlay_frame(
            volume_slice(image, k, axis, affine), volume_slice(prediction, k, axis, affine),
            volume_slice(ref, k, axis, affine), window, f"{case_id}  slice {k + 1} of {depth}", spacing,
            class_names=prepared.plan.class_names,
        )
        for k in range(first, last + 1)
    ]
    return encode_video(frames, VOLUME_FPS)


def echo_video(prepared: PreparedDataset, patient_id: str, predictions: dict[str, np.ndarray]) -> tuple[Video | None, list[str]]:
    """One patient's views in turn (2CH then 4CH): whole sequences where available, else the ED/ES frames."""
    cases = echo_views(prepared, list(predictions)).get(patient_id, {})
    parts: list[tuple[list[np.ndarray], bool]] = []  # (frames, is a sequence)
    notes: list[str] = []
    for view in VIEWS:
        view_cases = {phase: cases[(view, phase)] for phase in PHASES if (view, phase) in cases}
        if not view_cases:
            notes.append(f"{patient_id}: no {view} view to show")
            continue
        sequence = _sequence_frames(prepared, patient_id, view, view_cases, predictions, notes)
        parts.append((sequence, True) if sequence is not None else (
            [_frame(prepared, c, predictions[c], f"{patient_id}  {view}  {phase}") for phase, c in view_cases.items()],
            False,
        ))
    if not parts:
        return None, notes
    fps = SEQUENCE_FPS if any(is_sequence for _, is_sequence in parts) else FRAME_FPS
    still = round(fps / FRAME_FPS)  # a single ED or ES frame stays on screen for a second either way
    frames = [f for part, is_sequence in parts for f in part for _ in range(1 if is_sequence else still)]
    return encode_video(frames, fps), notes


def images_video(prepared: PreparedDataset, case_ids: list[str], predictions: dict[str, np.ndarray]) -> Video:
    """2D images that are not echo views (e.g. a patient's short-axis slices), one second each."""
    return encode_video([_frame(prepared, c, predictions[c], c) for c in case_ids], FRAME_FPS)


def _frame(prepared: PreparedDataset, case_id: str, prediction: np.ndarray, caption: str) -> np.ndarray:
    image = prepared.original_image(case_id)
    return overlay_frame(image, prediction, prepared.original_label(case_id), grey_levels(image), caption,
                         prepared.spacing(case_id), class_names=prepared.plan.class_names)


def _sequence_frames(
    prepared: PreparedDataset, patient_id: str, view: str, view_cases: dict[str, str],
    predictions: dict[str, np.ndarray], notes: list[str],
) -> list[np.ndarray] | None:
    """Frames of the whole (half-)sequence with contours at ED and ES; None when there is no usable sequence."""
    any_case = next(iter(view_cases.values()))
    meta = prepared.cases[any_case].get("meta") or {}
    if not meta.get("sequence_path"):
        return None
    path = Path(meta["sequence_path"])
    try:
        sequence = _read_sequence(path)
    except CardiosegError as exc:
        notes.append(f"{patient_id} {view}: sequence not shown ({exc})")
        return None
    shape = prepared.original_image(any_case).shape
    if sequence.shape[1:] != shape:
        notes.append(f"{patient_id} {view}: sequence frames {sequence.shape[1:]} do not match the ED/ES frames {shape}")
        return None
    marks = _phase_frames(meta, len(sequence), path)
    window, spacing = grey_levels(sequence), prepared.spacing(any_case)
    frames = []
    for t, image in enumerate(sequence):
        caption = f"{patient_id}  {view}  frame {t + 1} of {len(sequence)}"
        phase = next((p for p, index in marks.items() if index == t and p in view_cases), None)
        if phase is None:
            frames.append(overlay_frame(image, None, None, window, caption, spacing, class_names=prepared.plan.class_names))
            continue
        case_id = view_cases[phase]
        annotated = overlay_frame(image, predictions[case_id], prepared.original_label(case_id), window,
                                  f"{caption}  ({phase})", spacing, class_names=prepared.plan.class_names)
        frames += [annotated] * HOLD_ANNOTATED
    return frames


def _read_sequence(path: Path) -> np.ndarray:
    """(T, rows, cols) frames, apex up, as the CAMUS reader orients single frames."""
    from cardioseg.data.readers.base import read_volume

    array, _, _ = read_volume(path)
    array = np.squeeze(array)
    if array.ndim != 3:
        raise CardiosegError(f"expected a 2D+t sequence, got shape {array.shape}", path)
    return np.ascontiguousarray(np.moveaxis(array, -1, 0).transpose(0, 2, 1))


def _phase_frames(meta: dict[str, object], n_frames: int, path: Path) -> dict[str, int]:
    """0-based ED and ES frame indices: from the Info file when they fit, else a half sequence's ends."""
    ed, es = meta.get("ED"), meta.get("ES")
    if isinstance(ed, int) and isinstance(es, int) and 1 <= ed <= n_frames and 1 <= es <= n_frames and ed != es:
        return {"ED": ed - 1, "ES": es - 1}
    if "half_sequence" in path.name:  # CAMUS 2023: the half sequence runs from ED to ES
        return {"ED": 0, "ES": n_frames - 1}
    return {}
