"""Figure of the best, median and worst cases of an evaluation, with contour overlays."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cardioseg.data.prepared import PreparedDataset
from cardioseg.viz.frames import contour_image, grey_levels
from cardioseg.viz.plots import contour_legend, save_figure


def representative_slice(ref: np.ndarray, axis: int) -> int:
    """The slice with the most reference foreground (the middle slice if there is none)."""
    areas = np.moveaxis(ref > 0, axis, 0).reshape(ref.shape[axis], -1).sum(1)
    return int(areas.argmax()) if areas.any() else ref.shape[axis] // 2


def case_panel(prepared: PreparedDataset, case_id: str, prediction: np.ndarray) -> np.ndarray:
    ref = prepared.original_label(case_id)
    image = prepared.original_image(case_id)
    if ref.ndim == 3:
        axis = prepared.cases[case_id]["slice_axis"]
        k = representative_slice(ref, axis)
        image, ref, prediction = (np.take(a, k, axis=axis) for a in (image, ref, prediction))
    return contour_image(image, prediction, ref, grey_levels(image))


def plot_best_median_worst(
    prepared: PreparedDataset, per_case: pd.DataFrame, predictions: dict[str, np.ndarray], out: Path
) -> Path | None:
    """Three panels picked by post-processed Dice (mean over classes), under the legend of classes and line styles."""
    scores = per_case[per_case["variant"] == "post"].groupby("case_id")["dice"].mean().dropna().sort_values()
    if scores.empty:
        return None
    picks = {"worst": scores.index[0], "median": scores.index[len(scores) // 2], "best": scores.index[-1]}
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (title, case_id) in zip(axes, picks.items()):
        ax.imshow(case_panel(prepared, case_id, predictions[case_id]))
        ax.set_title(f"{title}: {case_id}\nDice {scores[case_id]:.3f}", fontsize=9)
        ax.axis("off")
    contour_legend(fig, prepared.plan.class_names)
    return save_figure(fig, out)
