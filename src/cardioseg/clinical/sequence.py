"""A cine's LV cavity over time: area and volume curves, end-diastole and end-systole, ejection fraction.

Input: the label maps of every frame (F, H, W), apex up as echo is displayed, with the pixel
spacing when known. Per frame:

* **area**: cavity pixels times the pixel area (mm², else px²);
* **volume**: one view alone by the single-plane method of discs (V = pi/4 * sum(d_i²) * L / n,
  the discs of ``simpson.view_geometry``); a 2CH + 4CH pair by the biplane method of discs
  (``simpson.biplane_volume``), the 4CH cine's frames matched to the 2CH's by relative position in
  the sequence (both cines are assumed to cover the same heart cycle from the same trigger).

ED and ES are the frames of the largest and smallest cavity on the smoothed curve (the volume when
there is one, else the area), unless the DICOM tagged them. Smoothing (``smooth``): a 3-frame
median first, so a single failed frame can never become ED or ES, then a Savitzky-Golay filter
(quadratic, about a tenth of the sequence, at least 5 frames): it removes the frame-to-frame
segmentation jitter but, unlike a moving average, keeps the height and position of the peak and
the trough, which are exactly what is measured. The EF is computed from the *unsmoothed* volumes of
those frames: smoothing picks the frames, it does not change the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter
from scipy.signal import savgol_filter

from cardioseg.clinical.simpson import N_DISCS, biplane_volume, ejection_fraction, view_geometry
from cardioseg.clinical.volumes import MM3_PER_ML, ClinicalError

MIN_SMOOTH_FRAMES = 5
"""Shorter sequences are used as they are: a filter over 3 or 4 frames would shift the extremes."""


@dataclass(frozen=True)
class SequenceResult:
    """Per-frame curves of one cine (or a 2CH + 4CH pair) and the ED/ES frames and EF derived from them."""

    area: np.ndarray
    """LV cavity area per frame, in ``area_unit`` (the 2CH view's for a pair)."""
    area_unit: str
    volume: np.ndarray
    """LV cavity volume per frame in ``volume_unit`` (NaN where a frame cannot be measured)."""
    volume_unit: str
    method: str
    """"single-plane discs" or "biplane discs"."""
    smoothed: np.ndarray
    """The curve ED and ES were read from (volume, or area without volumes), smoothed."""
    ed: int
    es: int
    phase_source: str
    """"detected" (from the smoothed curve) or "DICOM" (tagged in the file) or "user"."""
    times_ms: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    @property
    def n_frames(self) -> int:
        return len(self.area)

    @property
    def edv(self) -> float:
        return float(self.volume[self.ed])

    @property
    def esv(self) -> float:
        return float(self.volume[self.es])

    @property
    def ef(self) -> float:
        """EF in % from the volumes of the ED and ES frames; NaN when either cannot be measured."""
        try:
            return ejection_fraction(self.edv, self.esv)
        except ClinicalError:
            return float("nan")

    def with_phases(self, ed: int, es: int, source: str = "user") -> SequenceResult:
        """The same curves with other ED/ES frames (the app's user moving them): the EF follows."""
        for name, frame in (("ED", ed), ("ES", es)):
            if not 0 <= frame < self.n_frames:
                raise ClinicalError(f"{name} frame {frame} is outside the cine's frames 0-{self.n_frames - 1}")
        return replace(self, ed=int(ed), es=int(es), phase_source=source)

    def to_frame(self) -> pd.DataFrame:
        """One row per frame: the CSV of the curve."""
        table = pd.DataFrame({
            "frame": np.arange(self.n_frames),
            f"lv_area_{_slug(self.area_unit)}": self.area,
            f"lv_volume_{_slug(self.volume_unit)}": self.volume,
            "smoothed": self.smoothed,
            "phase": ["ED" if i == self.ed else "ES" if i == self.es else "" for i in range(self.n_frames)],
        })
        if self.times_ms is not None:
            table.insert(1, "time_ms", self.times_ms)
        return table

    def summary(self) -> dict[str, object]:
        """ED/ES frames, volumes and EF: one row of predictions.csv."""
        return {"ed_frame": self.ed, "es_frame": self.es, "phase_source": self.phase_source,
                "edv": round(self.edv, 3), "esv": round(self.esv, 3), "volume_unit": self.volume_unit,
                "ef": round(self.ef, 2), "volume_method": self.method}


def _slug(unit: str) -> str:
    return {"mm²": "mm2", "px²": "px2", "px^3": "px3"}.get(unit, unit.lower())


def smooth(curve: Sequence[float] | np.ndarray) -> np.ndarray:
    """3-frame median, then Savitzky-Golay (order 2, window ~F/10, at least 5): see the module docstring.

    NaN frames (unmeasurable) are filled from their neighbours first; sequences under
    ``MIN_SMOOTH_FRAMES`` frames come back as they are.
    """
    values = np.asarray(curve, dtype=float)
    known = np.isfinite(values)
    if not known.any():
        raise ClinicalError("no frame of the cine could be measured")
    values = np.interp(np.arange(len(values)), np.flatnonzero(known), values[known])
    if len(values) < MIN_SMOOTH_FRAMES:
        return values
    values = median_filter(values, size=3, mode="nearest")
    window = max(MIN_SMOOTH_FRAMES, round(len(values) / 10) | 1)
    window = min(window, len(values) if len(values) % 2 else len(values) - 1)
    return savgol_filter(values, window, polyorder=2, mode="interp")


def detect_phases(curve: Sequence[float] | np.ndarray) -> tuple[int, int, np.ndarray]:
    """(ED frame, ES frame, smoothed curve): the largest and the smallest cavity after ``smooth``."""
    smoothed = smooth(curve)
    return int(np.argmax(smoothed)), int(np.argmin(smoothed)), smoothed


def cavity_areas(labels: np.ndarray, cavity: int, spacing: Sequence[float] | None) -> tuple[np.ndarray, str]:
    """Cavity area of every frame of (F, H, W) label maps: mm² with a spacing, else px²."""
    labels = _frames(labels)
    pixels = np.count_nonzero(labels.reshape(len(labels), -1) == cavity, axis=1).astype(float)
    if spacing is None:
        return pixels, "px²"
    return pixels * float(np.prod(spacing)), "mm²"


def single_plane_volume(mask: np.ndarray, spacing: Sequence[float] | None = None, atrium: np.ndarray | None = None,
                        n_discs: int = N_DISCS) -> float:
    """Single-plane method of discs: pi/4 * sum(d_i²) * L / n, in mL with a spacing, else px³."""
    view = view_geometry(mask, spacing, atrium, n_discs)
    volume = np.pi / 4 * float(np.sum(view.diameters**2)) * view.length / n_discs
    return volume / MM3_PER_ML if spacing is not None else volume


def cine_sequence(
    labels: np.ndarray,
    cavity: int,
    spacing: Sequence[float] | None = None,
    *,
    atrium: int | None = None,
    tagged: tuple[int | None, int | None] = (None, None),
    times_ms: Sequence[float] | None = None,
) -> SequenceResult:
    """Curves, ED/ES and EF of one view's cine; ``tagged`` (ED, ES) frames from the DICOM take precedence."""
    labels = _frames(labels)
    area, area_unit = cavity_areas(labels, cavity, spacing)
    notes: list[str] = []
    volume = np.array([_measured(lambda f=frame: single_plane_volume(
        f == cavity, spacing, f == atrium if atrium is not None else None), i, notes) for i, frame in enumerate(labels)])
    return _result(area, area_unit, volume, "mL" if spacing is not None else "px^3", "single-plane discs",
                   tagged, times_ms, notes)


def biplane_sequence(
    labels_2ch: np.ndarray,
    labels_4ch: np.ndarray,
    cavity: int,
    spacing_2ch: Sequence[float] | None = None,
    spacing_4ch: Sequence[float] | None = None,
    *,
    atrium: int | None = None,
    tagged: tuple[int | None, int | None] = (None, None),
    times_ms: Sequence[float] | None = None,
) -> SequenceResult:
    """Biplane volume curve of a 2CH + 4CH pair of cines of the same patient, on the 2CH cine's frames."""
    two, four = _frames(labels_2ch), _frames(labels_4ch)
    matched = np.rint(np.arange(len(two)) * (len(four) - 1) / max(1, len(two) - 1)).astype(int)
    notes = [] if len(two) == len(four) else [
        f"2CH has {len(two)} frames, 4CH {len(four)}: 4CH frames matched by relative position in the cycle"]
    area, area_unit = cavity_areas(two, cavity, spacing_2ch)
    volume = np.array([_measured(lambda a=two[i], b=four[j]: biplane_volume(
        a, b, spacing_2ch, spacing_4ch, cavity_label=cavity, atrium_label=atrium).volume, i, notes)
        for i, j in enumerate(matched)])
    return _result(area, area_unit, volume, "mL" if spacing_2ch is not None else "px^3", "biplane discs",
                   tagged, times_ms, notes)


def _frames(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3 or len(labels) == 0:
        raise ClinicalError(f"a cine needs label maps of shape (frames, rows, cols), got {labels.shape}")
    return labels


def _measured(volume: Callable[[], float], frame: int, notes: list[str]) -> float:
    """``volume()``, or NaN with a note when the frame's cavity cannot be measured."""
    try:
        return float(volume())
    except ClinicalError as exc:
        notes.append(f"frame {frame}: {exc.problem}")
        return float("nan")


def _result(
    area: np.ndarray, area_unit: str, volume: np.ndarray, volume_unit: str, method: str,
    tagged: tuple[int | None, int | None], times_ms: Sequence[float] | None, notes: list[str],
) -> SequenceResult:
    curve = volume if np.isfinite(volume).any() else area
    ed, es, smoothed = detect_phases(curve)
    source = "detected"
    if tagged[0] is not None and tagged[1] is not None:
        ed, es, source = int(tagged[0]), int(tagged[1]), "DICOM"
    elif tagged != (None, None):
        notes.append("the DICOM tags only one of ED and ES: both detected from the curve")
    times = None if times_ms is None else np.asarray(times_ms, dtype=float)
    if times is not None and len(times) != len(area):
        raise ClinicalError(f"{len(times)} frame times for {len(area)} frames")
    result = SequenceResult(area, area_unit, volume, volume_unit, method, smoothed, ed, es, source, times, tuple(notes))
    return result.with_phases(ed, es, source)
