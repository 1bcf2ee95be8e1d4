"""A folder of DICOM files (one file per slice, and per phase for a cine) as series, volumes and cines.

Files are grouped by SeriesInstanceUID and ordered by their position along the slice normal,
the cross product of ImageOrientationPatient's row and column directions dotted with
ImagePositionPatient; file names and InstanceNumber never decide the order. Files at the same
position (within ``POSITION_TOLERANCE_MM``) are phases of a cine series, ordered by
TemporalPositionIdentifier, else TriggerTime, else InstanceNumber; every position must then
have the same number of phases.

A series of one phase is a volume: index order (i, j, k) = (column, row, slice), the layout a
DICOM-to-NIfTI conversion gives, so a model trained on NIfTI volumes sees the same planes. Its
spacing is (PixelSpacing column, PixelSpacing row, position step) and its affine maps voxels to
RAS millimetres (DICOM's LPS with x and y negated). Uneven steps (a missing slice) are said in
``DicomSeries.note`` and logged; the volume then uses the median step. A cine series is read per
slice position, as a cine of its phases (``position_frames``), or one phase at a time as a volume.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardioseg.data.readers import dicom_io
from cardioseg.data.readers.base import read_dicom, read_dicom_header
from cardioseg.data.readers.dicom_frames import DicomFrames
from cardioseg.errors import DataError

log = logging.getLogger(__name__)

POSITION_TOLERANCE_MM = 0.05
"""Two slices closer than this along the normal are at the same position (phases of a cine)."""
ORIENTATION_TOLERANCE = 1e-3
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class _Slice:
    path: Path
    series_uid: str
    description: str
    distance: float  # position along the slice normal, mm
    position: np.ndarray  # ImagePositionPatient, LPS mm
    orientation: np.ndarray  # ImageOrientationPatient: row direction, column direction
    shape: tuple[int, int]
    spacing: tuple[float, float] | None
    time_key: tuple[float, float]


@dataclass(frozen=True)
class DicomSeries:
    """One series: its files as ``files[position][phase]``, and the geometry its headers give."""

    uid: str
    description: str
    folder: Path
    files: tuple[tuple[Path, ...], ...]
    spacing: tuple[float, float, float] | None
    """(column mm, row mm, step mm) along (i, j, k); None when PixelSpacing is missing."""
    affine: np.ndarray
    """4 x 4, voxel (i, j, k) to RAS mm."""
    note: str
    """Why the geometry is not a regular grid ("" when it is)."""

    @property
    def positions(self) -> int:
        return len(self.files)

    @property
    def phases(self) -> int:
        return len(self.files[0])

    @property
    def is_cine(self) -> bool:
        return self.phases > 1

    @property
    def n_files(self) -> int:
        return self.positions * self.phases

    def describe(self) -> str:
        kind = f"cine, {self.positions} position(s) x {self.phases} phases" if self.is_cine else f"{self.positions} slices"
        text = f"{self.uid} {self.description!r}: {self.n_files} files ({kind})"
        return f"{text}; {self.note}" if self.note else text


def find_series(paths: Sequence[Path]) -> tuple[list[DicomSeries], list[Path]]:
    """(series of two files or more with slice geometry, the other files), series ordered by UID.

    Files without ImagePositionPatient/ImageOrientationPatient or SeriesInstanceUID, multi-frame
    files and series of a single file stay single images; so do unreadable ones, whose reading
    then names the problem (and ``--skip-bad`` can list it without losing the rest).
    """
    slices: dict[str, list[_Slice]] = {}
    single: list[Path] = []
    for path in paths:
        try:
            found = _slice(Path(path))
        except DataError:
            found = None
        if found is None:
            single.append(Path(path))
        else:
            slices.setdefault(found.series_uid, []).append(found)
    series: list[DicomSeries] = []
    for uid in sorted(slices):
        if len(slices[uid]) < 2:
            single.append(slices[uid][0].path)
        else:
            series.append(_build(uid, slices[uid]))
    return series, sorted(single)


def choose_series(series: Sequence[DicomSeries], uid: str | None, folder: Path) -> list[DicomSeries]:
    """All series, or the one ``uid`` names (a DataError listing them when none has that UID)."""
    if uid is None:
        return list(series)
    chosen = [s for s in series if s.uid == uid]
    if not chosen:
        listing = "; ".join(s.describe() for s in series) or "none"
        raise DataError(f"no series with SeriesInstanceUID {uid}; this folder holds: {listing}", folder)
    return chosen


def read_volume(series: DicomSeries, phase: int = 0) -> np.ndarray:
    """One phase of ``series`` as float32 (i, j, k) = (column, row, slice)."""
    if not 0 <= phase < series.phases:
        raise DataError(f"phase {phase} is outside 0..{series.phases - 1} of series {series.uid}", series.folder)
    planes = [read_dicom(files[phase])[0] for files in series.files]
    return np.stack(planes, axis=-1).transpose(1, 0, 2).astype(np.float32, copy=False)


def position_frames(series: DicomSeries, position: int) -> DicomFrames:
    """The phases at one slice position of a cine series, as the frames of a cine (times from TriggerTime)."""
    files = series.files[position]
    planes, times = [], []
    for path in files:
        image, _, header = read_dicom(path)
        planes.append(image.astype(np.float32, copy=False))
        times.append(float(header.get("TriggerTime") or "nan"))
    frame_times = np.asarray(times) - times[0] if np.isfinite(times).all() else None
    spacing = None if series.spacing is None else (series.spacing[1], series.spacing[0])
    return DicomFrames(np.stack(planes), spacing, "PixelSpacing" if spacing else "unknown", frame_times, None, None,
                       files[0])


def _slice(path: Path) -> _Slice | None:
    """The geometry of one single-frame DICOM file, or None when it has none to place it in a series."""
    header = read_dicom_header(path)
    needed = ("SeriesInstanceUID", "ImagePositionPatient", "ImageOrientationPatient", "Rows", "Columns")
    if any(header.get(k) in (None, "") for k in needed) or dicom_io.dicom_geometry(header, path).frames > 1:
        return None
    position = _vector(header.ImagePositionPatient, 3, "ImagePositionPatient", path)
    orientation = _vector(header.ImageOrientationPatient, 6, "ImageOrientationPatient", path)
    normal = np.cross(orientation[:3], orientation[3:])
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-2):
        raise DataError(f"ImageOrientationPatient {orientation.tolist()} is not two orthogonal unit vectors", path)
    temporal = header.get("TemporalPositionIdentifier")
    trigger = header.get("TriggerTime")
    instance = header.get("InstanceNumber")
    time_key = (float(temporal) if temporal not in (None, "") else float(trigger) if trigger not in (None, "")
                else float("inf"), float(instance) if instance not in (None, "") else 0.0)
    return _Slice(path, str(header.SeriesInstanceUID), str(header.get("SeriesDescription", "")),
                  float(np.dot(normal, position)), position, orientation, (int(header.Rows), int(header.Columns)),
                  dicom_io.pixel_spacing(header, path), time_key)


def _vector(value: object, length: int, keyword: str, path: Path) -> np.ndarray:
    try:
        vector = np.asarray([float(v) for v in value], np.float64)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise DataError(f"{keyword} {value} is not numeric", path) from None
    if vector.shape != (length,) or not np.isfinite(vector).all():
        raise DataError(f"{keyword} {value} must be {length} finite numbers", path)
    return vector


def _build(uid: str, slices: list[_Slice]) -> DicomSeries:
    first = slices[0]
    for other in slices[1:]:
        if not np.allclose(other.orientation, first.orientation, atol=ORIENTATION_TOLERANCE):
            raise DataError(f"series {uid}: ImageOrientationPatient {other.orientation.tolist()} differs from "
                            f"{first.orientation.tolist()} of {first.path.name}; the files are no single stack",
                            other.path)
        if other.shape != first.shape or other.spacing != first.spacing:
            raise DataError(f"series {uid}: {other.shape[0]} x {other.shape[1]} pixels of {other.spacing} mm differ "
                            f"from {first.path.name} ({first.shape[0]} x {first.shape[1]} of {first.spacing} mm)",
                            other.path)
    ordered = sorted(slices, key=lambda s: (s.distance, s.time_key, s.path.name))
    groups: list[list[_Slice]] = [[ordered[0]]]
    for item in ordered[1:]:
        if item.distance - groups[-1][0].distance > POSITION_TOLERANCE_MM:
            groups.append([item])
        else:
            groups[-1].append(item)
    for group in groups:
        group.sort(key=lambda s: (s.time_key, s.path.name))
    counts = sorted({len(g) for g in groups})
    if len(counts) > 1:
        raise DataError(f"series {uid}: slice positions hold different numbers of phases ({counts}); a cine series "
                        "needs every position at every phase (is a file missing?)", first.path.parent)
    distances = np.array([g[0].distance for g in groups])
    steps = np.diff(distances)
    step = float(np.median(steps)) if len(steps) else 1.0
    note = ""
    if len(steps) and not np.allclose(steps, step, rtol=0.01, atol=0.01):
        note = (f"uneven slice steps {np.round(steps, 2).tolist()} mm (a missing slice?): the volume assumes "
                f"the median {step:.3g} mm")
        log.warning("%s: series %s has %s", first.path.parent, uid, note)
    spacing = None if first.spacing is None else (first.spacing[1], first.spacing[0], step)
    affine = _affine(groups[0][0], spacing or (1.0, 1.0, step))
    return DicomSeries(uid, first.description, first.path.parent,
                       tuple(tuple(s.path for s in g) for g in groups), spacing, affine, note)


def _affine(first: _Slice, spacing: tuple[float, float, float]) -> np.ndarray:
    """Voxel (i = column, j = row, k = slice) to RAS mm, from the first slice's position and the spacing."""
    row_dir, col_dir = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row_dir, col_dir)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing[0]  # along a row: increasing column index i
    lps[:3, 1] = col_dir * spacing[1]  # down a column: increasing row index j
    lps[:3, 2] = normal * spacing[2]
    lps[:3, 3] = first.position
    ras = np.eye(4)
    ras[:3] = LPS_TO_RAS @ lps[:3]
    return ras

