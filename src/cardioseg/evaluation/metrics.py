"""Segmentation metrics for binary masks, computed the way papers report them.

Inputs are binary masks (``bool``, or integers holding only 0 and 1) of equal shape, 2D or 3D
(any dimensionality works), with an optional ``spacing``: the size of one array step along each
axis in mm. With ``spacing=None`` distances are in pixel units; ``units(spacing)`` gives the
label ("mm" or "px") a report should print next to them.

Metrics (keys of ``case_metrics``), with TP/FP/FN/TN counted over voxels:

* ``dice`` = 2TP / (2TP + FP + FN); ``iou`` (Jaccard) = TP / (TP + FP + FN)
* ``precision`` = TP / (TP + FP); ``recall`` (sensitivity) = TP / (TP + FN)
* ``accuracy`` (pixel accuracy) = (TP + TN) / number of voxels
* ``hd`` = Hausdorff distance (maximum surface distance, as in the CAMUS paper)
* ``hd95`` = max of the two *directed* 95th-percentile surface distances (pred -> ref and
  ref -> pred), the definition of MONAI's ``compute_hausdorff_distance(percentile=95)`` and of
  DeepMind's ``surface-distance`` package
* ``assd`` = average symmetric surface distance: the mean of the pooled distances from every
  surface voxel of each mask to the other mask's surface (Heimann et al. 2009; MONAI's
  ``compute_average_surface_distance(symmetric=True)``)

Surface: the foreground voxels that have at least one background neighbour in the
connectivity-1 sense (4-neighbourhood in 2D, 6 in 3D); the space outside the array counts as
background, so foreground on the array border is surface. The distance between two surface
voxels is the Euclidean distance between their centres in physical units
(``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``), so anisotropic spacing
is exact.

Empty masks (a convention, applied the same way everywhere):

* both empty: the prediction is perfect -> dice = iou = precision = recall = 1 and
  hd = hd95 = assd = 0.
* exactly one empty: dice = iou = 0. A ratio whose denominator is zero is undefined and
  reported as NaN: precision is NaN when the prediction is empty (TP + FP = 0) and recall is
  NaN when the reference is empty (TP + FN = 0); the other one is 0. Distances are NaN (there
  is no surface to measure to).

NaN is never dropped silently: ``MetricAccumulator.summary`` reports, per metric, how many
cases were defined (``n``) and how many were undefined (``n_undefined``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from cardioseg.errors import DataError

OVERLAP_METRICS = ("dice", "iou", "precision", "recall", "accuracy")
DISTANCE_METRICS = ("hd", "hd95", "assd")
METRIC_NAMES = OVERLAP_METRICS + DISTANCE_METRICS

Spacing = Sequence[float] | None


def units(spacing: Spacing) -> str:
    """The unit distances are reported in: "mm" with a spacing, "px" (pixel units) without."""
    return "px" if spacing is None else "mm"


def _as_mask(mask: Any, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.size == 0:
        raise DataError(f"{name} mask has no voxels (shape {array.shape})")
    if array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise DataError(
                f"{name} is not a binary mask (values other than 0 and 1); threshold or select a class first"
            )
        array = array.astype(bool)
    return array


def _check_inputs(pred: Any, ref: Any, spacing: Spacing = None) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Binary pred/ref of one shape and a per-axis spacing (unit spacing when None)."""
    pred, ref = _as_mask(pred, "prediction"), _as_mask(ref, "reference")
    if pred.shape != ref.shape:
        raise DataError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if spacing is None:
        return pred, ref, (1.0,) * pred.ndim
    sampling = tuple(float(s) for s in spacing)
    if len(sampling) != pred.ndim or not all(np.isfinite(s) and s > 0 for s in sampling):
        raise DataError(f"spacing {tuple(spacing)} must give one positive size per axis of a {pred.ndim}D mask")
    return pred, ref, sampling


def overlap_metrics(pred: Any, ref: Any) -> dict[str, float]:
    """Dice, IoU, precision, recall and pixel accuracy, following the empty-mask convention."""
    pred, ref, _ = _check_inputs(pred, ref)
    tp = int(np.count_nonzero(pred & ref))
    fp = int(np.count_nonzero(pred & ~ref))
    fn = int(np.count_nonzero(~pred & ref))
    accuracy = 1.0 - (fp + fn) / pred.size
    if tp + fp + fn == 0:
        return {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "accuracy": accuracy}
    return {
        "dice": 2 * tp / (2 * tp + fp + fn),
        "iou": tp / (tp + fp + fn),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "accuracy": accuracy,
    }


def surface(mask: np.ndarray) -> np.ndarray:
    """Foreground voxels with a background face-neighbour (outside the array is background)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def _directed_distances(from_surface: np.ndarray, to_surface: np.ndarray, sampling: tuple[float, ...]) -> np.ndarray:
    return ndimage.distance_transform_edt(~to_surface, sampling=sampling)[from_surface]


def surface_distances(pred: Any, ref: Any, spacing: Spacing = None) -> tuple[np.ndarray, np.ndarray]:
    """Distances pred-surface -> ref-surface and ref-surface -> pred-surface (both masks non-empty).

    Only the bounding box of the union is transformed: all surface voxels lie inside it, so the
    distances are the same as on the full array, at a fraction of the cost for small structures.
    """
    pred, ref, sampling = _check_inputs(pred, ref, spacing)
    if not pred.any() or not ref.any():
        raise DataError("surface distances need two non-empty masks")
    box = ndimage.find_objects((pred | ref).astype(np.uint8))[0]
    pred_surface, ref_surface = surface(pred[box]), surface(ref[box])
    return (
        _directed_distances(pred_surface, ref_surface, sampling),
        _directed_distances(ref_surface, pred_surface, sampling),
    )


def distance_metrics(pred: Any, ref: Any, spacing: Spacing = None) -> dict[str, float]:
    """Hausdorff, HD95 and ASSD in ``units(spacing)``, following the empty-mask convention."""
    pred, ref, _ = _check_inputs(pred, ref, spacing)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return dict.fromkeys(DISTANCE_METRICS, 0.0)
    if has_pred != has_ref:
        return dict.fromkeys(DISTANCE_METRICS, float("nan"))
    to_ref, to_pred = surface_distances(pred, ref, spacing)
    return {
        "hd": float(max(to_ref.max(), to_pred.max())),
        "hd95": float(max(np.percentile(to_ref, 95), np.percentile(to_pred, 95))),
        "assd": float((to_ref.sum() + to_pred.sum()) / (to_ref.size + to_pred.size)),
    }


def case_metrics(pred: Any, ref: Any, spacing: Spacing = None) -> dict[str, float]:
    """Every metric of ``METRIC_NAMES`` for one binary case."""
    return {**overlap_metrics(pred, ref), **distance_metrics(pred, ref, spacing)}


def multiclass_case_metrics(
    pred_labels: Any, ref_labels: Any, class_ids: Mapping[int, str], spacing: Spacing = None
) -> dict[str, dict[str, float]]:
    """Per-class metrics of two label maps: ``{class_name: case_metrics(pred == id, ref == id)}``."""
    pred_labels, ref_labels = np.asarray(pred_labels), np.asarray(ref_labels)
    if pred_labels.shape != ref_labels.shape:
        raise DataError(f"prediction shape {pred_labels.shape} differs from reference shape {ref_labels.shape}")
    return {name: case_metrics(pred_labels == cid, ref_labels == cid, spacing) for cid, name in class_ids.items()}


class MetricAccumulator:
    """Collects per-case (and per-class) metric dicts; reports rows and a NaN-aware summary.

    A metric missing from a row counts as undefined (NaN) for that case, like an empty-mask
    distance, so the summary's ``n_undefined`` accounts for every case that was added.
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str | None]] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, case_id: str, metrics: Mapping[str, float], class_name: str | None = None) -> None:
        """Record one case's metrics (for one class when ``class_name`` is given)."""
        key = (case_id, class_name)
        if key in self._seen:
            raise DataError(f"case {case_id!r}" + (f" class {class_name!r}" if class_name else "") + " was added twice")
        self._seen.add(key)
        self._rows.append({"case_id": case_id, "class_name": class_name, **{k: float(v) for k, v in metrics.items()}})

    def add_classes(self, case_id: str, per_class: Mapping[str, Mapping[str, float]]) -> None:
        """Record the output of ``multiclass_case_metrics`` for one case."""
        for class_name, metrics in per_class.items():
            self.add(case_id, metrics, class_name)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (case, class), in the order they were added."""
        return [dict(row) for row in self._rows]

    def to_dataframe(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows, columns=self._columns())

    def _columns(self) -> list[str]:
        metrics = dict.fromkeys(k for row in self._rows for k in row if k not in ("case_id", "class_name"))
        return ["case_id", "class_name", *metrics]

    def summary(self) -> pd.DataFrame:
        """One row per (class_name, metric): mean, std (sample, ddof=1), median over defined
        cases, ``n`` defined and ``n_undefined`` (NaN) cases."""
        records = []
        for class_name in dict.fromkeys(row["class_name"] for row in self._rows):
            rows = [row for row in self._rows if row["class_name"] == class_name]
            for metric in self._columns()[2:]:
                values = np.array([row.get(metric, np.nan) for row in rows], dtype=float)
                defined = values[~np.isnan(values)]
                records.append(
                    {
                        "class_name": class_name,
                        "metric": metric,
                        "mean": float(defined.mean()) if defined.size else float("nan"),
                        "std": float(defined.std(ddof=1)) if defined.size > 1 else float("nan"),
                        "median": float(np.median(defined)) if defined.size else float("nan"),
                        "n": int(defined.size),
                        "n_undefined": int(values.size - defined.size),
                    }
                )
        return pd.DataFrame(records, columns=["class_name", "metric", "mean", "std", "median", "n", "n_undefined"])
