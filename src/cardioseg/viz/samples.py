"""Figures of the same cases side by side: image, reference, and one or more predictions (filled label maps).

One figure serves three needs of the studies: random test samples (image / reference /
prediction), a model comparison on the same cases (U-Net / ResUNet / improved ResUNet), and
the per-epoch images a training run can write. Rows are cases; columns are the image, then
each labelled map given (the reference, the predictions) as a translucent fill over the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from cardioseg.viz.frames import grey_levels
from cardioseg.viz.overlays import label_overlay
from cardioseg.viz.plots import fill_legend, save_figure


def _display(image: np.ndarray) -> np.ndarray:
    low, high = grey_levels(image)
    return (np.clip((image - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def plot_case_grid(images: Sequence[np.ndarray], columns: Mapping[str, Sequence[np.ndarray]],
                   class_names: Mapping[int, str], out: Path, row_titles: Sequence[str] | None = None,
                   title: str | None = None) -> Path:
    """One row per image: the image, then each column's label map of it (e.g. "reference", "U-Net", ...)."""
    for name, maps in columns.items():
        if len(maps) != len(images):
            raise ValueError(f"column {name!r} has {len(maps)} label maps for {len(images)} images")
    n_cols = 1 + len(columns)
    fig, axes = plt.subplots(len(images), n_cols, figsize=(2.4 * n_cols, 2.4 * len(images) + 0.6), squeeze=False)
    for row, image in enumerate(images):
        shown = _display(np.asarray(image, np.float32))
        axes[row, 0].imshow(shown, cmap="gray")
        axes[row, 0].set_ylabel(row_titles[row] if row_titles else "", fontsize=7)
        for col, maps in enumerate(columns.values(), start=1):
            axes[row, col].imshow(label_overlay(shown, np.asarray(maps[row])))
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    for col, name in enumerate(["image", *columns]):
        axes[0, col].set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fill_legend(fig, {c: n for c, n in class_names.items() if c != 0})
    return save_figure(fig, out)
