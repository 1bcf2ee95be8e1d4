"""A single- or multi-frame DICOM file (ultrasound cine, MR cine, enhanced multi-frame MR) as grey frames.

Everything a cine needs besides the pixels comes from the header: the pixel size (see
``dicom_pixels.physical_spacing``), the frame times, and end-diastole / end-systole where the
file tags them. Frame indices are 0-based here, although DICOM counts frames from 1.

Frame times, in ms from the first frame: FrameTimeVector (the increments between frames, the
first one 0), else FrameTime (a constant interval), else each frame's NominalCardiacTriggerDelayTime
(enhanced MR). End-diastole is the first frame an R wave points at (RWavePointer: the ECG's R wave
marks end-diastole); an enhanced file's FrameLabel of "ED"/"ES" (or "end diastole"/"end systole")
tags them too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from cardioseg.data.readers import dicom_io
from cardioseg.data.readers.base import reading
from cardioseg.data.readers.dicom_io import MAX_DICOM_BYTES
from cardioseg.data.readers.dicom_pixels import decode_grey, physical_spacing, require_pixels
from cardioseg.errors import DataError

_LABELS = {"ED": "ed", "END DIASTOLE": "ed", "END-DIASTOLE": "ed", "ES": "es", "END SYSTOLE": "es",
           "END-SYSTOLE": "es"}


@dataclass(frozen=True)
class DicomFrames:
    """The frames of one DICOM file and what its header says about them."""

    frames: np.ndarray
    """float32 (F, H, W), grey."""
    spacing: tuple[float, float] | None
    """(row_mm, col_mm), or None when the header vouches for none."""
    spacing_source: str
    """"ultrasound regions", "PixelSpacing", "ImagerPixelSpacing" or "unknown"."""
    frame_times_ms: np.ndarray | None
    """(F,) ms since the first frame, or None when the header gives no timing."""
    ed_frame: int | None
    es_frame: int | None
    path: Path


def read_dicom_frames(path: Path) -> DicomFrames:
    """Every frame of a DICOM file as grey float32 (F, H, W), with spacing, frame times and tagged ED/ES.

    The header's size (frames counted) is checked against ``MAX_DICOM_BYTES`` before any pixel is
    decoded; an unsupported transfer syntax or colour model is a DataError naming the file.
    """
    path = Path(path)
    with reading(path, "DICOM file"):
        ds = dicom_io.open_dicom(path, MAX_DICOM_BYTES, pixels=True)
        require_pixels(ds, path)
        frames = decode_grey(ds, path)
        spacing, source = physical_spacing(ds, path)
        times = frame_times(ds, len(frames), path)
        ed, es = tagged_phases(ds, len(frames), path)
    if not np.isfinite(frames).all():
        raise DataError(f"frames hold {int((~np.isfinite(frames)).sum())} NaN or infinite pixels", path)
    return DicomFrames(frames, spacing, source, times, ed, es, path)


def frame_times(ds: pydicom.Dataset, count: int, path: Path) -> np.ndarray | None:
    """(count,) ms since the first frame from FrameTimeVector, FrameTime or trigger delays; None without them."""
    if "FrameTimeVector" in ds and ds.FrameTimeVector not in (None, ""):
        steps = _numbers(ds.FrameTimeVector, "FrameTimeVector", path)
        if len(steps) != count:
            raise DataError(f"FrameTimeVector has {len(steps)} values for {count} frames", path)
        return np.cumsum(np.asarray(steps, np.float64) * (np.arange(count) > 0))
    if "FrameTime" in ds and ds.FrameTime not in (None, ""):
        (step,) = _numbers(ds.FrameTime, "FrameTime", path)
        if step <= 0:
            raise DataError(f"FrameTime is {step} ms: expected a positive interval", path)
        return np.arange(count, dtype=np.float64) * step
    delays = [_trigger_delay(item) for item in ds.get("PerFrameFunctionalGroupsSequence", [])]
    if count > 1 and len(delays) == count and all(d is not None for d in delays):
        times = np.asarray(delays, np.float64)
        return times - times[0]
    return None


def tagged_phases(ds: pydicom.Dataset, count: int, path: Path) -> tuple[int | None, int | None]:
    """(ED, ES) frame indices (0-based) the header tags, each None when it tags none."""
    found: dict[str, int] = {}
    if "RWavePointer" in ds and ds.RWavePointer not in (None, ""):
        pointers = [int(p) for p in _numbers(ds.RWavePointer, "RWavePointer", path)]
        if pointers:
            if not 1 <= pointers[0] <= count:
                raise DataError(f"RWavePointer {pointers[0]} is outside frames 1..{count}", path)
            found["ed"] = pointers[0] - 1
    for index, item in enumerate(ds.get("PerFrameFunctionalGroupsSequence", [])[:count]):
        for content in item.get("FrameContentSequence", []):
            phase = _LABELS.get(str(content.get("FrameLabel", "")).strip().upper())
            if phase is not None:
                found.setdefault(phase, index)
    return found.get("ed"), found.get("es")


def _trigger_delay(item: pydicom.Dataset) -> float | None:
    for sync in item.get("CardiacSynchronizationSequence", []):
        value = sync.get("NominalCardiacTriggerDelayTime")
        if value not in (None, ""):
            return float(value)
    return None


def _numbers(value: object, keyword: str, path: Path) -> list[float]:
    values = list(value) if isinstance(value, pydicom.multival.MultiValue) else [value]
    try:
        numbers = [float(v) for v in values]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{keyword} {values} is not numeric", path) from None
    if not all(math.isfinite(v) for v in numbers):
        raise DataError(f"{keyword} {values} holds non-finite values", path)
    return numbers
