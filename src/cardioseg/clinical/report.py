"""Clinical outputs of an evaluation: volume tables, EF tables, agreement statistics and plots.

``clinical_outputs`` is called by ``cardioseg evaluate`` on the post-processed predictions at
the original resolution. It writes, into the evaluation folder:

* ``clinical_volumes.csv`` + ``bland_altman_volume.png``: 3D cases (e.g. left atrium on MRI);
* ``clinical_ef.csv`` + ``bland_altman_ef.png`` (and ``bland_altman_ef_info.png`` when the
  CAMUS Info files give an EF): echo patients with apical 2CH/4CH views at ED and ES;

and returns a JSON-able summary whose ``notes`` say what could not be computed and why.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardioseg.clinical.echo import ef_table
from cardioseg.clinical.volumes import agreement_stats
from cardioseg.clinical.volumetry import volume_summary, volume_table, volume_values
from cardioseg.data.prepared import PreparedDataset
from cardioseg.fileio import write_with
from cardioseg.viz.bland_altman import Paired, plot_bland_altman

VOLUMES_CSV = "clinical_volumes.csv"
EF_CSV = "clinical_ef.csv"
UNIT_LABELS = {"mL": "mL", "px^3": "px³", "voxels": "voxels"}


def clinical_outputs(prepared: PreparedDataset, predictions: dict[str, np.ndarray], out_dir: Path) -> dict[str, Any]:
    """Write the clinical tables and figures for ``predictions`` into ``out_dir``; return their summary."""
    out_dir = Path(out_dir)
    _remove_stale(out_dir)
    summary: dict[str, Any] = {"notes": [], "files": []}
    if not predictions:
        summary["notes"].append("no predictions: no clinical index computed")
        return summary
    volumes, notes = volume_table(prepared, predictions)
    summary["notes"] += notes
    if not volumes.empty:
        summary["volumes"] = _volume_outputs(volumes, out_dir, summary["files"])
    echo, notes = ef_table(prepared, predictions)
    summary["notes"] += notes
    if not echo.empty:
        summary["ef"] = _ef_outputs(echo, out_dir, summary["files"])
    if "volumes" not in summary and "ef" not in summary and not summary["notes"]:
        summary["notes"].append(
            "no clinical index applies: neither 3D volumes nor echo views (2CH/4CH at ED/ES) among the cases"
        )
    return _json_safe(summary)


def _volume_outputs(frame: pd.DataFrame, out_dir: Path, files: list[str]) -> dict[str, Any]:
    _write_csv(frame, out_dir / VOLUMES_CSV, files)
    unit = str(frame["unit"].iloc[0])
    agreement, panels = {}, []
    for name, group in frame.groupby("class_name", sort=False):
        pred, ref = volume_values(group, "pred"), volume_values(group, "ref")
        agreement[str(name)] = agreement_stats(pred, ref)
        panels.append(Paired(f"{name} volume", UNIT_LABELS[unit], pred, ref, group["case_id"].tolist()))
    n_cases = int(frame["case_id"].nunique())
    _plot(panels, out_dir / "bland_altman_volume.png", f"Volumes from predicted vs reference masks ({n_cases} cases)", files)
    return {"unit": unit, "n_cases": n_cases, "per_class": volume_summary(frame),
            "agreement": agreement}


def _ef_outputs(frame: pd.DataFrame, out_dir: Path, files: list[str]) -> dict[str, Any]:
    _write_csv(frame, out_dir / EF_CSV, files)
    unit = str(frame["unit"].iloc[0])
    names = frame["patient_id"].tolist()
    panels = [
        Paired(label, UNIT_LABELS[unit] if key != "ef" else "%", frame[f"{key}_pred"].to_numpy(float),
               frame[f"{key}_ref"].to_numpy(float), names, "reference masks")
        for key, label in (("edv", "EDV"), ("esv", "ESV"), ("ef", "EF"))
    ]
    agreement = {p.name.lower(): agreement_stats(p.pred, p.ref) for p in panels}
    n_ef = agreement["ef"]["n"]
    _plot(panels, out_dir / "bland_altman_ef.png",
          f"Biplane Simpson from predicted vs reference masks ({n_ef} of {len(frame)} patients)", files)
    summary: dict[str, Any] = {"unit": unit, "n_patients": len(frame), "n_with_ef": n_ef, "agreement": agreement}
    if frame["ef_info"].notna().any():
        info = frame["ef_info"].to_numpy(float)
        info_panels = [
            Paired(f"EF ({label} masks)", "%", frame[column].to_numpy(float), info, names, "Info file", label)
            for column, label in (("ef_pred", "predicted"), ("ef_ref", "reference"))
        ]
        summary["agreement_with_info"] = {
            "ef_pred": agreement_stats(info_panels[0].pred, info),
            "ef_ref": agreement_stats(info_panels[1].pred, info),
        }
        _plot(info_panels, out_dir / "bland_altman_ef_info.png", "EF against the CAMUS Info files", files)
    return summary


def _write_csv(frame: pd.DataFrame, path: Path, files: list[str]) -> None:
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))
    files.append(path.name)


def _plot(panels: list[Paired], path: Path, title: str, files: list[str]) -> None:
    if plot_bland_altman(panels, path, title) is not None:
        files.append(path.name)


def _remove_stale(out_dir: Path) -> None:
    """A re-evaluation into the same folder must not leave another run's tables and plots behind."""
    for path in (out_dir / VOLUMES_CSV, out_dir / EF_CSV, *out_dir.glob("bland_altman_*.png")):
        path.unlink(missing_ok=True)


def _json_safe(value: Any) -> Any:
    """NaN -> None (JSON has no NaN), numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
