"""Video frames and report pictures: a contour overlay at display size under a caption and legend banner.

Frames are drawn at a fixed height (square pixels when the spacing is known, so an echo sector
is not squashed), and the contours are drawn after enlarging, so they keep one width whatever
the image's size. Grey levels are scaled by the caller once per volume or sequence: scaling each
frame on its own would make the video flicker. The legend names every class of the plan (not only
those on the frame), so all frames of a video have the same banner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from cardioseg.viz.overlays import classes_in, draw_labels
from cardioseg.viz.palette import GAP_COLOUR, PREDICTION, REFERENCE, class_colour, legend_names

DISPLAY_HEIGHT = 384
CONTOUR_WIDTH = 2  # at display size
MIN_WIDTH = 256
FONT = cv2.FONT_HERSHEY_SIMPLEX
CAPTION_SCALE, LEGEND_SCALE = 0.5, 0.45
ROW = 20  # banner row height in pixels
SAMPLE_LINE = 22  # length of the line drawn before a legend entry
SAMPLE = 1 << 18  # grey levels estimated from about this many pixels
WHITE, GREY = (255, 255, 255), (170, 170, 170)


def grey_levels(image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """Display window (low, high) of an image, volume or sequence, from robust percentiles."""
    values = np.asarray(image).ravel()
    values = values[:: max(1, values.size // SAMPLE)]  # a regular sample: a volume's window, fast
    low, high = np.percentile(values.astype(np.float32), percentiles)
    return float(low), float(max(high, low + 1e-6))


def contour_image(
    image: np.ndarray, pred: np.ndarray | None, ref: np.ndarray | None, window: tuple[float, float],
    spacing: Sequence[float] | None = None, height: int = DISPLAY_HEIGHT,
) -> np.ndarray:
    """RGB picture at display size: the image in ``window``, reference (solid) and predicted (dashed) contours."""
    rows, cols = image.shape
    row_mm, col_mm = (spacing[0], spacing[1]) if spacing else (1.0, 1.0)
    size = (max(1, round(cols * col_mm / row_mm * height / rows)), height)
    grey = cv2.resize(np.asarray(image, np.float32), size, interpolation=cv2.INTER_LINEAR)
    grey = np.clip((grey - window[0]) / (window[1] - window[0]), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
    big = [None if labels is None else cv2.resize(np.asarray(labels, np.uint8), size, interpolation=cv2.INTER_NEAREST)
           for labels in (pred, ref)]
    return draw_labels(rgb, big[0], big[1], CONTOUR_WIDTH)


def overlay_frame(
    image: np.ndarray, pred: np.ndarray | None, ref: np.ndarray | None, window: tuple[float, float], caption: str,
    spacing: Sequence[float] | None = None, height: int = DISPLAY_HEIGHT, class_names: Mapping[int, str] | None = None,
) -> np.ndarray:
    """``contour_image`` under a banner: the caption, each class's colour and name, and the line styles."""
    rgb = contour_image(image, pred, ref, window, spacing, height)
    present = [c for labels in (pred, ref) if labels is not None for c in classes_in(labels)]
    return with_banner(rgb, caption, legend_names(class_names, present), segmented=pred is not None or ref is not None)


def with_banner(rgb: np.ndarray, caption: str, class_names: Mapping[int, str], segmented: bool = True) -> np.ndarray:
    """The picture under a black banner: the caption, the class colours, then which line style is which."""
    if rgb.shape[1] < MIN_WIDTH:  # room for the caption and legend on a narrow image
        rgb = pad_to([rgb], 1, MIN_WIDTH)[0]
    width = rgb.shape[1]
    rows = _class_rows(class_names, width)
    banner = np.zeros(((2 + len(rows)) * ROW + 6, width, 3), np.uint8)
    cv2.putText(banner, caption, (6, ROW - 4), FONT, CAPTION_SCALE, WHITE, 1, cv2.LINE_AA)
    for row, entries in enumerate(rows, start=1):
        for x, class_id, name in entries:
            _entry(banner, x, row, name, class_colour(class_id), dashed=False)
    key_row = len(rows) + 1
    if segmented:
        x = _entry(banner, 6, key_row, REFERENCE, WHITE, dashed=False)
        _entry(banner, x + 14, key_row, PREDICTION, WHITE, dashed=True)
    else:
        cv2.putText(banner, "no segmentation on this frame", (6, (key_row + 1) * ROW - 4), FONT, LEGEND_SCALE, GREY, 1,
                    cv2.LINE_AA)
    return np.vstack([banner, rgb])


def _class_rows(class_names: Mapping[int, str], width: int) -> list[list[tuple[int, int, str]]]:
    """Legend entries (x, class id, name) flowed into rows that fit ``width``."""
    rows: list[list[tuple[int, int, str]]] = []
    x = width
    for class_id, name in class_names.items():
        entry = SAMPLE_LINE + 6 + cv2.getTextSize(name, FONT, LEGEND_SCALE, 1)[0][0]
        if x + entry > width - 6 and (not rows or rows[-1]):
            rows.append([])
            x = 6
        rows[-1].append((x, class_id, name))
        x += entry + 14
    return rows


def _entry(banner: np.ndarray, x: int, row: int, text: str, colour: tuple[int, int, int], dashed: bool) -> int:
    """A short sample line then ``text``, in row ``row``; returns the x after the text."""
    y = (row + 1) * ROW - 8
    cv2.line(banner, (x, y), (x + SAMPLE_LINE, y), GAP_COLOUR if dashed else colour, 2)
    if dashed:
        for start in range(x, x + SAMPLE_LINE, 10):
            cv2.line(banner, (start, y), (min(start + 6, x + SAMPLE_LINE), y), colour, 2)
    cv2.putText(banner, text, (x + SAMPLE_LINE + 6, y + 4), FONT, LEGEND_SCALE, colour, 1, cv2.LINE_AA)
    return x + SAMPLE_LINE + 6 + cv2.getTextSize(text, FONT, LEGEND_SCALE, 1)[0][0]


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
