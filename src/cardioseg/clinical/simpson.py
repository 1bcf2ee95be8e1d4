"""Left-ventricular volume by the biplane method of discs (modified Simpson's rule).

Input: the LV-cavity masks of the apical two- and four-chamber views (2D, apex up: apex at
the top rows, mitral annulus at the bottom), with an optional pixel spacing (row_mm, col_mm).
For each view:

1. The cavity is its largest 4-connected component with holes filled (the region enclosed by
   the endocardial border); a note records when other components were dropped.
2. The border is the sub-pixel contour at the pixel edges (``skimage.measure.find_contours``
   at level 0.5), and every length below is measured in mm (or pixels without spacing).
3. The mitral annulus is two points on that border:

   * with an atrium mask (label maps such as CAMUS: LV = 1, LA = 3): the two extreme points,
     across the long axis, of the stretch of cavity border that touches the atrium
     (``annulus_method="atrium"``);
   * otherwise, or when the atrium does not touch the cavity (noted), a geometric definition:
     the two basal corners of the cavity, i.e. the border points extreme in the directions
     45° either side of "towards the base" in the frame of the cavity's principal axis
     (``annulus_method="geometric"``). For a flat-based cavity this is the base's corners;
     for a cavity with a rounded base (e.g. a full ellipse) it cuts a thin cap off.

4. The apex is the border point farthest from the annulus midpoint; the long axis runs from
   the midpoint to the apex, length L_view.
5. ``n_discs`` (20) discs of equal height split the long axis; each disc's diameter is the
   length of cavity crossed by the line perpendicular to the long axis at the disc's mid-level.

V = pi/4 * sum(a_i * b_i) * L / n_discs, with a_i, b_i the 2CH and 4CH diameters and L the
longer of the two long axes (ASE/EACVI). A note flags long axes differing by more than 10%
(a sign of foreshortening). Without spacing the volume is in pixel units, ``unit="px^3"``;
with spacing in mL. An empty or missing view raises ``ClinicalError`` rather than giving a
number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage import measure

from cardioseg.clinical.volumes import MM3_PER_ML, ClinicalError

N_DISCS = 20
LENGTH_MISMATCH = 0.10
# Samples per pixel along a disc's perpendicular: the diameter is accurate to ~1/8 pixel.
SAMPLES_PER_PIXEL = 8
# Border points this close (in pixels) to an extreme count as tied for it.
TIE_PIXELS = 0.5
# A border point touches the atrium when its (interpolated) distance to the nearest atrium pixel
# centre is at most this many pixels: 0.5 on the LV/LA interface itself.
ATRIUM_CONTACT = 1.0

PixelSpacing = Sequence[float] | None
Point = tuple[float, float]


@dataclass(frozen=True)
class ViewGeometry:
    """One view's measurements; points are (row, col) in pixels, lengths in mm or px."""

    apex: Point
    annulus: tuple[Point, Point]
    length: float
    diameters: np.ndarray
    annulus_method: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BiplaneResult:
    """Biplane volume (``unit``: "mL" or "px^3") with the geometry it came from."""

    volume: float
    unit: str
    length: float
    view_2ch: ViewGeometry
    view_4ch: ViewGeometry
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PatientEF:
    """End-diastolic and end-systolic volumes (in ``unit``) and ejection fraction in %."""

    edv: float
    esv: float
    ef: float
    unit: str
    ed: BiplaneResult
    es: BiplaneResult
    notes: tuple[str, ...] = ()


def _scale(spacing: PixelSpacing, name: str) -> np.ndarray:
    if spacing is None:
        return np.ones(2)
    scale = np.asarray(spacing, dtype=float)
    if scale.shape != (2,) or not np.all(np.isfinite(scale) & (scale > 0)):
        raise ClinicalError(f"{name} spacing {tuple(spacing)} must be two positive sizes (row_mm, col_mm)")
    return scale


def _cavity(mask: np.ndarray | None, name: str) -> tuple[np.ndarray, list[str]]:
    """The largest 4-connected component, holes filled; notes say what was dropped."""
    if mask is None:
        raise ClinicalError(f"{name} view is missing")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ClinicalError(f"{name} cavity mask must be 2D, got shape {mask.shape}")
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ClinicalError(f"{name} mask is not binary: pass cavity_label to read a label map")
    labels, count = ndimage.label(mask)
    if count == 0:
        raise ClinicalError(f"{name} cavity mask is empty")
    sizes = np.bincount(labels.ravel())[1:]
    if sizes.max() < 2:
        raise ClinicalError(f"{name} cavity is a single pixel: nothing to measure")
    notes = []
    if count > 1:
        notes.append(f"{name}: dropped {count - 1} stray cavity components ({sizes.sum() - sizes.max()} px)")
    return ndimage.binary_fill_holes(labels == np.argmax(sizes) + 1), notes


def _border(cavity: np.ndarray) -> np.ndarray:
    """The cavity's outer contour at the pixel edges, (row, col) in pixels, each point once."""
    contours = measure.find_contours(np.pad(cavity, 1).astype(float), 0.5)
    return max(contours, key=len)[:-1] - 1.0


def _principal_frame(cavity: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (mm space) along the cavity's long axis towards the base (down) and across it."""
    points = np.argwhere(cavity) * scale
    _, vectors = np.linalg.eigh(np.cov(points, rowvar=False))
    down = vectors[:, -1] if vectors[0, -1] >= 0 else -vectors[:, -1]
    return down, np.array([-down[1], down[0]])


def _atrium_annulus(
    border_mm: np.ndarray, border_px: np.ndarray, atrium: np.ndarray, across: np.ndarray, tolerance: float
) -> np.ndarray | None:
    """Extreme points (across the long axis) of the border stretch touching the atrium."""
    if not atrium.any():
        return None
    distance = ndimage.distance_transform_edt(~atrium)
    near = ndimage.map_coordinates(distance, border_px.T, order=1, mode="nearest") <= ATRIUM_CONTACT
    if np.count_nonzero(near) < 2:
        return None
    touching = border_mm[near]
    position = touching @ across
    return np.stack([_extreme(touching, -position, tolerance), _extreme(touching, position, tolerance)])


def _extreme(points: np.ndarray, scores: np.ndarray, tolerance: float) -> np.ndarray:
    """Mean of the points scoring within ``tolerance`` of the best: on a pixel staircase many
    border points tie for an extreme, and taking the first would tilt the long axis."""
    return points[scores >= scores.max() - tolerance].mean(axis=0)


def _geometric_annulus(border_mm: np.ndarray, down: np.ndarray, across: np.ndarray, tolerance: float) -> np.ndarray:
    """The two basal corners: border points extreme 45° either side of the base direction."""
    return np.stack(
        [_extreme(border_mm, border_mm @ (down + side) / np.sqrt(2), tolerance) for side in (-across, across)]
    )


def _diameters(cavity: np.ndarray, scale: np.ndarray, base: np.ndarray, axis: np.ndarray, n_discs: int) -> np.ndarray:
    """Cavity length crossed by the perpendicular at each disc's mid-level (mm or px)."""
    length = float(np.linalg.norm(axis))
    unit = axis / length
    across = np.array([-unit[1], unit[0]])
    step = float(scale.min()) / SAMPLES_PER_PIXEL
    reach = float(np.hypot(*(np.array(cavity.shape) * scale)))
    offsets = np.arange(-reach, reach, step)
    levels = (np.arange(n_discs) + 0.5) * length / n_discs
    samples = base + levels[:, None, None] * unit + offsets[None, :, None] * across
    pixels = np.rint(samples / scale).astype(int)
    inside = np.all((pixels >= 0) & (pixels < cavity.shape), axis=-1)
    hits = np.zeros(inside.shape, dtype=bool)
    hits[inside] = cavity[pixels[inside][:, 0], pixels[inside][:, 1]]
    return hits.sum(axis=1) * step


def view_geometry(
    mask: np.ndarray | None,
    spacing: PixelSpacing = None,
    atrium: np.ndarray | None = None,
    n_discs: int = N_DISCS,
    name: str = "view",
) -> ViewGeometry:
    """Annulus, apex, long axis and disc diameters of one apical view (module docstring)."""
    scale = _scale(spacing, name)
    cavity, notes = _cavity(mask, name)
    border_px = _border(cavity)
    border_mm = border_px * scale
    down, across = _principal_frame(cavity, scale)
    tolerance = TIE_PIXELS * float(scale.min())
    annulus, method = None, "geometric"
    if atrium is not None:
        atrium = np.asarray(atrium, dtype=bool)
        if atrium.shape != cavity.shape:
            raise ClinicalError(f"{name}: atrium mask shape {atrium.shape} differs from the cavity's {cavity.shape}")
        annulus = _atrium_annulus(border_mm, border_px, atrium, across, tolerance)
        if annulus is None:
            notes.append(f"{name}: atrium does not touch the cavity; geometric annulus used")
        else:
            method = "atrium"
    if annulus is None:
        annulus = _geometric_annulus(border_mm, down, across, tolerance)
    base = annulus.mean(axis=0)
    apex = _extreme(border_mm, np.linalg.norm(border_mm - base, axis=1), tolerance)
    length = float(np.linalg.norm(apex - base))
    if length == 0:
        raise ClinicalError(f"{name}: degenerate cavity, the long axis has zero length")
    return ViewGeometry(
        apex=_point(apex / scale),
        annulus=(_point(annulus[0] / scale), _point(annulus[1] / scale)),
        length=length,
        diameters=_diameters(cavity, scale, base, apex - base, n_discs),
        annulus_method=method,
        notes=tuple(notes),
    )


def _point(xy: np.ndarray) -> Point:
    return float(xy[0]), float(xy[1])


def _split(
    labels: np.ndarray | None, cavity_label: int | None, atrium_label: int | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(cavity, atrium) from a label map, or the mask itself when no cavity label is given."""
    if cavity_label is None:
        if atrium_label is not None:
            raise ClinicalError("atrium_label needs label maps: pass cavity_label as well")
        return labels, None
    if labels is None:
        return None, None
    labels = np.asarray(labels)
    return labels == cavity_label, (labels == atrium_label if atrium_label is not None else None)


def biplane_volume(
    mask_2ch: np.ndarray | None,
    mask_4ch: np.ndarray | None,
    spacing_2ch: PixelSpacing = None,
    spacing_4ch: PixelSpacing = None,
    *,
    cavity_label: int | None = None,
    atrium_label: int | None = None,
    n_discs: int = N_DISCS,
) -> BiplaneResult:
    """LV volume by the biplane method of discs from apical 2CH and 4CH views.

    The inputs are binary cavity masks, or label maps when ``cavity_label`` is given (and then
    ``atrium_label`` lets the annulus be found at the LV/LA border). Both views need a spacing
    or neither: mixing mm and pixels would give a meaningless number.
    """
    if (spacing_2ch is None) != (spacing_4ch is None):
        raise ClinicalError("give a pixel spacing for both views or for neither")
    views = []
    for labels, spacing, name in ((mask_2ch, spacing_2ch, "2CH"), (mask_4ch, spacing_4ch, "4CH")):
        cavity, atrium = _split(labels, cavity_label, atrium_label)
        views.append(view_geometry(cavity, spacing, atrium, n_discs, name))
    two, four = views
    length = max(two.length, four.length)
    volume = np.pi / 4 * float(np.sum(two.diameters * four.diameters)) * length / n_discs
    notes = [*two.notes, *four.notes]
    if abs(two.length - four.length) > LENGTH_MISMATCH * length:
        notes.append(
            f"long axes differ by more than {LENGTH_MISMATCH:.0%} "
            f"(2CH {two.length:.1f}, 4CH {four.length:.1f}): possible foreshortening"
        )
    if spacing_2ch is None:
        return BiplaneResult(volume, "px^3", length, two, four, tuple(notes))
    return BiplaneResult(volume / MM3_PER_ML, "mL", length, two, four, tuple(notes))


def ejection_fraction(edv: float, esv: float) -> float:
    """EF in % = 100 (EDV - ESV) / EDV; negative when ESV > EDV, which flags bad masks."""
    if not (np.isfinite(edv) and np.isfinite(esv)) or edv <= 0 or esv < 0:
        raise ClinicalError(f"ejection fraction needs EDV > 0 and ESV >= 0, got EDV={edv}, ESV={esv}")
    return 100.0 * (edv - esv) / edv


def patient_ef(
    ed_2ch: np.ndarray | None,
    ed_4ch: np.ndarray | None,
    es_2ch: np.ndarray | None,
    es_4ch: np.ndarray | None,
    spacing_2ch: PixelSpacing = None,
    spacing_4ch: PixelSpacing = None,
    *,
    cavity_label: int | None = None,
    atrium_label: int | None = None,
    n_discs: int = N_DISCS,
) -> PatientEF:
    """EDV, ESV and EF of one patient from the four apical masks (or label maps)."""
    ed, es = (
        biplane_volume(
            two, four, spacing_2ch, spacing_4ch, cavity_label=cavity_label, atrium_label=atrium_label, n_discs=n_discs
        )
        for two, four in ((ed_2ch, ed_4ch), (es_2ch, es_4ch))
    )
    notes = [f"ED {note}" for note in ed.notes] + [f"ES {note}" for note in es.notes]
    if es.volume > ed.volume:
        notes.append("ESV exceeds EDV: EF is negative, check the masks or the phase labels")
    return PatientEF(ed.volume, es.volume, ejection_fraction(ed.volume, es.volume), ed.unit, ed, es, tuple(notes))
