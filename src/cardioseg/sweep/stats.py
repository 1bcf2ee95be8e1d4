"""Is a difference real? Paired seed comparisons, rankings and the Pareto front of a sweep.

A difference between two configurations only means something if it is larger than what changing
the seed alone does. ``paired_comparison`` pairs the runs of two configurations by seed and
reports the mean difference, the seed-to-seed standard deviation, a paired t-test and a sign
test; its verdict names a winner only when the difference exceeds the seed spread *and* the
t-test is significant. With one seed it says so instead of guessing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    n_seeds: int
    mean_a: float
    mean_b: float
    mean_diff: float
    seed_std: float
    exceeds_seed_std: bool
    t_statistic: float
    p_t_test: float
    wins_a: int
    wins_b: int
    p_sign_test: float
    verdict: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def paired_comparison(a: Mapping[int, float], b: Mapping[int, float], name_a: str = "A", name_b: str = "B") -> Comparison:
    """Compare two configurations on the seeds both have (``{seed: metric}`` each)."""
    seeds = sorted(set(a) & set(b))
    x = np.array([a[s] for s in seeds], dtype=float)
    y = np.array([b[s] for s in seeds], dtype=float)
    n = len(seeds)
    nan = float("nan")
    mean_a, mean_b = (float(x.mean()), float(y.mean())) if n else (nan, nan)
    diff = x - y
    mean_diff = float(diff.mean()) if n else nan
    wins_a, wins_b = int((diff > 0).sum()), int((diff < 0).sum())
    p_sign = float(stats.binomtest(wins_a, wins_a + wins_b, 0.5).pvalue) if wins_a + wins_b else 1.0
    if n < 2:
        verdict = "no paired seeds" if n == 0 else "one seed: spread unknown"
        return Comparison(name_a, name_b, n, mean_a, mean_b, mean_diff, nan, False, nan, nan, wins_a, wins_b,
                          p_sign, verdict)
    seed_std = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
    t, p_t = _paired_t(diff)
    exceeds = abs(mean_diff) > seed_std
    if not exceeds:
        verdict = "within seed spread"
    elif p_t < ALPHA:
        verdict = f"{name_a if mean_diff > 0 else name_b} better"
    else:
        verdict = f"beyond seed spread, not significant with {n} seeds"
    return Comparison(name_a, name_b, n, mean_a, mean_b, mean_diff, seed_std, exceeds, t, p_t, wins_a, wins_b,
                      p_sign, verdict)


def _paired_t(diff: np.ndarray) -> tuple[float, float]:
    """Paired t-test on the differences; identical differences give t = +-inf, p = 0 (or 1 if all zero)."""
    sd = diff.std(ddof=1)
    if sd == 0:
        return (math.copysign(math.inf, diff[0]), 0.0) if diff[0] != 0 else (0.0, 1.0)
    t = float(diff.mean() / (sd / math.sqrt(len(diff))))
    return t, float(2 * stats.t.sf(abs(t), len(diff) - 1))


def pareto_front(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats: lower-or-equal cost and higher-or-equal score, one strictly."""
    cost, score = np.asarray(cost, dtype=float), np.asarray(score, dtype=float)
    front = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        no_worse = (cost <= cost[i]) & (score >= score[i])
        better = (cost < cost[i]) | (score > score[i])
        front[i] = not (no_worse & better).any()
    return front
