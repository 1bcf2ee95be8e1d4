"""Overlays: every class in its own colour, reference solid and prediction dashed, a legend on every frame.

Checked on a real CAMUS label map with its three classes (1 LV cavity, 2 myocardium, 3 left atrium).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from cardioseg.plan import IGNORE_LABEL
from cardioseg.viz.frames import contour_image, grey_levels, overlay_frame
from cardioseg.viz.overlays import classes_in, label_overlay, overlay, to_rgb
from cardioseg.viz.palette import GAP_COLOUR, class_colour

CAMUS_NAMES = {1: "LV endocardium", 2: "LV myocardium", 3: "left atrium"}


def camus_frame(camus224: Path) -> tuple[np.ndarray, np.ndarray]:
    """A real apical 4CH frame and its 3-class label map, apex up."""
    stem = camus224 / "train" / "patient0001_4CH_ED"
    image = np.asarray(Image.open(f"{stem}.png")).T
    labels = np.asarray(Image.open(f"{stem}_gt.png")).T
    assert classes_in(labels) == [1, 2, 3]
    return image, labels


def painted(rgb: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return (rgb == np.array(colour, np.uint8)).all(axis=-1)


def border(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def test_each_class_has_its_own_colour_on_its_own_border(camus224: Path) -> None:
    image, labels = camus_frame(camus224)
    rgb = overlay(image, None, labels)
    colours = {class_colour(c) for c in (1, 2, 3)}
    assert len(colours) == 3  # three different colours
    for class_id in (1, 2, 3):
        drawn = painted(rgb, class_colour(class_id))
        edge = border(labels == class_id)
        assert drawn.any()
        assert (drawn & edge).sum() >= 0.6 * drawn.sum()  # the colour sits on that class's border
        assert drawn[edge].mean() > 0.3  # and covers much of it (a later class may overdraw a shared edge)


def test_reference_is_solid_and_prediction_dashed(camus224: Path) -> None:
    """On one class's border the reference is one colour all along; the prediction alternates colour and gaps,
    which also tells them apart in greyscale print."""
    image, labels = camus_frame(camus224)
    atrium = np.where(labels == 3, 3, 0).astype(np.uint8)
    edge = border(atrium == 3)
    solid = overlay(image, None, atrium)[edge]
    dashed = overlay(image, atrium, None)[edge]
    colour, gap = np.array(class_colour(3), np.uint8), np.array(GAP_COLOUR, np.uint8)
    assert (solid == colour).all(axis=-1).mean() == 1.0
    coloured, gaps = (dashed == colour).all(axis=-1).mean(), (dashed == gap).all(axis=-1).mean()
    assert 0.4 < coloured < 0.8 and 0.2 < gaps < 0.6 and coloured + gaps > 0.99


def test_frame_legend_names_every_class_of_the_plan(camus224: Path) -> None:
    image, labels = camus_frame(camus224)
    only_cavity = np.where(labels == 1, 1, 0).astype(np.uint8)
    window = grey_levels(image)
    frame = overlay_frame(image, only_cavity, labels, window, "patient0001 4CH ED", class_names=CAMUS_NAMES)
    picture = contour_image(image, only_cavity, labels, window)
    banner = frame[: frame.shape[0] - picture.shape[0]]
    assert np.array_equal(frame[banner.shape[0]:], picture)
    for class_id in CAMUS_NAMES:  # every class has its swatch, even one the prediction lacks
        assert painted(banner, class_colour(class_id)).sum() > 20
    unsegmented = overlay_frame(image, None, None, window, "frame 3 of 20", class_names=CAMUS_NAMES)
    assert unsegmented.shape == frame.shape  # one banner height for all frames of a video


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
    expected = (0.5 * plain[3, 3].astype(np.float32) + 0.5 * np.array(class_colour(1), np.float32)).astype(np.uint8)
    assert np.array_equal(filled[3, 3], expected)
    unknown_only = np.where(labels == 1, 0, labels).astype(np.uint8)
    assert np.array_equal(overlay(image, unknown_only, unknown_only), plain)  # no contour around the unknown region
