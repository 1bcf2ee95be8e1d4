"""Volumes of 3D segmentations (e.g. the left atrium on MRI), predicted vs reference, per case and class.

Every test volume is reported, in mL from the voxel spacing when it is known, else as voxel
counts (labelled so). Empty masks give a row with a note rather than a misleading ratio.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cardioseg.clinical.volumes import mask_volume, volume_agreement
from cardioseg.data.prepared import PreparedDataset


def volume_table(prepared: PreparedDataset, predictions: dict[str, np.ndarray]) -> tuple[pd.DataFrame, list[str]]:
    """One row per 3D case and foreground class, and the run-level notes."""
    names = {c: n for c, n in prepared.class_names.items() if c != 0}
    rows, notes = [], []
    unknown = sorted(c for c in predictions if c not in prepared.cases)
    if unknown:
        notes.append(f"predictions for cases the prepared dataset does not hold, skipped: {', '.join(unknown)}")
    volumes = [c for c in sorted(predictions) if c in prepared.cases and prepared.cases[c]["ndim"] == 3]
    with_mm = all(prepared.spacing(c) for c in volumes)
    if volumes and not with_mm:
        notes.append("voxel spacing unknown for some volumes: all volumes reported in voxels, not mL")
    for case_id in volumes:
        info = prepared.cases[case_id]
        pred, ref = predictions[case_id], prepared.original_label(case_id)
        if pred.shape != ref.shape:
            notes.append(f"{case_id}: prediction shape {pred.shape} differs from the reference's {ref.shape}; skipped")
            continue
        spacing = prepared.spacing(case_id) if with_mm else None
        for class_id, name in names.items():
            rows.append({"case_id": case_id, "patient_id": info["patient_id"], "class_name": name,
                         **volume_row(pred == class_id, ref == class_id, spacing)})
    return pd.DataFrame(rows), notes


def volume_row(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...] | None) -> dict[str, object]:
    """Predicted and reference volume (voxels, mm³, mL) with the signed, absolute and relative error in
    ``unit`` (mL when the spacing is known, else voxels)."""
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
            "mean_rel_error_pct": float(100 * group["rel_error"].mean()),
        }
    return out

