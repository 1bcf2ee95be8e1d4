"""A figure of every evaluated case, for a reader who checks them all (the thesis shows every test image).

Each 2D image gets one overlay; each volume one overlay per slice that holds a reference or predicted contour
(in display orientation), and an interactive 3D view of its surfaces. Colours and line styles are the
project's palette: a colour per class, the reference solid and the prediction dashed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cardioseg.data.prepared import PreparedDataset
from cardioseg.fileio import safe_name, write_png
from cardioseg.viz.frames import grey_levels, overlay_frame
from cardioseg.viz.slices import display_spacing, volume_slice
from cardioseg.viz.volume3d import volume_figure, write_volume_html


@dataclass
class EveryCase:
    """What was written: overlay PNGs and 3D views (HTML), by case."""

    overlays: dict[str, list[Path]] = field(default_factory=dict)
    views: dict[str, Path] = field(default_factory=dict)

    @property
    def n_overlays(self) -> int:
        return sum(len(paths) for paths in self.overlays.values())


def write_every_case(prepared: PreparedDataset, predictions: Mapping[str, np.ndarray], scores: Mapping[str, float],
                     overlays_dir: Path, view_path: Callable[[str], Path]) -> EveryCase:
    """Overlays of every case into ``overlays_dir`` and a 3D view of every volume at ``view_path(case stem)``;
    ``scores`` (case -> Dice) goes into the captions."""
    written = EveryCase()
    names = prepared.plan.class_names
    for case_id in sorted(predictions):
        pred, ref, image = predictions[case_id], prepared.original_label(case_id), prepared.original_image(case_id)
        stem, window = safe_name(case_id), grey_levels(image)
        dice = f"Dice {scores[case_id]:.3f}" if case_id in scores else "no Dice"
        if image.ndim == 2:
            frame = overlay_frame(image, pred, ref, window, f"{case_id}  {dice}", prepared.spacing(case_id),
                                  class_names=names)
            written.overlays[case_id] = [write_png(overlays_dir / f"{stem}.png", frame)]
            continue
        info = prepared.cases[case_id]
        axis, affine = info["slice_axis"], info.get("affine")
        spacing = display_spacing(prepared.spacing(case_id), axis, affine)
        drawn = np.flatnonzero(np.moveaxis((pred > 0) | (ref > 0), axis, 0).reshape(pred.shape[axis], -1).any(axis=1))
        paths = []
        for k in drawn:
            planes = (volume_slice(a, int(k), axis, affine) for a in (image, pred, ref))
            frame = overlay_frame(*planes, window, f"{case_id} slice {k + 1}/{pred.shape[axis]}  (volume {dice})",
                                  spacing, class_names=names)
            paths.append(write_png(overlays_dir / stem / f"slice_{k + 1:03d}.png", frame))
        written.overlays[case_id] = paths
        fig = volume_figure(pred, ref, prepared.spacing(case_id), np.asarray(affine) if affine else None,
                            f"{case_id} ({dice})", names)
        if fig is not None:
            written.views[case_id] = write_volume_html(fig, view_path(stem))
    return written
