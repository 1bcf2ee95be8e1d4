"""Interactive 3D view of a segmented volume: predicted and reference surfaces, in millimetres.

Surfaces come from marching cubes on each mask, placed in scanner space through the affine
(or scaled by the voxel spacing), so shapes keep their true proportions. The HTML opens offline:
plotly.js is inlined, never fetched from a CDN.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from skimage import measure

from cardioseg.fileio import write_text

REF_COLOUR = "rgb(0,220,90)"    # the green of the reference contours
PRED_COLOUR = "rgb(255,200,0)"  # the amber of the predicted contours
MAX_VOXELS_FULL_DETAIL = 64**3  # larger masks are meshed every other voxel: the file stays small


def volume_figure(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None, affine: np.ndarray | None, title: str
) -> go.Figure | None:
    """Reference (translucent green) and predicted (amber) surfaces; None when both masks are empty."""
    pred, ref = np.asarray(pred) > 0, np.asarray(ref) > 0
    if not (pred.any() or ref.any()):
        return None
    box = _bounding_box(pred | ref)
    transform = _transform(spacing, affine, box)
    fig = go.Figure()
    for mask, name, colour, opacity in ((ref, "reference", REF_COLOUR, 0.45), (pred, "predicted", PRED_COLOUR, 0.6)):
        crop = mask[box]
        if not crop.any():
            name += " (empty)"
            fig.add_trace(go.Scatter3d(x=[], y=[], z=[], name=name, mode="markers", marker={"color": colour}))
            continue
        fig.add_trace(_mesh(crop, transform, name, colour, opacity))
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


def _mesh(mask: np.ndarray, transform: np.ndarray, name: str, colour: str, opacity: float) -> go.Mesh3d:
    step = 1 if mask.size <= MAX_VOXELS_FULL_DETAIL else 2
    padded = np.pad(mask, 1).astype(np.float32)  # closes surfaces that touch the crop's edge
    verts, faces, _, _ = measure.marching_cubes(padded, level=0.5, step_size=step, allow_degenerate=False)
    points = np.c_[verts - 1.0, np.ones(len(verts))] @ transform.T
    return go.Mesh3d(
        x=points[:, 0].round(2), y=points[:, 1].round(2), z=points[:, 2].round(2),
        i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
        name=name, color=colour, opacity=opacity, showlegend=True, flatshading=False,
        lighting={"ambient": 0.5, "diffuse": 0.8, "specular": 0.2}, hoverinfo="name",
    )


def write_volume_html(fig: go.Figure, out: Path) -> Path:
    """A standalone HTML file with plotly.js inlined, so it opens without a network."""
    return write_text(out, fig.to_html(full_html=True, include_plotlyjs=True))
