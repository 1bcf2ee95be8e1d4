"""Annotation shapes (polygons, rectangles, circles, COCO RLE masks) rasterised to one label map.

LabelMe, COCO and CVAT exports describe masks as shapes; their readers turn each shape into a
``Shape`` and ``rasterise`` paints them, with OpenCV, onto a label map of the image's size.

Conventions, shared by the three layouts:
- a point (x, y) is the centre of the pixel at column x, row y; vertices are rounded to the
  nearest pixel and the pixels on the outline are inside the shape (as ``cv2.fillPoly`` draws),
  so an outline traced by ``cv2.findContours`` paints back exactly the region it came from;
- shapes are painted in order and a later shape wins where shapes overlap;
- parts of a shape outside the image are clipped away (the polygon is cut to the image, so a
  coordinate of 1e12 neither overflows nor distorts the part that is inside).
Non-finite coordinates, a polygon of fewer than 3 points or a run-length mask of the wrong size
is a ``DataError`` naming the annotation file and which shape it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from cardioseg.errors import DataError

ShapeKind = Literal["polygon", "rectangle", "circle", "mask"]
_POINTS_NEEDED = {"polygon": 3, "rectangle": 2, "circle": 2}
_CIRCLE_VERTICES = (16, 1024)  # fewest / most vertices of the polygon a circle is drawn as


@dataclass(frozen=True)
class Shape:
    """One annotated region: its label name and geometry, and where it is in its file (for messages)."""

    label: str
    kind: ShapeKind
    where: str
    points: np.ndarray | None = None  # (N, 2) x, y: vertices, two rectangle corners, or circle centre + rim point
    mask: np.ndarray | None = None  # (H, W) bool, for run-length encoded masks


def make_shape(label: Any, kind: str, points: Any, path: Path, where: str) -> Shape:
    """A validated geometric shape: a known kind, a label name, enough finite [x, y] points."""
    if kind not in _POINTS_NEEDED:
        raise DataError(f"{where}: unknown shape type {kind!r} (expected one of {', '.join(_POINTS_NEEDED)})", path)
    if not isinstance(label, str) or not label.strip():
        raise DataError(f"{where}: shape has no label name", path)
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: points are not a list of [x, y] number pairs", path) from None
    if array.ndim != 2 or array.shape[1] != 2:
        raise DataError(f"{where}: points are not a list of [x, y] number pairs", path)
    if not np.isfinite(array).all():
        raise DataError(f"{where}: points hold NaN or infinite coordinates", path)
    needed = _POINTS_NEEDED[kind]
    if kind == "polygon" and len(array) < needed:
        raise DataError(f"{where}: polygon has {len(array)} point(s), needs at least 3", path)
    if kind != "polygon" and len(array) != needed:
        raise DataError(f"{where}: {kind} needs exactly {needed} points, got {len(array)}", path)
    return Shape(label, kind, where, points=array)  # type: ignore[arg-type]


def decode_rle(counts: Any, size: Any, path: Path, where: str) -> np.ndarray:
    """A COCO run-length mask as an (H, W) bool array; ``counts`` is a list of runs or the compressed string.

    Runs alternate background / foreground, starting with background, in column-major order.
    """
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise DataError(f"{where}: run-length 'size' must be [height, width], got {size!r}", path)
    if isinstance(counts, str):
        runs = _runs_from_string(counts, path, where)
    elif isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        runs = counts
    else:
        raise DataError(f"{where}: run-length 'counts' must be a list of integers or a string", path)
    height, width = size
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise DataError(f"{where}: run lengths add up to {sum(runs)} pixels, not {height}x{width}", path)
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape((height, width), order="F")


def rasterise(shapes: list[Shape], shape: tuple[int, int], class_ids: dict[str, int], path: Path) -> np.ndarray:
    """A uint8 label map of ``shape`` (H, W): each shape painted with its label's class id, later ones on top."""
    height, width = shape
    label = np.zeros((height, width), np.uint8)
    for item in shapes:
        value = class_ids[item.label]
        if item.mask is not None:
            if item.mask.shape != label.shape:
                raise DataError(f"{item.where}: mask of size {item.mask.shape} on an image of size {label.shape}", path)
            label[item.mask] = value
            continue
        outline = _clip_to_image(_outline(item), width, height)
        if len(outline):
            cv2.fillPoly(label, [np.rint(outline).astype(np.int32)], int(value))
    return label


def _outline(item: Shape) -> np.ndarray:
    """The polygon a shape covers: itself, the rectangle's four corners, or a circle's many-sided polygon."""
    points = item.points
    assert points is not None  # every non-mask shape is built with points by make_shape
    if item.kind == "rectangle":
        (x0, y0), (x1, y1) = points
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if item.kind == "circle":
        centre, rim = points
        radius = float(np.hypot(*(rim - centre)))
        count = int(np.clip(math.ceil(2 * math.pi * radius), *_CIRCLE_VERTICES))
        angles = np.linspace(0, 2 * math.pi, count, endpoint=False)
        return centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return points


def _clip_to_image(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """The polygon cut to the box one pixel around the image (Sutherland-Hodgman), so coordinates stay small."""
    if points.min(initial=0) >= -1 and (points[:, 0] <= width).all() and (points[:, 1] <= height).all():
        return points
    for axis, limit in ((0, width), (1, height)):
        points = _clip_half_plane(points, axis, -1.0, keep_above=True)
        points = _clip_half_plane(points, axis, float(limit), keep_above=False)
    return points


def _clip_half_plane(points: np.ndarray, axis: int, bound: float, *, keep_above: bool) -> np.ndarray:
    kept: list[np.ndarray] = []
    for n, current in enumerate(points):
        previous = points[n - 1]
        current_in = current[axis] >= bound if keep_above else current[axis] <= bound
        previous_in = previous[axis] >= bound if keep_above else previous[axis] <= bound
        if current_in != previous_in:
            t = (bound - previous[axis]) / (current[axis] - previous[axis])
            kept.append(previous + t * (current - previous))
        if current_in:
            kept.append(current)
    return np.array(kept, dtype=np.float64).reshape(-1, 2)


def _runs_from_string(counts: str, path: Path, where: str) -> list[int]:
    """pycocotools' compressed counts: 5 bits a character (offset 48), runs after the second stored as deltas."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise DataError(f"{where}: compressed run-length 'counts' ends in the middle of a number", path)
            char = ord(counts[position]) - 48
            if not 0 <= char < 64:
                raise DataError(f"{where}: compressed run-length 'counts' holds an invalid character", path)
            value |= (char & 0x1F) << shift
            more = bool(char & 0x20)
            position += 1
            shift += 5
            if not more and char & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs
