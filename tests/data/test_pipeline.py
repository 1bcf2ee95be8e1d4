"""The preprocessing pipeline: statistics gathered plane by plane, steps along the slice axis, inverses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cardioseg.config import PreprocessConfig
from cardioseg.data import preprocess
from cardioseg.data.preprocess import (
    ArrayPlanes,
    Geometry,
    Pipeline,
    StatsAccumulator,
    normalize,
    restore_probabilities,
)


def _volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.gamma(2.0, 150.0, size=(40, 30, 12)).astype(np.float32)


@pytest.mark.parametrize("method", ["minmax", "percentile", "zscore"])
def test_plane_by_plane_statistics_equal_numpys_on_the_whole_volume(method: str) -> None:
    volume = _volume()
    stats = StatsAccumulator(method, (5.0, 95.0), volume.size)
    for k in range(volume.shape[2]):
        stats.add(volume[..., k])
    expected = {"minmax": (volume.min(), volume.max()), "percentile": tuple(np.percentile(volume, (5.0, 95.0))),
                "zscore": (volume.mean(dtype=np.float64), volume.std(dtype=np.float64))}[method]
    np.testing.assert_allclose(stats.result(), expected, rtol=1e-6)


def test_percentiles_of_a_large_volume_come_from_a_subsample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preprocess, "MAX_PERCENTILE_SAMPLES", 1000)  # every 15th voxel of 14,400
    volume = _volume()
    stats = StatsAccumulator("percentile", (5.0, 95.0), volume.size)
    for k in range(volume.shape[2]):
        stats.add(volume[..., k])
    assert stats.step == 15
    low, high = stats.result()
    exact_low, exact_high = np.percentile(volume, (5.0, 95.0))
    assert low == pytest.approx(exact_low, rel=0.1) and high == pytest.approx(exact_high, rel=0.05)


def test_flat_volume_normalises_to_zeros() -> None:
    flat = np.full((4, 4, 3), 7.0, np.float32)
    for method in ("minmax", "percentile", "zscore"):
        assert not normalize(flat, method).any()


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_median_filter_acts_on_the_planes_of_the_slice_axis(axis: int) -> None:
    """A 3x3 median within each plane of ``axis``, never across planes (it used to act on the last axis)."""
    volume = _volume()
    pre = PreprocessConfig(median_filter=3, normalize="none", size=(16, 16))
    fitted = Pipeline(pre).fit(ArrayPlanes(volume, axis))
    footprint = [3, 3, 3]
    footprint[axis] = 1
    expected = np.moveaxis(ndimage.median_filter(volume, size=footprint, mode="reflect"), axis, 0)
    assert fitted.denoised is not None
    for k in range(volume.shape[axis]):
        np.testing.assert_array_equal(fitted.denoised[k], expected[k])


def test_clahe_scales_every_plane_with_the_volumes_range() -> None:
    """Two planes of different brightness keep their order: the 8-bit scaling is shared, not per plane."""
    volume = np.stack([np.full((32, 32), 10.0), np.full((32, 32), 200.0)], axis=2).astype(np.float32)
    volume[8:24, 8:24] += 5.0
    fitted = Pipeline(PreprocessConfig(clahe=True, normalize="none", size=(32, 32))).fit(ArrayPlanes(volume, 2))
    assert fitted.clahe_range == (10.0, 205.0)
    dark, bright = fitted.image(0)[0], fitted.image(1)[0]
    assert dark.mean() < bright.mean()


def test_one_crop_box_for_every_plane_of_a_volume() -> None:
    """The auto box comes from the maximum projection, so slices stack back together."""
    volume = np.zeros((60, 50, 4), np.float32)
    volume[10:30, 5:25, 0] = 1.0  # overlaps the other plane's region in the projection
    volume[20:40, 15:45, 3] = 1.0
    pre = PreprocessConfig(crop="auto", size=(16, 16))
    pipeline = Pipeline(pre)
    fitted = pipeline.fit(ArrayPlanes(volume, 2))
    boxes = {fitted.image(k)[1].crop_box for k in range(4)}
    assert len(boxes) == 1
    y0, y1, x0, x1 = boxes.pop()
    assert y0 <= 10 and y1 >= 40 and x0 <= 5 and x1 >= 45  # both bright regions inside (5 % margin)


def test_restore_inverts_crop_and_resize() -> None:
    prob = np.ones((1, 16, 16), np.float32)
    restored = restore_probabilities(prob, Geometry((40, 30), (10, 30, 5, 25)))
    assert restored.shape == (1, 40, 30)
    assert restored[0, 10:30, 5:25].min() == 1.0 and restored.sum() == 20 * 20
