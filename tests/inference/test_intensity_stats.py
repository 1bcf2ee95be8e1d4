"""Streamed normalisation statistics against ``normalize`` on the whole array."""

from __future__ import annotations

import numpy as np
import pytest

from cardioseg.data.preprocess import normalize
from cardioseg.inference import intensity
from cardioseg.inference.intensity import StatsAccumulator, apply_stats


def _volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.gamma(2.0, 150.0, size=(40, 30, 12))).astype(np.float32)


def _streamed(volume: np.ndarray, method: str) -> np.ndarray:
    stats = StatsAccumulator(method, (5.0, 95.0), volume.size)
    for k in range(volume.shape[2]):
        stats.add(volume[..., k])
    return apply_stats(volume, method, stats.result())


@pytest.mark.parametrize("method", ["minmax", "percentile", "zscore", "none"])
def test_streamed_statistics_equal_whole_volume_normalisation(method: str) -> None:
    volume = _volume()
    np.testing.assert_allclose(_streamed(volume, method), normalize(volume, method, (5.0, 95.0)), atol=1e-5)


def test_percentiles_of_a_large_volume_come_from_a_subsample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intensity, "MAX_PERCENTILE_SAMPLES", 1000)  # every 15th voxel of 14,400
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
        assert not _streamed(flat, method).any()
