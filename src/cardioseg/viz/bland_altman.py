"""Agreement figures for paired clinical measurements: correlation above, Bland-Altman below.

A cardiologist judges an automatic EF or volume by its bias and limits of agreement against the
reference, not by Dice; each column of the figure is one measurement (EDV, ESV, EF, ...).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from cardioseg.viz.plots import save_figure

POINT_COLOUR = "#d98c00"
NOTE_WIDTH = 40  # characters per line of a caveat under a panel's title
LABEL_POINTS_UP_TO = 12  # name each point (patient or case) when there are this few
_POWERS = {3: "10³", 6: "10⁶", 9: "10⁹"}
SCALED = ("bias", "sd_diff", "loa_lower", "loa_upper", "mae")  # statistics in the unit of the values


@dataclass(frozen=True)
class Paired:
    """One measurement over cases: predicted and reference values in ``unit``, with point names.

    ``stats`` are the pairs' agreement statistics in ``unit`` (``cardioseg.clinical.agreement_stats``:
    n, pearson_r, bias, sd_diff, loa_lower, loa_upper, mae, note), computed by the caller so that the
    figure shows exactly the numbers of the tables, and the same caveat when there are too few pairs.
    """

    name: str
    unit: str
    pred: np.ndarray
    ref: np.ndarray
    stats: Mapping[str, Any]
    names: list[str] = field(default_factory=list)
    ref_label: str = "reference"
    pred_label: str = "predicted"


def plot_bland_altman(panels: list[Paired], out: Path, title: str) -> Path | None:
    """Scatter against the identity line and Bland-Altman plot (bias, 95% limits) per measurement."""
    if not panels:
        return None
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 7.6), squeeze=False)
    for column, panel in enumerate(panels):
        _draw(axes[0, column], axes[1, column], panel)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out)


def _draw(ax_corr: plt.Axes, ax_ba: plt.Axes, panel: Paired) -> None:
    pred, ref = np.asarray(panel.pred, float), np.asarray(panel.ref, float)
    keep = np.isfinite(pred) & np.isfinite(ref)
    names = [n for n, k in zip(panel.names, keep) if k] if panel.names else []
    pred, ref = pred[keep], ref[keep]
    scale, unit = _display_scale(np.concatenate([pred, ref]), panel.unit)
    pred, ref = pred / scale, ref / scale
    stats = {key: value / scale if key in SCALED else value for key, value in panel.stats.items()}
    if stats["n"] == 0:
        for ax in (ax_corr, ax_ba):
            ax.text(0.5, 0.5, f"{panel.name}: no complete pair", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return
    low, high = float(min(pred.min(), ref.min())), float(max(pred.max(), ref.max()))
    pad = 0.08 * (high - low or abs(high) or 1.0)
    ax_corr.plot([low - pad, high + pad], [low - pad, high + pad], color="0.6", lw=1, ls="--", label="identity")
    ax_corr.scatter(ref, pred, color=POINT_COLOUR, edgecolor="k", lw=0.5, zorder=3)
    ax_corr.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), aspect="equal",
                xlabel=f"{panel.ref_label}{unit}", ylabel=f"{panel.pred_label}{unit}",
                title=f"{panel.name}: r = {_fmt(stats['pearson_r'], 3)}, n = {stats['n']}")
    mean, diff = (pred + ref) / 2, pred - ref
    ax_ba.scatter(mean, diff, color=POINT_COLOUR, edgecolor="k", lw=0.5, zorder=3)
    ax_ba.axhline(0, color="0.6", lw=1)
    ax_ba.axhline(stats["bias"], color="tab:blue", lw=1.5, label=f"bias {_fmt(stats['bias'])}")
    if np.isfinite(stats["sd_diff"]):
        for key in ("loa_lower", "loa_upper"):
            ax_ba.axhline(stats[key], color="tab:red", lw=1, ls="--")
        ax_ba.plot([], [], color="tab:red", ls="--",
                   label=f"95% limits {_fmt(stats['loa_lower'])} to {_fmt(stats['loa_upper'])}")
    ax_ba.set(xlabel=f"mean of {panel.pred_label} and {panel.ref_label}{unit}",
              ylabel=f"{panel.pred_label} − {panel.ref_label}{unit}",
              title=f"{panel.name}: MAE {_fmt(stats['mae'])}")
    if stats.get("note"):  # too few pairs: no correlation, no limits of agreement, and the reason under each title
        for ax in (ax_corr, ax_ba):
            ax.set_title(f"{ax.get_title()}\n{textwrap.fill(stats['note'], NOTE_WIDTH)}", fontsize=10)
    ax_ba.legend(fontsize=8, loc="best")
    if len(names) <= LABEL_POINTS_UP_TO:
        for x, y, name in zip(ref, pred, names):
            ax_corr.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for x, y, name in zip(mean, diff, names):
            ax_ba.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for ax in (ax_corr, ax_ba):
        ax.grid(alpha=0.3)


def _display_scale(values: np.ndarray, unit: str) -> tuple[float, str]:
    """Large pixel-unit volumes are shown in thousands (or millions) so axes need no offset text."""
    peak = float(np.abs(values).max()) if values.size else 0.0
    power = min(3 * int(np.floor(np.log10(peak) / 3)), 9) if peak >= 1e4 else 0
    if power == 0:
        return 1.0, f" [{unit}]" if unit else ""
    return 10.0**power, f" [{_POWERS[power]} {unit}]"


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"
