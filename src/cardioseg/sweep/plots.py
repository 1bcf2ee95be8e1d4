"""Sweep figures: grouped Dice bars per architecture, and Dice against cost with the Pareto front."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker

from cardioseg.sweep.grid import AUGMENTATION_LABELS
from cardioseg.sweep.stats import pareto_front
from cardioseg.sweep.tables import row_label, varying
from cardioseg.viz.plots import plt, save_figure


def plot_bars(agg: pd.DataFrame, out: Path) -> Path:
    """One panel per architecture: a group of bars per encoder, one bar per augmentation, seed std as error bars."""
    archs = list(dict.fromkeys(agg["arch"]))
    augs = list(dict.fromkeys(agg["augmentation"]))
    axes_names = varying(agg)
    cols = min(3, len(archs))
    rows = math.ceil(len(archs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    low = max(0.0, float(np.nanmin(agg["dice_mean"])) - 0.1)
    width = 0.8 / len(augs)
    for ax, arch in zip(axes.flat, archs):
        sub = agg[agg["arch"] == arch]
        labels = list(dict.fromkeys(row_label(r, axes_names) for _, r in sub.iterrows()))
        for i, aug in enumerate(augs):
            part = sub[sub["augmentation"] == aug]
            x = [labels.index(row_label(r, axes_names)) + (i - (len(augs) - 1) / 2) * width for _, r in part.iterrows()]
            std = part["dice_std"].to_numpy()
            ax.bar(x, part["dice_mean"], width, yerr=None if np.isnan(std).all() else std, capsize=3,
                   label=AUGMENTATION_LABELS[aug], color=f"C{i}")
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(arch)
        ax.set_ylim(low, 1.0)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(archs):]:
        ax.axis("off")
    axes.flat[0].set_ylabel("Dice (held-out, mean over cases)")
    axes.flat[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Dice per architecture and encoder (error bars: std over seeds)")
    fig.tight_layout()
    return save_figure(fig, out)


def plot_pareto(agg: pd.DataFrame, cost: str, xlabel: str, out: Path) -> Path:
    """Dice against a cost, one point per configuration, the Pareto front joined and labelled."""
    axes_names = varying(agg)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    front = pareto_front(agg[cost].to_numpy(), agg["dice_mean"].to_numpy())
    markers = dict(zip(AUGMENTATION_LABELS, "os^"))
    for i, arch in enumerate(dict.fromkeys(agg["arch"])):
        for aug, marker in markers.items():
            part = agg[(agg["arch"] == arch) & (agg["augmentation"] == aug)]
            ax.scatter(part[cost], part["dice_mean"], marker=marker, color=f"C{i % 10}", s=36, alpha=0.85,
                       label=f"{arch}, {AUGMENTATION_LABELS[aug]}" if len(part) else None)
    best = agg[front].sort_values(cost)
    ax.step(best[cost], best["dice_mean"], where="post", color="black", lw=1, zorder=0)
    ax.scatter(best[cost], best["dice_mean"], s=140, facecolors="none", edgecolors="black", label="Pareto front")
    for _, row in best.iterrows():
        ax.annotate(f"{row['arch']}/{row_label(row, axes_names)}/{AUGMENTATION_LABELS[row['augmentation']]}",
                    (row[cost], row["dice_mean"]),
                    textcoords="offset points", xytext=(5, -10), fontsize=7)
    if agg[cost].max() > 10 * agg[cost].min():  # costs spanning decades read better on a log axis
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.set(xlabel=xlabel, ylabel="Dice (held-out, mean over seeds)", title=f"Dice against {xlabel}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    return save_figure(fig, out)


def write_plots(agg: pd.DataFrame, runs: pd.DataFrame, plots_dir: Path) -> list[Path]:
    """The bars and both Pareto plots. A network's inference time does not depend on how it was trained,
    so each point gets the median over every run of its architecture and encoder: timings on a shared
    machine are noisy, and one slow measurement should not move a configuration off the front."""
    network_ms = runs.groupby(["arch", "encoder"])["inference_ms_per_image"].median().rename("network_ms")
    costs = agg.join(network_ms, on=["arch", "encoder"]).assign(parameters_m=agg["parameters"] / 1e6)
    return [
        plot_bars(agg, plots_dir / "dice_bars.png"),
        plot_pareto(costs, "network_ms", "inference time [ms/image, median per network]", plots_dir / "dice_vs_inference.png"),
        plot_pareto(costs, "parameters_m", "parameters [M]", plots_dir / "dice_vs_parameters.png"),
    ]
