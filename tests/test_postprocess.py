"""Post-processing steps on small arrays whose expected output is built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cardioseg.config import PostprocessConfig
from cardioseg.errors import DataError
from cardioseg.postprocess import (
    close_mask,
    fill_holes,
    is_diffuse,
    largest_component,
    postprocess,
    postprocess_labels,
    suppress_slices,
    threshold,
)


def box(shape: tuple[int, ...], *ranges: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, b) for a, b in ranges)] = True
    return mask


def ring(size: int = 7) -> np.ndarray:
    """A square ring with a one-pixel-thick wall and a 3x3 hole in a size x size image."""
    mask = box((size, size), (1, 6), (1, 6))
    mask[2:5, 2:5] = False
    return mask


def test_threshold_is_strict_and_passes_masks_through() -> None:
    prob = np.array([[0.2, 0.5], [0.51, 0.9]])
    assert np.array_equal(threshold(prob, 0.5), [[False, False], [True, True]])
    mask = prob > 0.3
    assert threshold(mask, 0.99) is mask


def test_closing_bridges_a_one_pixel_gap() -> None:
    mask = box((7, 9), (2, 5), (1, 4)) | box((7, 9), (2, 5), (5, 8))  # column 4 is the gap
    assert np.array_equal(close_mask(mask, 1), box((7, 9), (2, 5), (1, 8)))


def test_closing_keeps_a_mask_touching_the_border() -> None:
    mask = box((6, 6), (0, 3), (0, 6))
    assert np.array_equal(close_mask(mask, 2), mask)


def test_closing_radius_zero_is_identity() -> None:
    mask = ring()
    assert np.array_equal(close_mask(mask, 0), mask)


def test_closing_per_slice_does_not_bridge_across_slices() -> None:
    volume = np.zeros((5, 5, 3), dtype=bool)
    volume[1:4, 1:4, 0] = volume[1:4, 1:4, 2] = True  # slice 1 empty: a gap along the slice axis
    assert np.array_equal(close_mask(volume, 1, slice_axis=2), volume)
    assert close_mask(volume, 1, slice_axis=None)[2, 2, 1]  # a 3D ball does bridge it


def test_fill_holes_2d() -> None:
    assert np.array_equal(fill_holes(ring()), box((7, 7), (1, 6), (1, 6)))


def test_fill_holes_per_slice_fills_an_open_tube_3d_does_not() -> None:
    tube = np.stack([ring()] * 4, axis=2)  # open at both ends along axis 2
    filled = np.stack([box((7, 7), (1, 6), (1, 6))] * 4, axis=2)
    assert np.array_equal(fill_holes(tube, slice_axis=2), filled)
    assert np.array_equal(fill_holes(tube, slice_axis=None), tube)
    assert np.array_equal(fill_holes(np.moveaxis(tube, 2, 0), slice_axis=0), np.moveaxis(filled, 2, 0))


def test_largest_component_removes_a_small_blob() -> None:
    big, small = box((8, 8), (0, 3), (0, 3)), box((8, 8), (6, 8), (6, 8))
    assert np.array_equal(largest_component(big | small), big)


def test_largest_component_uses_full_connectivity() -> None:
    mask = box((6, 6), (0, 2), (0, 2)) | box((6, 6), (2, 3), (2, 3))  # touches diagonally only
    assert np.array_equal(largest_component(mask), mask)


def test_largest_component_3d_keeps_the_bigger_volume() -> None:
    big, small = box((6, 6, 6), (0, 3), (0, 3), (0, 3)), box((6, 6, 6), (5, 6), (5, 6), (4, 6))
    assert np.array_equal(largest_component(big | small), big)


def test_is_diffuse() -> None:
    specks = np.zeros((7, 7), dtype=bool)
    specks[0, 0] = specks[0, 6] = specks[6, 0] = specks[6, 6] = True
    assert is_diffuse(specks)
    organ = box((7, 7), (2, 5), (2, 5))
    organ[0, 0] = organ[6, 6] = True  # three components, but the largest holds 9 of 11 pixels
    assert not is_diffuse(organ)
    assert not is_diffuse(box((7, 7), (0, 1), (0, 1)) | box((7, 7), (6, 7), (6, 7)))  # two: not "many"


def slices_volume() -> tuple[np.ndarray, np.ndarray]:
    """Slice 0 too small, 1 good, 2 diffuse specks, 3 organ with specks -> (volume, expected)."""
    volume = np.zeros((7, 7, 4), dtype=bool)
    volume[3, 3:5, 0] = True
    volume[2:5, 2:5, 1] = True
    volume[::6, ::6, 2] = True
    volume[2:5, 2:5, 3] = True
    volume[0, 0, 3] = volume[6, 6, 3] = True
    expected = volume.copy()
    expected[..., 0] = expected[..., 2] = False
    return volume, expected


def test_suppress_slices() -> None:
    volume, expected = slices_volume()
    assert np.array_equal(suppress_slices(volume, min_area=3, slice_axis=2), expected)
    moved = np.moveaxis(volume, 2, 1)
    assert np.array_equal(suppress_slices(moved, 3, slice_axis=1), np.moveaxis(expected, 2, 1))
    with pytest.raises(DataError, match="3D"):
        suppress_slices(volume[..., 0], 3)


def test_an_almost_uniformly_bright_slice_is_emptied() -> None:
    volume = np.zeros((10, 10, 3), dtype=bool)
    volume[..., 0] = True  # 100 of 100 pixels: a failed slice
    volume[:, :9, 1] = True  # 90 of 100: exactly at a 0.9 limit, kept
    volume[3:6, 3:6, 2] = True  # an organ section
    kept = suppress_slices(volume, min_area=0, slice_axis=2, max_fill=0.9)
    assert kept[..., 0].sum() == 0 and kept[..., 1].sum() == 90 and kept[..., 2].sum() == 9
    # the rule alone turns the suppression on; diffuse and small slices are left to min_slice_area
    post = postprocess(volume.astype(float), PostprocessConfig(max_slice_fill=0.5), slice_axis=2)
    assert post[..., 0].sum() == 0 and post[..., 1].sum() == 0 and post[..., 2].sum() == 9


def test_postprocess_chain_3d() -> None:
    prob = np.full((7, 7, 5), 0.1)
    prob[3, 3:5, 0] = 0.9  # too small a slice
    prob[2:5, 2:5, 1:4] = 0.9  # the organ, over slices 1-3 ...
    prob[3, 3, 2] = 0.3  # ... with a hole in slice 2
    prob[0, 0, 3] = 0.9  # a speck beside it, not connected
    prob[::6, ::6, 4] = 0.9  # a diffuse slice
    cfg = PostprocessConfig(threshold=0.5, fill_holes=True, largest_component=True, min_slice_area=3)
    out = postprocess(prob, cfg, slice_axis=2)
    assert out.dtype == bool
    assert np.array_equal(out, box((7, 7, 5), (2, 5), (2, 5), (1, 4)))


def test_postprocess_default_config_only_thresholds() -> None:
    volume, _ = slices_volume()
    prob = np.where(volume, 0.8, 0.2)
    assert np.array_equal(postprocess(prob, PostprocessConfig()), volume)


def test_postprocess_2d_ignores_slice_suppression() -> None:
    mask = box((6, 6), (1, 2), (1, 2))  # one pixel: would be "too small" as a slice
    assert np.array_equal(postprocess(mask, PostprocessConfig(min_slice_area=5)), mask)


def test_postprocess_closing_then_fill() -> None:
    broken = ring()
    broken[1, 3] = False  # a one-pixel gap in the wall: the hole is open, fill alone does nothing
    cfg_fill = PostprocessConfig(fill_holes=True)
    assert np.array_equal(postprocess(broken, cfg_fill), broken)
    cfg_both = PostprocessConfig(fill_holes=True, closing_radius=1)
    assert np.array_equal(postprocess(broken, cfg_both), box((7, 7), (1, 6), (1, 6)))


def test_postprocess_rejects_1d() -> None:
    with pytest.raises(DataError, match="2D or 3D"):
        postprocess(np.ones(5), PostprocessConfig())


def cardiac_labels() -> np.ndarray:
    """LV (1) with a background hole, inside a myocardium ring (2), plus an LV speck."""
    labels = np.zeros((11, 11), dtype=np.uint8)
    labels[1:10, 1:10] = 2
    labels[3:8, 3:8] = 1
    labels[5, 5] = 0  # hole in the cavity
    labels[9, 9] = 0  # a notch in the myocardium corner (not a hole: touches the outside)
    labels[0, 10] = 1  # a stray LV pixel on the border
    return labels


def test_postprocess_labels_per_class() -> None:
    labels = cardiac_labels()
    expected = labels.copy()
    expected[5, 5] = 1  # cavity hole filled with the cavity's class, not the myocardium's
    expected[0, 10] = 0  # the stray LV pixel is a smaller component
    cfg = PostprocessConfig(fill_holes=True, largest_component=True)
    assert np.array_equal(postprocess_labels(labels, cfg), expected)


def test_postprocess_labels_never_overwrites_another_class() -> None:
    labels = np.zeros((7, 9), dtype=np.uint8)
    labels[2:5, 1:4] = labels[2:5, 5:8] = 1
    labels[3, 4] = 2  # the middle of the gap belongs to another class
    out = postprocess_labels(labels, PostprocessConfig(closing_radius=1))
    expected = labels.copy()
    expected[2, 4] = expected[4, 4] = 1  # closing fills only the background part of the gap
    assert np.array_equal(out, expected)


def test_postprocess_labels_mixed_hole_is_left_alone() -> None:
    labels = np.zeros((9, 9), dtype=np.uint8)
    labels[1:8, 1:8] = 2
    labels[3:6, 3:6] = 1
    labels[2, 4] = 0  # background between the cavity and the myocardium: a hole of class 2 that is
    # not purely background (it joins the cavity), and not a hole of class 1 at all
    assert np.array_equal(postprocess_labels(labels, PostprocessConfig(fill_holes=True)), labels)


def test_postprocess_labels_3d_slices() -> None:
    volume, expected = slices_volume()
    labels = volume.astype(np.uint8) * 3
    out = postprocess_labels(labels, PostprocessConfig(min_slice_area=3))
    assert np.array_equal(out, expected.astype(np.uint8) * 3)
