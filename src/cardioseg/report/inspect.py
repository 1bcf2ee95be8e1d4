"""`cardioseg inspect`: what is in a prepared dataset, and a grid of overlays to eyeball it.

Label value ``IGNORE_LABEL`` (255: class unknown, e.g. a Sunnybrook slice without a myocardium
contour) is counted apart, as "unknown": it is neither foreground nor a class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from cardioseg.data.prepared import PreparedDataset
from cardioseg.data.preprocess import ArrayPlanes, Pipeline
from cardioseg.plan import IGNORE_LABEL
from cardioseg.viz.cases import representative_slice
from cardioseg.viz.overlays import label_overlay
from cardioseg.viz.plots import fill_legend, save_figure


def _foreground(labels: np.ndarray) -> np.ndarray:
    return (labels > 0) & (labels != IGNORE_LABEL)


def _grid(prepared: PreparedDataset, out: Path, n: int = 12, seed: int = 0) -> Path:
    """Overlays of samples that have foreground (network-resolution arrays), spread over splits."""
    labels = prepared.labels
    has_fg = np.flatnonzero(_foreground(labels.reshape(len(labels), -1)).any(1))
    pool = has_fg if len(has_fg) else np.arange(len(labels))
    picks = np.sort(np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False))
    cols = 4
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.1 * rows), squeeze=False)
    manifest = prepared.manifest
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, picks):
        ax.imshow(label_overlay(prepared.images[row], prepared.labels[row]))
        record = manifest.iloc[row]
        ax.set_title(f"{record.sample_id} ({record.split})", fontsize=8)
    fill_legend(fig, prepared.plan.class_names)
    return save_figure(fig, out)


def _steps(prepared: PreparedDataset, out: Path, n: int = 3, seed: int = 0) -> Path:
    """What preprocessing does to a few cases: each step of the plan in turn (CLAHE before and after, the crop),
    from the image as read to the network input; a volume shows its slice of largest reference area."""
    cases = [c for c, info in prepared.cases.items() if info.get("has_label", True)] or list(prepared.cases)
    picks = sorted(np.random.default_rng(seed).choice(len(cases), size=min(n, len(cases)), replace=False))
    pipeline = Pipeline(prepared.preprocess)  # the originals are stored oriented already
    rows = []
    for i in picks:
        case_id = cases[i]
        image = prepared.original_image(case_id)
        index = 0
        if image.ndim == 3:
            axis = prepared.cases[case_id]["slice_axis"]
            index = representative_slice(prepared.original_label(case_id), axis)
            rows.append((case_id, pipeline.fit(ArrayPlanes(image, axis), keep=False).stages(index)))
        else:
            rows.append((case_id, pipeline.fit(ArrayPlanes(image)).stages(0)))
    n_cols = max(len(stages) for _, stages in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.6 * n_cols, 2.7 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (case_id, stages) in enumerate(rows):
        for c, (name, plane) in enumerate(stages):
            axes[r, c].imshow(plane, cmap="gray")
            axes[r, c].set_title(f"{name}\n{plane.shape[0]}x{plane.shape[1]}" if r == 0 else
                                 f"{plane.shape[0]}x{plane.shape[1]}", fontsize=8)
        axes[r, 0].text(-0.05, 0.5, case_id, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=8)
    fig.suptitle(f"preprocessing: {' -> '.join(name for name, _ in rows[0][1])}", fontsize=9)
    return save_figure(fig, out)


def inspect_dataset(root: Path, out: Path | None = None) -> dict[str, Any]:
    """Counts per split, original sizes, spacings and label fractions, and the overlay grid (default
    ``PreparedFiles.inspect_overlays``)."""
    prepared = PreparedDataset(root)
    manifest = prepared.manifest
    labels = prepared.labels
    splits = []
    for split in ("train", "val", "test"):
        rows = prepared.indices(split)
        fg = float(_foreground(labels[rows]).mean() * 100) if len(rows) else 0.0
        splits.append({"split": split, "patients": int(manifest.loc[rows, "patient_id"].nunique()),
                       "samples": len(rows), "foreground_pct": fg})
    counts = np.bincount(np.asarray(labels).ravel(), minlength=max(prepared.class_ids) + 1)
    names = {**prepared.class_names, IGNORE_LABEL: f"unknown ({IGNORE_LABEL})"}
    sizes = manifest.groupby(["orig_h", "orig_w"]).size()
    spacing = manifest["spacing"].replace("", "unknown (pixel units)").value_counts()
    return {
        "layout": prepared.plan.layout,
        "splits": splits,
        "original_sizes": {f"{h}x{w}": int(n) for (h, w), n in sizes.items()},
        "spacing": {str(k): int(v) for k, v in spacing.head(5).items()},
        "label_fractions": {names.get(i, str(i)): f"{100 * c / counts.sum():.2f}%" for i, c in enumerate(counts) if c},
        "grid": _grid(prepared, out or prepared.files.inspect_overlays),
        "steps": _steps(prepared, (out or prepared.files.inspect_overlays).with_name(
            prepared.files.inspect_steps.name)),
    }
