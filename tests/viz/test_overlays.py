"""Overlays draw classes only: the unknown label (255, e.g. a Sunnybrook slice without myocardium) is not one."""

from __future__ import annotations

import numpy as np

from cardioseg.plan import IGNORE_LABEL
from cardioseg.viz.overlays import CLASS_COLOURS, classes_in, label_overlay, overlay, to_rgb


def test_unknown_pixels_get_no_colour_and_no_contour() -> None:
    image = np.linspace(0, 1, 64).reshape(8, 8)
    labels = np.full((8, 8), IGNORE_LABEL, np.uint8)
    labels[:, :2] = 0
    labels[2:5, 2:5] = 1
    assert classes_in(labels) == [1]
    filled = label_overlay(image, labels, alpha=0.5)
    plain = to_rgb(image)
    outside = labels != 1
    assert np.array_equal(filled[outside], plain[outside])  # background and unknown stay grey
    expected = (0.5 * plain[3, 3].astype(np.float32) + 0.5 * np.array(CLASS_COLOURS[0], np.float32)).astype(np.uint8)
    assert np.array_equal(filled[3, 3], expected)
    unknown_only = np.where(labels == 1, 0, labels).astype(np.uint8)
    assert np.array_equal(overlay(image, unknown_only, unknown_only), plain)  # no contour around the unknown region
