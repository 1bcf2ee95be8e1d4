"""Per-case metric distributions, raw vs post-processed: a mean hides the few cases that fail.

Box plots with every case drawn on top, one row per class and one column per metric.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cardioseg.viz.plots import save_figure

METRICS = {"dice": "Dice", "hd95": "HD95", "assd": "ASSD"}
VARIANT_COLOURS = {"raw": "#8c8c8c", "post": "#d98c00"}


def plot_metric_distributions(per_case: pd.DataFrame, out: Path, distance_unit: str = "px") -> Path | None:
    """Box-and-points figure of Dice, HD95 and ASSD per class and variant; None without any value."""
    metrics = [m for m in METRICS if m in per_case and per_case[m].notna().any()]
    if per_case.empty or not metrics:
        return None
    classes = list(dict.fromkeys(per_case["class_name"]))
    variants = [v for v in VARIANT_COLOURS if v in set(per_case["variant"])]
    fig, axes = plt.subplots(len(classes), len(metrics), figsize=(3.4 * len(metrics), 3.2 * len(classes)), squeeze=False)
    rng = np.random.default_rng(0)
    for row, class_name in enumerate(classes):
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            subset = per_case[per_case["class_name"] == class_name]
            data = [subset.loc[subset["variant"] == v, metric].dropna().to_numpy(float) for v in variants]
            ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"color": "k"})
            for x, (variant, values) in enumerate(zip(variants, data), start=1):
                ax.scatter(x + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.8,
                           color=VARIANT_COLOURS[variant], edgecolor="k", lw=0.3, zorder=3)
            ax.set_xticks(range(1, len(variants) + 1), variants)
            unit = "" if metric == "dice" else f" [{distance_unit}]"
            ax.set_title(f"{class_name}: {METRICS[metric]}{unit}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            if metric == "dice":
                ax.set_ylim(min([0.5, *(d.min() for d in data if d.size)]) - 0.02, 1.01)
    fig.suptitle(f"Per-case metrics, raw vs post-processed ({per_case['case_id'].nunique()} cases)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)
