"""Interactive 3D view of a segmented volume: predicted and reference surfaces of every class, in millimetres.

Surfaces come from marching cubes on each class's mask, placed in scanner space through the
affine (or scaled by the voxel spacing), so shapes keep their true proportions. Each class has its
palette colour (``cardioseg.viz.palette``); the reference is a translucent surface, the prediction
an opaque one. The view holds at most ``MAX_POINTS`` surface points in all: a large mask is meshed
on a coarser voxel step until its surface fits its share, so the page stays small whatever the
volume's size. The standalone HTML opens offline: plotly.js is inlined, never fetched from a CDN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from skimage import measure

from cardioseg.fileio import write_text
from cardioseg.viz.overlays import classes_in
from cardioseg.viz.palette import PREDICTION, REFERENCE, hex_colour, legend_names

MAX_POINTS = 12_000  # surface vertices in the whole view, shared by its surfaces
OPACITY = {REFERENCE: 0.35, PREDICTION: 0.85}


def volume_figure(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None, affine: np.ndarray | None, title: str,
    class_names: Mapping[int, str] | None = None,
) -> go.Figure | None:
    """Reference (translucent) and predicted (opaque) surfaces per class; None when both masks are empty.

    ``pred`` and ``ref`` are label maps (a boolean mask is class 1); ``class_names`` (id -> name,
    the plan's) names the legend entries, default the classes present.
    """
    pred, ref = np.asarray(pred).astype(np.uint8), np.asarray(ref).astype(np.uint8)
    present = sorted(set(classes_in(pred)) | set(classes_in(ref)))
    if not present:
        return None
    names = {c: n for c, n in legend_names(class_names, present).items() if c in present}
    box = _bounding_box(np.isin(pred, present) | np.isin(ref, present))
    transform = _transform(spacing, affine, box)
    budget = MAX_POINTS // (2 * len(names))
    fig = go.Figure()
    for class_id, class_name in names.items():
        for source, labels in ((REFERENCE, ref), (PREDICTION, pred)):
            name, crop = f"{class_name} {source}", labels[box] == class_id
            if not crop.any():
                fig.add_trace(go.Scatter3d(x=[], y=[], z=[], name=f"{name} (empty)", mode="markers",
                                           marker={"color": hex_colour(class_id)}))
                continue
            fig.add_trace(_mesh(crop, transform, name, hex_colour(class_id), OPACITY[source], budget))
    unit = "mm" if spacing or affine is not None else "voxels"
    fig.update_layout(
        title={"text": title, "x": 0.02},
        scene={"aspectmode": "data", "xaxis_title": f"x [{unit}]", "yaxis_title": f"y [{unit}]",
               "zaxis_title": f"z [{unit}]", "camera": {"eye": {"x": 1.6, "y": 1.6, "z": 1.0}}},
        legend={"x": 0.02, "y": 0.95},
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        height=520,
    )
    return fig


def _bounding_box(mask: np.ndarray, margin: int = 2) -> tuple[slice, ...]:
    hits = np.argwhere(mask)
    low = np.maximum(hits.min(axis=0) - margin, 0)
    high = np.minimum(hits.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def _transform(spacing: Sequence[float] | None, affine: np.ndarray | None, box: tuple[slice, ...]) -> np.ndarray:
    """4x4 matrix from cropped voxel indices to mm (scanner space with an affine)."""
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    if affine is not None:
        return np.asarray(affine, dtype=float) @ shift
    scale = np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0])
    return scale @ shift


def surface(mask: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (voxel indices) and triangles of the mask's surface, on the finest voxel step giving at most
    ``budget`` vertices (the number of vertices falls with the square of the step)."""
    padded = np.pad(mask, 1).astype(np.float32)  # closes surfaces that touch the crop's edge
    step = 1
    while True:
        verts, faces, _, _ = measure.marching_cubes(padded, level=0.5, step_size=step, allow_degenerate=False)
        if len(verts) <= budget or step >= max(mask.shape):
            return verts - 1.0, faces
        step = max(step + 1, int(np.ceil(step * np.sqrt(len(verts) / budget))))


def _mesh(mask: np.ndarray, transform: np.ndarray, name: str, colour: str, opacity: float, budget: int) -> go.Mesh3d:
    verts, faces = surface(mask, budget)
    points = (np.c_[verts, np.ones(len(verts))] @ transform.T).astype(np.float32)  # float32: far finer than a voxel
    faces = faces.astype(np.uint16 if len(verts) <= np.iinfo(np.uint16).max else np.int32)
    return go.Mesh3d(
        x=points[:, 0], y=points[:, 1], z=points[:, 2], i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
        name=name, color=colour, opacity=opacity, showlegend=True, flatshading=False,
        lighting={"ambient": 0.5, "diffuse": 0.8, "specular": 0.2}, hoverinfo="name",
    )


def write_volume_html(fig: go.Figure, out: Path) -> Path:
    """A standalone HTML file with plotly.js inlined, so it opens without a network."""
    return write_text(out, fig.to_html(full_html=True, include_plotlyjs=True))
