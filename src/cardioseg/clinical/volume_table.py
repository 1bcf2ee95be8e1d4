"""Volumes of 3D segmentations (e.g. the left atrium on MRI), predicted vs reference, per case and class.

Every volume is reported, in mL from the voxel spacing when every case has one, else all as voxel
counts (labelled so). Empty masks give a row with a note rather than a misleading ratio; a class
the annotators did not draw on a case has no reference volume, so no row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cardioseg.clinical.volumes import mask_volume, volume_agreement


@dataclass(frozen=True)
class VolumeCase:
    """One 3D case: predicted and reference label maps at the original resolution, and its voxel size."""

    case_id: str
    patient_id: str
    pred: np.ndarray
    ref: np.ndarray
    spacing: tuple[float, ...] | None
    unannotated: frozenset[int] = frozenset()
    """Classes not drawn on the reference of this case."""


def volume_table(cases: Sequence[VolumeCase], class_names: Mapping[int, str]) -> tuple[pd.DataFrame, list[str]]:
    """One row per case and foreground class (``class_names``: id -> name), and the run-level notes."""
    rows, notes = [], []
    with_mm = all(case.spacing for case in cases)
    if cases and not with_mm:
        notes.append("voxel spacing unknown for some volumes: all volumes reported in voxels, not mL")
    for case in cases:
        if case.pred.shape != case.ref.shape:
            notes.append(f"{case.case_id}: prediction shape {case.pred.shape} differs from the reference's "
                         f"{case.ref.shape}; skipped")
            continue
        for class_id, name in class_names.items():
            if class_id in case.unannotated:
                notes.append(f"{case.case_id}: {name} is not drawn on the reference, so it has no volume row")
                continue
            rows.append({"case_id": case.case_id, "patient_id": case.patient_id, "class_name": name,
                         **volume_row(case.pred == class_id, case.ref == class_id, case.spacing if with_mm else None)})
    return pd.DataFrame(rows), notes


def volume_row(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...] | None) -> dict[str, object]:
    """Predicted and reference volume (voxels, mm³, mL) with the signed and absolute error in ``unit`` (mL when
    the spacing is known, else voxels) and the relative error in percent (``rel_error_pct``)."""
    p, r = mask_volume(pred, spacing), mask_volume(ref, spacing)
    notes = []
    if r.voxels == 0:
        notes.append("reference mask is empty: relative error undefined")
    if p.voxels == 0:
        notes.append("predicted mask is empty")
    return {
        "unit": r.unit,
        "voxels_pred": p.voxels,
        "voxels_ref": r.voxels,
        "mm3_pred": p.mm3,
        "mm3_ref": r.mm3,
        "ml_pred": p.ml,
        "ml_ref": r.ml,
        **volume_agreement(p.value, r.value),
        "notes": "; ".join(notes),
    }


def volume_values(frame: pd.DataFrame, side: str) -> np.ndarray:
    """The ``side`` ("pred" or "ref") volumes of a table in its unit: mL, or voxels without spacing."""
    column = f"ml_{side}" if (frame["unit"] == "mL").all() else f"voxels_{side}"
    return frame[column].to_numpy(dtype=float)


def volume_summary(frame: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Per class: unit, count, mean/max absolute error and mean relative error (in %)."""
    out = {}
    for name, group in frame.groupby("class_name", sort=False):
        out[str(name)] = {
            "unit": str(group["unit"].iloc[0]),
            "n": len(group),
            "mean_abs_error": float(group["abs_error"].mean()),
            "max_abs_error": float(group["abs_error"].max()),
            "mean_rel_error_pct": float(group["rel_error_pct"].mean()),
        }
    return out
