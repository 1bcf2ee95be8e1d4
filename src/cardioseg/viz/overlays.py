"""Contour overlays on the image: every class in its own colour, the reference solid, the prediction dashed.

Colours and styles: ``cardioseg.viz.palette``. Label value ``IGNORE_LABEL`` (class unknown) is
not a class: it gets no contour and no colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from cardioseg.plan import IGNORE_LABEL
from cardioseg.viz.palette import GAP_COLOUR, RGB, class_colour

DASH, GAP = 6, 4  # contour points (about pixels) drawn, then skipped, along a predicted contour


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Any-range greyscale image -> uint8 RGB for drawing."""
    image = np.asarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    grey = np.zeros(image.shape, np.uint8) if high <= low else ((image - low) / (high - low) * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def classes_in(labels: np.ndarray) -> list[int]:
    """The class ids drawn in a label map: neither background nor unknown."""
    return [int(c) for c in np.unique(labels) if c and c != IGNORE_LABEL]


def draw_contours(rgb: np.ndarray, mask: np.ndarray, colour: RGB, thickness: int = 1, dashed: bool = False) -> np.ndarray:
    """The outer contours of ``mask`` on ``rgb``: a solid line, or coloured dashes over a dark line."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    rgb = np.ascontiguousarray(rgb)
    if not dashed:
        return cv2.drawContours(rgb, contours, -1, colour, thickness)
    cv2.drawContours(rgb, contours, -1, GAP_COLOUR, thickness)
    for contour in contours:
        closed = np.vstack([contour, contour[:1]])
        dashes = [closed[start : start + DASH + 1] for start in range(0, len(contour), DASH + GAP)]
        cv2.polylines(rgb, dashes, False, colour, thickness)
    return rgb


def draw_labels(rgb: np.ndarray, pred: np.ndarray | None, ref: np.ndarray | None, thickness: int = 1) -> np.ndarray:
    """Every class of the reference (solid) and then of the prediction (dashed, on top) in its colour."""
    for labels, dashed in ((ref, False), (pred, True)):
        if labels is None:
            continue
        for class_id in classes_in(labels):
            rgb = draw_contours(rgb, labels == class_id, class_colour(class_id), thickness, dashed)
    return rgb


def overlay(image: np.ndarray, pred: np.ndarray | None, ref: np.ndarray | None, thickness: int = 1) -> np.ndarray:
    """RGB image, pixel for pixel, with the reference (solid) and predicted (dashed) contours of every class."""
    return draw_labels(to_rgb(image), pred, ref, thickness)


def label_overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """RGB image with each class filled in its own translucent colour (for dataset inspection)."""
    rgb = to_rgb(image).astype(np.float32)
    for class_id in classes_in(labels):
        region = labels == class_id
        rgb[region] = (1 - alpha) * rgb[region] + alpha * np.array(class_colour(class_id), np.float32)
    return rgb.astype(np.uint8)
