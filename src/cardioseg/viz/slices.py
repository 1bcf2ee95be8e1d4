"""Slices of a volume in the orientation a radiologist expects, whatever the array order.

Arrays are kept in file order (NIfTI (i, j, k)), which shows an axial slice rotated or mirrored.
With an affine, each slice is turned so that anterior (axial) or superior (coronal, sagittal) is
up and the patient's right is on the viewer's left (anterior on the left for sagittal).
Without an affine the plane is shown as stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np

Affine = Sequence[Sequence[float]] | np.ndarray | None

_AXIS = {"R": "RL", "L": "RL", "A": "AP", "P": "AP", "S": "SI", "I": "SI"}
# slice direction -> (direction shown at the top, direction shown on the left)
_VIEW = {"SI": ("A", "R"), "AP": ("S", "R"), "RL": ("S", "A")}


def display_plane(plane: np.ndarray, slice_axis: int, affine: Affine) -> np.ndarray:
    """Turn one slice (the two remaining axes in array order) into its radiological display orientation."""
    if affine is None:
        return plane
    codes = nib.aff2axcodes(np.asarray(affine, dtype=float))
    if None in codes:
        return plane
    top, left = _VIEW[_AXIS[codes[slice_axis]]]
    first, second = (codes[a] for a in range(3) if a != slice_axis)
    if top in _AXIS[second]:
        plane, first, second = plane.T, second, first
    elif top not in _AXIS[first]:
        return plane
    # an axis code names where the index grows towards, so that end must be flipped to the top / left
    if first == top:
        plane = plane[::-1]
    if second == left:
        plane = plane[:, ::-1]
    return plane


def volume_slice(volume: np.ndarray, index: int, slice_axis: int, affine: Affine) -> np.ndarray:
    """Slice ``index`` along ``slice_axis``, in display orientation (a view: np.take would copy)."""
    return display_plane(np.moveaxis(volume, slice_axis, 0)[index], slice_axis, affine)


def display_spacing(spacing: Sequence[float] | None, slice_axis: int, affine: Affine) -> tuple[float, float] | None:
    """(row_mm, col_mm) of a displayed slice: the in-plane spacing, swapped when the display transposes."""
    if not spacing:
        return None
    rows, cols = (float(s) for axis, s in enumerate(spacing) if axis != slice_axis)
    transposed = display_plane(np.zeros((1, 2)), slice_axis, affine).shape == (2, 1)
    return (cols, rows) if transposed else (rows, cols)


def foreground_range(*masks: np.ndarray, slice_axis: int, margin: int = 3) -> tuple[int, int]:
    """First and last slice (inclusive, widened by ``margin``) holding any foreground; all slices if none."""
    depth = masks[0].shape[slice_axis]
    occupied = np.zeros(depth, dtype=bool)
    for mask in masks:
        occupied |= np.moveaxis(np.asarray(mask) > 0, slice_axis, 0).reshape(depth, -1).any(axis=1)
    if not occupied.any():
        return 0, depth - 1
    hits = np.flatnonzero(occupied)
    return max(0, int(hits[0]) - margin), min(depth - 1, int(hits[-1]) + margin)
