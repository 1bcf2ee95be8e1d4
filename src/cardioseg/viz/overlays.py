"""Contour overlays: predicted contour in one colour, reference in another, on the image.

Label value ``IGNORE_LABEL`` (class unknown) is not a class: it gets no contour and no colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from cardioseg.plan import IGNORE_LABEL

PRED_COLOUR = (255, 200, 0)   # amber
REF_COLOUR = (0, 220, 90)     # green
CLASS_COLOURS = [(0, 220, 90), (80, 160, 255), (255, 90, 200), (255, 255, 0)]


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Any-range greyscale image -> uint8 RGB for drawing."""
    image = np.asarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    grey = np.zeros(image.shape, np.uint8) if high <= low else ((image - low) / (high - low) * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def classes_in(labels: np.ndarray) -> list[int]:
    """The class ids drawn in a label map: neither background nor unknown."""
    return [int(c) for c in np.unique(labels) if c and c != IGNORE_LABEL]


def draw_contours(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], thickness: int = 1) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return cv2.drawContours(np.ascontiguousarray(rgb), contours, -1, colour, thickness)


def overlay(image: np.ndarray, pred: np.ndarray | None, ref: np.ndarray | None, thickness: int = 1) -> np.ndarray:
    """RGB image with the reference contour (green) and the predicted contour (amber) of every class."""
    rgb = to_rgb(image)
    for labels, colour in ((ref, REF_COLOUR), (pred, PRED_COLOUR)):
        if labels is None:
            continue
        for class_id in classes_in(labels):
            rgb = draw_contours(rgb, labels == class_id, colour, thickness)
    return rgb


def label_overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """RGB image with each class filled in its own translucent colour (for dataset inspection)."""
    rgb = to_rgb(image).astype(np.float32)
    for class_id in classes_in(labels):
        colour = np.array(CLASS_COLOURS[(class_id - 1) % len(CLASS_COLOURS)], np.float32)
        region = labels == class_id
        rgb[region] = (1 - alpha) * rgb[region] + alpha * colour
    return rgb.astype(np.uint8)
