"""Volumes of 3D masks, and how well predicted clinical numbers agree with reference ones.

A volume is reported in mL only when the voxel spacing is known; without it the honest answer
is a voxel count, labelled ``"voxels"``, never a number that merely looks like millilitres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cardioseg.errors import CardiosegError

MM3_PER_ML = 1000.0
MIN_PAIRS = 3
"""Fewer pairs give no meaningful correlation or limits of agreement (two points always lie on a line)."""


class ClinicalError(CardiosegError):
    """A clinical measurement cannot be made from the given masks (empty, missing, degenerate)."""


@dataclass(frozen=True)
class VolumeResult:
    """Voxel count and, when the spacing is known, mm³ and mL (else ``None``)."""

    voxels: int
    mm3: float | None
    ml: float | None

    @property
    def unit(self) -> str:
        return "voxels" if self.ml is None else "mL"

    @property
    def value(self) -> float:
        """The volume in ``unit``: mL when the spacing was known, else the voxel count."""
        return float(self.voxels) if self.ml is None else self.ml


def mask_volume(mask: np.ndarray, spacing: Sequence[float] | None = None) -> VolumeResult:
    """Volume of a 3D binary mask; ``spacing`` is the voxel size in mm per axis."""
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ClinicalError(f"a volume needs a 3D mask, got shape {mask.shape}")
    voxels = int(np.count_nonzero(mask))
    if spacing is None:
        return VolumeResult(voxels, None, None)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ClinicalError(f"spacing {tuple(spacing)} must be three positive voxel sizes in mm")
    mm3 = voxels * float(np.prod(spacing))
    return VolumeResult(voxels, mm3, mm3 / MM3_PER_ML)


def volume_agreement(pred_ml: float, ref_ml: float) -> dict[str, float]:
    """Signed error, absolute error (in the volumes' unit) and relative error in percent
    (100 |error| / ref; NaN when ref is 0)."""
    error = float(pred_ml) - float(ref_ml)
    return {
        "error": error,
        "abs_error": abs(error),
        "rel_error_pct": 100 * abs(error) / abs(float(ref_ml)) if ref_ml else float("nan"),
    }


def agreement_stats(pred: Sequence[float] | np.ndarray, ref: Sequence[float] | np.ndarray) -> dict[str, float | str]:
    """Bland-Altman and correlation statistics of paired measurements (e.g. EF or EDV).

    Differences are ``pred - ref``. Pairs with a NaN on either side are left out and counted in
    ``n_excluded``; ``n`` is the number of pairs used. The SD of the differences is the sample
    SD (ddof=1); limits of agreement are bias ± 1.96 SD. With fewer than ``MIN_PAIRS`` pairs,
    Pearson r, the SD and the limits are NaN and ``note`` says why (bias and MAE still hold);
    Pearson r is also NaN when either side is constant (the correlation is then undefined).
    """
    x, y = np.asarray(pred, dtype=float).ravel(), np.asarray(ref, dtype=float).ravel()
    if x.shape != y.shape:
        raise ClinicalError(f"agreement needs paired values: {x.size} predictions vs {y.size} references")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    diff = x - y
    n = int(diff.size)
    enough = n >= MIN_PAIRS
    bias = float(diff.mean()) if n else float("nan")
    sd = float(diff.std(ddof=1)) if enough else float("nan")
    return {
        "n": n,
        "n_excluded": int((~keep).sum()),
        "pearson_r": _pearson(x, y) if enough else float("nan"),
        "bias": bias,
        "sd_diff": sd,
        "loa_lower": bias - 1.96 * sd,
        "loa_upper": bias + 1.96 * sd,
        "mae": float(np.abs(diff).mean()) if n else float("nan"),
        "note": "" if enough else f"n = {n}: too few cases for a correlation / limits of agreement",
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])
