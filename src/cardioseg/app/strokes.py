"""A brush or eraser stroke from the browser, turned into the pixels it covers.

Points are (x, y) = (column, row) in the pixels of the displayed slice; the stroke covers every
pixel within ``radius`` of the polyline through them (discs at the points, thick lines between),
which is what the page draws while the pointer moves. Coordinates must be finite: JSON as Python
parses it takes ``NaN`` and ``Infinity``, which would turn into arbitrary integer pixels.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

MAX_RADIUS = 64
MAX_POINTS = 10_000


class Stroke(BaseModel):
    """One pointer-down-to-pointer-up gesture."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["brush", "eraser"]
    radius: int = Field(ge=0, le=MAX_RADIUS, description="pixels; 0 paints single pixels")
    label: int = Field(1, ge=1, le=255, description="class painted by the brush")
    points: list[tuple[FiniteFloat, FiniteFloat]] = Field(min_length=1, max_length=MAX_POINTS)


def rasterize(stroke: Stroke, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (rows, cols) mask of the pixels the stroke covers."""
    canvas = np.zeros(shape, np.uint8)
    reach = stroke.radius + 1
    limit = np.array([shape[1] + reach, shape[0] + reach])
    points = np.clip(np.rint(np.asarray(stroke.points)), -reach, limit).astype(np.int32)
    for x, y in points:
        cv2.circle(canvas, (int(x), int(y)), stroke.radius, 1, thickness=-1)
    for (x0, y0), (x1, y1) in pairwise(points):
        cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), 1, thickness=2 * stroke.radius + 1)
    return canvas.astype(bool)
