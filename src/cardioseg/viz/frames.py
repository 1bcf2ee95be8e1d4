"""Video frames: a contour overlay at display size with a caption banner.

Frames are drawn at a fixed height (square pixels when the spacing is known, so an echo sector
is not squashed), and the contours are drawn after enlarging, so they stay one pixel thin.
Grey levels are scaled by the caller once per volume or sequence: scaling each frame on its own
would make the video flicker.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from cardioseg.viz.overlays import PRED_COLOUR, REF_COLOUR, classes_in, draw_contours

DISPLAY_HEIGHT = 384
BANNER = 46
MIN_WIDTH = 256
FONT = cv2.FONT_HERSHEY_SIMPLEX
SAMPLE = 1 << 18  # grey levels estimated from about this many pixels


def grey_levels(image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """Display window (low, high) of an image, volume or sequence, from robust percentiles."""
    values = np.asarray(image).ravel()
    values = values[:: max(1, values.size // SAMPLE)]  # a regular sample: a volume's window, fast
    low, high = np.percentile(values.astype(np.float32), percentiles)
    return float(low), float(max(high, low + 1e-6))


def overlay_frame(
    image: np.ndarray, pred: np.ndarray | None, ref: np.ndarray | None, window: tuple[float, float], caption: str,
    spacing: Sequence[float] | None = None, height: int = DISPLAY_HEIGHT,
) -> np.ndarray:
    """RGB frame: the image in ``window``, reference (green) and predicted (amber) contours, a caption."""
    rows, cols = image.shape
    row_mm, col_mm = (spacing[0], spacing[1]) if spacing else (1.0, 1.0)
    size = (max(1, round(cols * col_mm / row_mm * height / rows)), height)
    grey = cv2.resize(np.asarray(image, np.float32), size, interpolation=cv2.INTER_LINEAR)
    grey = np.clip((grey - window[0]) / (window[1] - window[0]), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
    for labels, colour in ((ref, REF_COLOUR), (pred, PRED_COLOUR)):
        if labels is None:
            continue
        big = cv2.resize(np.asarray(labels, np.uint8), size, interpolation=cv2.INTER_NEAREST)
        for class_id in classes_in(big):
            rgb = draw_contours(rgb, big == class_id, colour, thickness=1)
    return with_banner(rgb, caption, legend=pred is not None or ref is not None)


def with_banner(rgb: np.ndarray, caption: str, legend: bool = True) -> np.ndarray:
    """The frame under a black banner: the caption, then the colour legend of the contours."""
    if rgb.shape[1] < MIN_WIDTH:  # room for the caption and legend on a narrow image
        rgb = pad_to([rgb], 1, MIN_WIDTH)[0]
    banner = np.zeros((BANNER, rgb.shape[1], 3), np.uint8)
    cv2.putText(banner, caption, (6, 18), FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    if legend:
        cv2.putText(banner, "reference", (6, 38), FONT, 0.45, REF_COLOUR, 1, cv2.LINE_AA)
        cv2.putText(banner, "predicted", (92, 38), FONT, 0.45, PRED_COLOUR, 1, cv2.LINE_AA)
    else:
        cv2.putText(banner, "no segmentation on this frame", (6, 38), FONT, 0.45, (170, 170, 170), 1, cv2.LINE_AA)
    return np.vstack([banner, rgb])


def pad_to(frames: list[np.ndarray], multiple: int = 16, min_width: int = 0) -> list[np.ndarray]:
    """Centre every frame on one black canvas, its sides a multiple of ``multiple`` (video codecs need it)."""
    height = -(-max(f.shape[0] for f in frames) // multiple) * multiple
    width = -(-max(min_width, *(f.shape[1] for f in frames)) // multiple) * multiple
    out = []
    for frame in frames:
        canvas = np.zeros((height, width, 3), np.uint8)
        top, left = (height - frame.shape[0]) // 2, (width - frame.shape[1]) // 2
        canvas[top : top + frame.shape[0], left : left + frame.shape[1]] = frame
        out.append(canvas)
    return out
