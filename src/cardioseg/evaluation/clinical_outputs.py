"""Clinical outputs of an evaluation: volume tables, EF tables, agreement statistics and plots.

The adapter between a prepared dataset and ``cardioseg.clinical``, which computes from plain
values only: here the cases are looked up (reference label maps, spacings, view and phase tags,
reader metadata, classes not drawn), the plan says which class is which, and the tables and
figures are written. ``clinical_outputs`` is called by ``cardioseg evaluate`` on the
post-processed predictions at the original resolution. It writes, into the evaluation folder
(names from ``EvaluationFiles``):

* ``clinical_volumes`` + ``bland_altman("volume")``: 3D cases (e.g. left atrium on MRI);
* ``clinical_ef`` + ``bland_altman("ef")`` (and ``bland_altman("ef_info")`` when the CAMUS Info
  files give an EF): echo patients with apical 2CH/4CH views at ED and ES;

and returns a JSON-able summary whose ``notes`` say what could not be computed and why;
``clinical_summary_lines`` turns that summary into the lines of the console summary. Relative
errors are in percent everywhere (``rel_error_pct``, ``mean_rel_error_pct``); agreement statistics
of fewer than three pairs carry a ``note`` instead of a correlation and limits of agreement.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardioseg.artifacts import EvaluationFiles
from cardioseg.clinical.echo import EchoFrame, apical_views, echo_labels, ef_table
from cardioseg.clinical.volume_table import VolumeCase, volume_summary, volume_table, volume_values
from cardioseg.clinical.volumes import agreement_stats
from cardioseg.data.prepared import PreparedDataset
from cardioseg.fileio import write_with
from cardioseg.viz.bland_altman import Paired, plot_bland_altman

UNIT_LABELS = {"mL": "mL", "px^3": "px³", "voxels": "voxels"}


def clinical_outputs(prepared: PreparedDataset, predictions: dict[str, np.ndarray], out_dir: Path) -> dict[str, Any]:
    """Write the clinical tables and figures for ``predictions`` into ``out_dir``; return their summary."""
    files = EvaluationFiles(Path(out_dir))
    _remove_stale(files)
    summary: dict[str, Any] = {"notes": [], "files": []}
    if not predictions:
        summary["notes"].append("no predictions: no clinical index computed")
        return summary
    volumes, notes = prepared_volume_table(prepared, predictions)
    summary["notes"] += notes
    if not volumes.empty:
        summary["volumes"] = _volume_outputs(volumes, files, summary["files"])
    echo, notes = prepared_ef_table(prepared, predictions)
    summary["notes"] += notes
    if not echo.empty:
        summary["ef"] = _ef_outputs(echo, files, summary["files"])
    if "volumes" not in summary and "ef" not in summary and not summary["notes"]:
        summary["notes"].append(
            "no clinical index applies: neither 3D volumes nor echo views (2CH/4CH at ED/ES) among the cases"
        )
    return _json_safe(summary)


def echo_views(prepared: PreparedDataset, case_ids: list[str]) -> dict[str, dict[tuple[str, str], str]]:
    """patient -> {(view, phase): case id} for the 2D cases among ``case_ids`` that are apical views at ED or ES."""
    known = (c for c in case_ids if c in prepared.cases and prepared.cases[c]["ndim"] == 2)
    return apical_views((c, prepared.cases[c]["patient_id"], prepared.cases[c].get("view"),
                         prepared.cases[c].get("phase")) for c in known)


def prepared_volume_table(
    prepared: PreparedDataset, predictions: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, list[str]]:
    """The volume table (``cardioseg.clinical.volume_table``) of the predicted 3D cases, classes named by the plan."""
    notes = []
    unknown = sorted(c for c in predictions if c not in prepared.cases)
    if unknown:
        notes.append(f"predictions for cases the prepared dataset does not hold, skipped: {', '.join(unknown)}")
    cases = [
        VolumeCase(c, prepared.cases[c]["patient_id"], predictions[c], prepared.original_label(c), prepared.spacing(c),
                   frozenset(prepared.unannotated(c)))
        for c in sorted(predictions) if c in prepared.cases and prepared.cases[c]["ndim"] == 3
    ]
    table, more = volume_table(cases, prepared.plan.class_names)
    return table, notes + more


def prepared_ef_table(prepared: PreparedDataset, predictions: dict[str, np.ndarray]) -> tuple[pd.DataFrame, list[str]]:
    """The EF table (``cardioseg.clinical.echo``) of the predicted echo patients, the LV cavity found by its role."""
    views = echo_views(prepared, list(predictions))
    if not views:
        return pd.DataFrame(), []
    labels, reason = echo_labels(prepared.plan)
    if labels is None:
        return pd.DataFrame(), [f"no EF: {reason}"]
    patients = {
        patient: {key: EchoFrame(predictions[c], prepared.original_label(c), prepared.spacing(c),
                                 prepared.cases[c].get("meta") or {}, frozenset(prepared.unannotated(c)))
                  for key, c in frames.items()}
        for patient, frames in views.items()
    }
    table, notes = ef_table(patients, labels)
    return table, ([reason] if reason else []) + notes


def _volume_outputs(frame: pd.DataFrame, files: EvaluationFiles, written: list[str]) -> dict[str, Any]:
    _write_csv(frame, files.clinical_volumes, written)
    unit = str(frame["unit"].iloc[0])
    agreement, panels = {}, []
    for name, group in frame.groupby("class_name", sort=False):
        pred, ref = volume_values(group, "pred"), volume_values(group, "ref")
        agreement[str(name)] = stats = agreement_stats(pred, ref)
        panels.append(Paired(f"{name} volume", UNIT_LABELS[unit], pred, ref, stats, group["case_id"].tolist()))
    n_cases = int(frame["case_id"].nunique())
    _plot(panels, files.bland_altman("volume"), f"Volumes from predicted vs reference masks ({n_cases} cases)", written)
    cases = [{"case_id": str(case), "class_name": str(name), "pred": float(pred), "ref": float(ref)}
             for case, name, pred, ref in zip(frame["case_id"], frame["class_name"], volume_values(frame, "pred"),
                                              volume_values(frame, "ref"), strict=True)]
    return {"unit": unit, "n_cases": n_cases, "per_class": volume_summary(frame), "agreement": agreement,
            "cases": cases}


def _ef_outputs(frame: pd.DataFrame, files: EvaluationFiles, written: list[str]) -> dict[str, Any]:
    _write_csv(frame, files.clinical_ef, written)
    unit = str(frame["unit"].iloc[0])
    names = frame["patient_id"].tolist()
    panels = []
    for key, label in (("edv", "EDV"), ("esv", "ESV"), ("ef", "EF")):
        pred, ref = frame[f"{key}_pred"].to_numpy(float), frame[f"{key}_ref"].to_numpy(float)
        panels.append(Paired(label, UNIT_LABELS[unit] if key != "ef" else "%", pred, ref, agreement_stats(pred, ref),
                             names, "reference masks"))
    agreement = {p.name.lower(): p.stats for p in panels}
    n_ef = agreement["ef"]["n"]
    _plot(panels, files.bland_altman("ef"),
          f"Biplane Simpson from predicted vs reference masks ({n_ef} of {len(frame)} patients)", written)
    summary: dict[str, Any] = {"unit": unit, "n_patients": len(frame), "n_with_ef": n_ef, "agreement": agreement}
    if frame["ef_info"].notna().any():
        info = frame["ef_info"].to_numpy(float)
        info_panels = []
        for column, label in (("ef_pred", "predicted"), ("ef_ref", "reference")):
            ef = frame[column].to_numpy(float)
            info_panels.append(Paired(f"EF ({label} masks)", "%", ef, info, agreement_stats(ef, info), names,
                                      "Info file", label))
        summary["agreement_with_info"] = {"ef_pred": info_panels[0].stats, "ef_ref": info_panels[1].stats}
        _plot(info_panels, files.bland_altman("ef_info"), "EF against the CAMUS Info files", written)
    return summary


MAX_CASE_LINES = 20
"""Per-case volumes printed by `cardioseg evaluate`; the CSV holds them all."""


def clinical_summary_lines(clinical: dict[str, Any]) -> list[str]:
    """Plain-text lines for the console: EF agreement (bias, 95% limits, MAE, n), volumes per class
    (mean absolute error in their unit, mean relative error in %), the files written and the notes.

    ``clinical`` is what ``clinical_outputs`` returns (as stored in the evaluation summary).
    """
    lines = []
    ef = clinical.get("ef")
    if ef:
        lines.append(f"EF (biplane Simpson, {ef['n_with_ef']} of {ef['n_patients']} patients measurable):")
        unit = UNIT_LABELS.get(ef["unit"], ef["unit"])
        for key, label, in_unit in (("ef", "EF", "%"), ("edv", "EDV", unit), ("esv", "ESV", unit)):
            if key in ef["agreement"]:
                lines.append(f"  {label}: {_agreement_text(ef['agreement'][key], in_unit)}")
        for key, label in (("ef_pred", "predicted masks"), ("ef_ref", "reference masks")):
            if key in ef.get("agreement_with_info", {}):
                lines.append(f"  EF of the {label} vs the Info files: "
                             f"{_agreement_text(ef['agreement_with_info'][key], '%')}")
    volumes = clinical.get("volumes")
    if volumes:
        lines.append(f"Volumes ({volumes['n_cases']} volumes, {UNIT_LABELS.get(volumes['unit'], volumes['unit'])}):")
        for name, stats in volumes["per_class"].items():
            unit = UNIT_LABELS.get(stats["unit"], stats["unit"])
            agreement = volumes["agreement"].get(name, {})
            lines.append(f"  {name}: mean |error| {_number(stats['mean_abs_error'])} {unit}, mean relative error "
                         f"{_number(stats['mean_rel_error_pct'])} %, n = {stats['n']}; "
                         f"bias {_number(agreement.get('bias'), signed=True)} {unit}")
        cases = volumes.get("cases", [])
        unit = UNIT_LABELS.get(volumes["unit"], volumes["unit"])
        for case in cases[:MAX_CASE_LINES]:
            lines.append(f"  {case['case_id']} {case['class_name']}: {_number(case['pred'])} {unit} predicted, "
                         f"{_number(case['ref'])} {unit} reference")
        if len(cases) > MAX_CASE_LINES:
            lines.append(f"  ... and {len(cases) - MAX_CASE_LINES} more in clinical_volumes.csv")
    if clinical.get("files"):
        lines.append(f"Clinical files: {', '.join(clinical['files'])}")
    lines += [f"Note: {note}" for note in clinical.get("notes", [])]
    return lines


def _agreement_text(stats: dict[str, Any], unit: str) -> str:
    """'bias +1.2 %, 95% limits -3.4 to 5.6 %, MAE 2.0 %, n = 12', or the reason the limits are missing."""
    limits = (f"95% limits {_number(stats.get('loa_lower'))} to {_number(stats.get('loa_upper'))} {unit}"
              if _known(stats.get("loa_lower")) else "95% limits n/a")
    text = (f"bias {_number(stats.get('bias'), signed=True)} {unit}, {limits}, MAE {_number(stats.get('mae'))} {unit}, "
            f"n = {stats.get('n', 0)}")
    return text + (f" ({stats['note']})" if stats.get("note") else "")


def _known(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _number(value: Any, signed: bool = False) -> str:
    return (f"{value:+.1f}" if signed else f"{value:.1f}") if _known(value) else "n/a"


def _write_csv(frame: pd.DataFrame, path: Path, written: list[str]) -> None:
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))
    written.append(path.name)


def _plot(panels: list[Paired], path: Path, title: str, written: list[str]) -> None:
    if plot_bland_altman(panels, path, title) is not None:
        written.append(path.name)


def _remove_stale(files: EvaluationFiles) -> None:
    """A re-evaluation into the same folder must not leave another run's tables and plots behind."""
    for path in (files.clinical_volumes, files.clinical_ef, *files.root.glob(files.bland_altman_pattern)):
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
