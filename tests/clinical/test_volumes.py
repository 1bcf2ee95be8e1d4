"""Mask volumes and agreement statistics against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cardioseg.clinical import ClinicalError, agreement_stats, mask_volume, volume_agreement
from cardioseg.errors import CardiosegError


def test_mask_volume_with_anisotropic_spacing() -> None:
    mask = np.zeros((4, 5, 6), dtype=bool)
    mask[1:3, 1:3, 1:6] = True  # 2 * 2 * 5 = 20 voxels of 1 * 2 * 2.5 = 5 mm3
    result = mask_volume(mask, spacing=(1.0, 2.0, 2.5))
    assert (result.voxels, result.mm3, result.ml) == (20, pytest.approx(100.0), pytest.approx(0.1))
    assert (result.unit, result.value) == ("mL", pytest.approx(0.1))


def test_mask_volume_without_spacing_is_voxels() -> None:
    result = mask_volume(np.ones((2, 3, 4), dtype=bool))
    assert (result.voxels, result.mm3, result.ml, result.unit, result.value) == (24, None, None, "voxels", 24.0)


@pytest.mark.parametrize(
    ("mask", "spacing"),
    [
        (np.ones((3, 3), bool), None),
        (np.ones((2, 2, 2), bool), (1.0, 1.0)),
        (np.ones((2, 2, 2), bool), (1.0, -1.0, 1.0)),
    ],
)
def test_mask_volume_rejects_bad_input(mask: np.ndarray, spacing: tuple | None) -> None:
    with pytest.raises(ClinicalError):
        mask_volume(mask, spacing)


def test_clinical_error_is_a_cardioseg_error() -> None:
    assert issubclass(ClinicalError, CardiosegError)


def test_volume_agreement() -> None:
    assert volume_agreement(110.0, 100.0) == {"error": 10.0, "abs_error": 10.0, "rel_error_pct": pytest.approx(10.0)}
    assert volume_agreement(90.0, 100.0)["error"] == -10.0
    assert math.isnan(volume_agreement(5.0, 0.0)["rel_error_pct"])


def test_agreement_stats_by_hand() -> None:
    # differences 0, 1, 1, 2: bias 1, sample SD sqrt(2/3); r = 2 / sqrt(5 * 1)
    stats = agreement_stats([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 2.0])
    sd = math.sqrt(2 / 3)
    assert stats == {
        "n": 4,
        "n_excluded": 0,
        "pearson_r": pytest.approx(2 / math.sqrt(5)),
        "bias": pytest.approx(1.0),
        "sd_diff": pytest.approx(sd),
        "loa_lower": pytest.approx(1.0 - 1.96 * sd),
        "loa_upper": pytest.approx(1.0 + 1.96 * sd),
        "mae": pytest.approx(1.0),
        "note": "",
    }


def test_agreement_stats_excludes_and_counts_nan_pairs() -> None:
    stats = agreement_stats(np.array([50.0, np.nan, 60.0, 70.0]), np.array([55.0, 40.0, np.nan, 65.0]))
    assert (stats["n"], stats["n_excluded"]) == (2, 2)
    assert stats["bias"] == pytest.approx(0.0)
    assert stats["mae"] == pytest.approx(5.0)


def test_two_pairs_give_no_correlation_or_limits_but_a_note() -> None:
    """Two points always lie on a line: r would be exactly -1 here, and an SD of two differences means little."""
    stats = agreement_stats([10.0, 20.0], [12.0, 16.0])  # differences -2, +4
    assert stats["n"] == 2 and stats["bias"] == pytest.approx(1.0) and stats["mae"] == pytest.approx(3.0)
    assert all(math.isnan(stats[key]) for key in ("pearson_r", "sd_diff", "loa_lower", "loa_upper"))
    assert stats["note"] == "n = 2: too few cases for a correlation / limits of agreement"
    three = agreement_stats([10.0, 20.0, 30.0], [12.0, 16.0, 29.0])
    assert three["note"] == "" and np.isfinite(three["pearson_r"]) and np.isfinite(three["loa_upper"])


def test_agreement_stats_undefined_cases() -> None:
    one = agreement_stats([1.0], [2.0])
    assert one["n"] == 1 and math.isnan(one["sd_diff"]) and math.isnan(one["pearson_r"])
    assert agreement_stats([], [])["note"] == "n = 0: too few cases for a correlation / limits of agreement"
    constant = agreement_stats([3.0, 3.0, 3.0], [1.0, 2.0, 3.0])
    assert math.isnan(constant["pearson_r"])
    with pytest.raises(ClinicalError, match="paired"):
        agreement_stats([1.0, 2.0], [1.0])
