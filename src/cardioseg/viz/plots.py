"""Matplotlib figures written atomically as PNG files (headless: Agg backend), and their shared legends."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from cardioseg.fileio import write_with
from cardioseg.viz.palette import PREDICTION, REFERENCE, hex_colour

MARKERS_UP_TO = 30  # epochs: with this few, each one is drawn as a point, not only a line


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
    plt.close(fig)
    return Path(path)


def contour_legend(fig: plt.Figure, class_names: Mapping[int, str]) -> None:
    """Below the figure: each class's colour and name, then the reference (solid) and prediction (dashed) styles."""
    handles = [Line2D([], [], color=hex_colour(c), lw=2.5, label=name) for c, name in class_names.items()]
    handles += [Line2D([], [], color="0.3", lw=2, label=REFERENCE),
                Line2D([], [], color="0.3", lw=2, ls=(0, (3, 2)), label=PREDICTION)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))


def fill_legend(fig: plt.Figure, class_names: Mapping[int, str]) -> None:
    """Below the figure: the fill colour of each class."""
    handles = [Patch(color=hex_colour(c), alpha=0.6, label=name) for c, name in class_names.items()]
    fig.legend(handles=handles, loc="lower center", ncol=max(1, len(handles)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))


def plot_training_curves(metrics_csv: Path, out: Path) -> Path | None:
    """Loss per epoch (train, val) and validation Dice from Lightning's CSV log.

    Epochs are whole numbers on the axis; with few epochs every value is a marker, so a one-epoch
    run shows its points on an axis around epoch 1 rather than an invisible line on a sliver of axis.
    """
    if not metrics_csv.is_file():
        return None
    log = pd.read_csv(metrics_csv)
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = (log["epoch"].dropna() + 1) if "epoch" in log else pd.Series([1])
    marker = "o" if epochs.nunique() <= MARKERS_UP_TO else None
    for column, label in (("train_loss_epoch", "train loss"), ("val_loss", "validation loss")):
        if column in log:
            series = log[["epoch", column]].dropna()
            ax_loss.plot(series["epoch"] + 1, series[column], marker=marker, label=label)
    if ax_loss.lines:
        ax_loss.legend()
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    if "val_dice" in log:
        series = log[["epoch", "val_dice"]].dropna()
        ax_dice.plot(series["epoch"] + 1, series["val_dice"], marker=marker, color="tab:green")
    ax_dice.set(xlabel="epoch", ylabel="Dice", title="Validation Dice", ylim=(0, 1))
    first, last = (float(epochs.min()), float(epochs.max())) if len(epochs) else (1.0, 1.0)
    for ax in (ax_loss, ax_dice):
        ax.set_xlim(first - 0.5, last + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
    return save_figure(fig, out)
