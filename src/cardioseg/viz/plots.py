"""Matplotlib figures written atomically as PNG files (headless: Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from cardioseg.fileio import write_with


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
    plt.close(fig)
    return Path(path)


def plot_training_curves(metrics_csv: Path, out: Path) -> Path | None:
    """Loss per epoch (train, val) and validation Dice from Lightning's CSV log."""
    if not metrics_csv.is_file():
        return None
    log = pd.read_csv(metrics_csv)
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 3.8))
    for column, label in (("train_loss_epoch", "train loss"), ("val_loss", "validation loss")):
        if column in log:
            series = log[["epoch", column]].dropna()
            ax_loss.plot(series["epoch"] + 1, series[column], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend()
    if "val_dice" in log:
        series = log[["epoch", "val_dice"]].dropna()
        ax_dice.plot(series["epoch"] + 1, series["val_dice"], marker="o", color="tab:green")
    ax_dice.set(xlabel="epoch", ylabel="Dice", title="Validation Dice", ylim=(0, 1))
    ax_dice.grid(alpha=0.3)
    return save_figure(fig, out)
