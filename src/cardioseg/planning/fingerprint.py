"""What a planner needs to know of a dataset, read once from a prepared dataset's originals.

nnU-Net's "dataset fingerprint": image sizes and spacing, intensity character, where and how large the
foreground is, how many classes, 2D or 3D, how much data. Every figure is a median or a union over the
training cases, so one odd case moves nothing but the crop window (which only ever grows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cardioseg.config import PreprocessConfig
from cardioseg.data.prepared import PreparedDataset
from cardioseg.data.preprocess import ArrayPlanes, Pipeline
from cardioseg.errors import DataError
from cardioseg.plan import IGNORE_LABEL

Window = tuple[float, float, float, float]


@dataclass(frozen=True)
class Fingerprint:
    is_3d: bool
    n_classes: int
    """foreground classes"""
    n_train_cases: int
    n_train_planes: int
    """what one epoch of 2D training sees: images, or the slices of the training volumes"""
    n_val_planes: int
    plane_shape: tuple[int, int]
    """median in-plane size of the originals, (rows, columns)"""
    spacing_mm: tuple[float, float] | None
    """median in-plane spacing, when every training case has one"""
    eight_bit: bool
    """every image holds integers in 0..255 (echo, PNG exports): min-max keeps its contrast"""
    tail_ratio: float
    """median of (max - p99.5) / (p99.5 - p0.5): above about 0.2 a few outlier voxels would squash min-max"""
    foreground_fraction: float
    """median fraction of a plane covered by foreground, over the planes that hold some"""
    foreground_planes: float
    """fraction of training planes that hold foreground (1 for 2D images with labels everywhere)"""
    window: Window
    """union of the foreground boxes, as (top, bottom, left, right) fractions of each case's region of interest
    (the box of its largest bright region, which is what the roi crop finds again at prediction time)"""
    region_shape: tuple[int, int]
    """median size of that region of interest, in original pixels"""
    slice_mm: float | None = None
    """volumes: median distance between neighbouring planes, when every training volume has a spacing"""
    foreground_depth: float = 1.0
    """volumes: median number of planes a training volume's foreground spans (1 for 2D images)"""

    def as_dict(self) -> dict[str, object]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


REGION = PreprocessConfig(normalize="minmax", crop="roi", size=(64, 64))
"""The roi crop with its whole window: the box the window of a planned roi crop is a fraction of."""


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _planes(volume: np.ndarray, axis: int) -> np.ndarray:
    return volume[None] if volume.ndim == 2 else np.moveaxis(volume, axis, 0)


def fingerprint(prepared: PreparedDataset, max_cases: int = 400, seed: int = 0) -> Fingerprint:
    """Read the training split's originals (up to ``max_cases`` of them, drawn at random) into a fingerprint."""
    rows = prepared.indices("train")
    if not len(rows):
        raise DataError("no training split: nothing to plan from", prepared.root)
    case_ids = list(dict.fromkeys(prepared.manifest["case_id"].to_numpy()[rows].tolist()))
    labelled = [c for c in case_ids if prepared.cases[c].get("has_label", True)]
    if not labelled:
        raise DataError("no labelled training case: nothing to plan from", prepared.root)
    if len(labelled) > max_cases:
        picked = np.random.default_rng(seed).choice(len(labelled), size=max_cases, replace=False)
        labelled = [labelled[i] for i in sorted(picked)]
    region_pipeline = Pipeline(REGION)
    shapes, regions, tails, fractions, spacings, slice_gaps, depths = [], [], [], [], [], [], []
    eight_bit, planes_total, planes_with = True, 0, 0
    top, bottom, left, right = 1.0, 0.0, 1.0, 0.0
    for case_id in labelled:
        image, label = prepared.original_image(case_id), prepared.original_label(case_id)
        axis = prepared.cases[case_id].get("slice_axis")
        axis = 2 if axis is None else axis  # 2D images: ArrayPlanes ignores it
        known = (label > 0) & (label != IGNORE_LABEL)
        label_planes = _planes(known, axis)
        shapes.append(label_planes.shape[1:])
        planes_total += len(label_planes)
        per_plane = label_planes.reshape(len(label_planes), -1).mean(1)
        planes_with += int((per_plane > 0).sum())
        holding = np.flatnonzero(per_plane > 0)
        if image.ndim == 3 and len(holding):
            depths.append(int(holding[-1] - holding[0] + 1))
        fractions.extend(per_plane[per_plane > 0].tolist())
        finite = image[np.isfinite(image)] if image.dtype.kind == "f" else image
        low, p_low, p_high, high = (float(v) for v in np.percentile(finite, (0, 0.5, 99.5, 100)))
        tails.append((high - p_high) / max(p_high - p_low, 1e-6))
        eight_bit &= low >= 0 and high <= 255 and bool(np.all(np.mod(finite[:: max(1, finite.size // 4096)], 1) == 0))
        if spacing := prepared.spacing(case_id):
            spacings.append(tuple(spacing[:2]) if image.ndim == 2 else
                            tuple(s for i, s in enumerate(spacing) if i != axis))
            if image.ndim == 3:
                slice_gaps.append(float(spacing[axis]))
        region = region_pipeline.fit(ArrayPlanes(image, axis), keep=False).box
        foreground = _box(label_planes.any(0))
        if foreground is None:
            continue
        ry0, ry1, rx0, rx1 = region
        height, width = max(ry1 - ry0, 1), max(rx1 - rx0, 1)
        regions.append((height, width))
        top, bottom = min(top, (foreground[0] - ry0) / height), max(bottom, (foreground[1] - ry0) / height)
        left, right = min(left, (foreground[2] - rx0) / width), max(right, (foreground[3] - rx0) / width)
    if not fractions:
        raise DataError("no foreground in any training label: nothing to plan from", prepared.root)
    return Fingerprint(
        is_3d=prepared.is_3d,
        n_classes=len(prepared.plan.foreground),
        n_train_cases=len(case_ids),
        n_train_planes=len(rows),
        n_val_planes=len(prepared.indices("val")),
        plane_shape=tuple(int(v) for v in np.median(np.array(shapes), axis=0)),  # type: ignore[arg-type]
        spacing_mm=(tuple(float(v) for v in np.median(np.array(spacings), axis=0))  # type: ignore[arg-type]
                    if spacings and len(spacings) == len(labelled) else None),
        eight_bit=eight_bit,
        tail_ratio=round(float(np.median(tails)), 4),
        foreground_fraction=round(float(np.median(fractions)), 5),
        foreground_planes=round(planes_with / max(planes_total, 1), 4),
        window=tuple(round(float(np.clip(v, 0, 1)), 4) for v in (top, bottom, left, right)),  # type: ignore[arg-type]
        region_shape=tuple(int(v) for v in np.median(np.array(regions), axis=0)),  # type: ignore[arg-type]
        slice_mm=float(np.median(slice_gaps)) if slice_gaps and len(slice_gaps) == len(labelled) else None,
        foreground_depth=float(np.median(depths)) if depths else 1.0,
    )
