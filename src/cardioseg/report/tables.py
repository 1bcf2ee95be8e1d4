"""The report's tables, as plain data for the template: formatted text plus the raw value to sort by.

Numbers are rounded for reading (Dice to 3 decimals, distances and mL to 1-2) but each cell keeps
its unrounded value in ``data-value``, so sorting is exact and blanks sort last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "precision": "precision", "recall": "recall",
                 "accuracy": "accuracy", "hd": "HD", "hd95": "HD95", "assd": "ASSD"}
DISTANCES = ("hd", "hd95", "assd")
PX3_SCALE = 1000.0  # pixel-unit volumes are shown in thousands of px³
UNIT_LABELS = {"mL": "mL", "px^3": "10³ px³", "voxels": "voxels"}
MISSING = "–"


@dataclass(frozen=True)
class Column:
    label: str
    text: bool = False


@dataclass(frozen=True)
class Cell:
    text: str
    value: float | str | None = None
    cls: str = ""


@dataclass
class HtmlTable:
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)


def number(value: Any, digits: int = 3, scale: float = 1.0) -> Cell:
    """A numeric cell; missing values show as an en dash and sort last."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return Cell(MISSING, "")
    value = float(value) / scale
    return Cell(f"{value:.{digits}f}", repr(value))


def text(value: Any, cls: str = "text") -> Cell:
    return Cell("" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value), None, cls)


def volume_scale(unit: str) -> float:
    return PX3_SCALE if unit == "px^3" else 1.0


def metrics_table(metrics: dict[str, list[dict[str, Any]]], distance_unit: str) -> HtmlTable:
    """Mean ± SD (median) per class and metric, raw and post-processed, and the change of the mean."""
    table = HtmlTable([Column("class", True), Column("metric", True), Column("raw"), Column("post"),
                       Column("post − raw (mean)")])
    raw = {(r["class_name"], r["metric"]): r for r in metrics.get("raw", [])}
    for rec in metrics.get("post", []):
        key = (rec["class_name"], rec["metric"])
        label = METRIC_LABELS.get(rec["metric"], rec["metric"]) + (f" [{distance_unit}]" if rec["metric"] in DISTANCES else "")
        before = raw.get(key, {})
        change = None if rec["mean"] is None or before.get("mean") is None else rec["mean"] - before["mean"]
        table.rows.append([text(rec["class_name"]), text(label), _summary_cell(before), _summary_cell(rec),
                           number(change, 4)])
    return table


def _summary_cell(rec: dict[str, Any]) -> Cell:
    if not rec or rec.get("mean") is None:
        return Cell("n/a", "")
    cell = f"{rec['mean']:.4f} ± {rec.get('std') or 0:.4f} ({rec['median']:.4f})"
    if rec.get("n_undefined"):
        cell += f" [{rec['n_undefined']} undefined]"
    return Cell(cell, repr(float(rec["mean"])))


def per_case_table(per_case: pd.DataFrame, distance_unit: str) -> HtmlTable:
    """One row per case and class: identity, QC, Dice raw and post, the other post-processed metrics.

    With QC columns (evaluations since QC), the cases to check come first, the most uncertain
    first among them, and each row shows its flag, uncertainty and reasons.
    """
    wide = per_case.pivot_table(index=["case_id", "class_name"], columns="variant",
                                values=[m for m in METRIC_LABELS if m in per_case], aggfunc="first")
    meta = per_case.drop_duplicates("case_id").set_index("case_id")
    identity = [c for c in ("patient_id", "view", "phase") if c in meta and meta[c].fillna("").astype(str).str.len().any()]
    metrics = [m for m in ("iou", "precision", "recall", "hd95", "assd") if (m, "post") in wide]
    with_qc = "qc_flag" in meta
    table = HtmlTable([Column("case", True), *(Column(c.removesuffix("_id"), True) for c in identity),
                       *([Column("QC", True), Column("uncertainty")] if with_qc else []),
                       Column("class", True), Column("Dice raw"), Column("Dice post"),
                       *(Column(METRIC_LABELS[m] + (f" [{distance_unit}]" if m in DISTANCES else "")) for m in metrics),
                       *([Column("QC reasons", True)] if with_qc else [])])
    keys = list(wide.index)
    if with_qc:
        keys.sort(key=lambda key: qc_order(meta.loc[key[0]]))
    for case_id, class_name in keys:
        row = wide.loc[(case_id, class_name)]
        qc = meta.loc[case_id] if with_qc else None
        table.rows.append([
            text(case_id), *(text(meta.at[case_id, c]) for c in identity),
            *([qc_flag_cell(qc["qc_flag"]), number(qc.get("qc_uncertainty"), 3)] if qc is not None else []),
            text(class_name), number(row.get(("dice", "raw"))), number(row.get(("dice", "post"))),
            *(number(row[(m, "post")], 2 if m in DISTANCES else 3) for m in metrics),
            *([text(qc.get("qc_reasons"), "note")] if qc is not None else []),
        ])
    return table


def qc_order(qc: pd.Series) -> tuple[int, float]:
    """Sort key of a case: flagged first, then the most uncertain (unknown uncertainty last)."""
    uncertainty = qc.get("qc_uncertainty")
    known = uncertainty is not None and not pd.isna(uncertainty)
    return (0 if qc.get("qc_flag") == "check" else 1, -float(uncertainty) if known else math.inf)


def qc_flag_cell(flag: Any) -> Cell:
    """The QC flag, coloured by the stylesheet (``qc-check`` / ``qc-ok``); sorts "check" before "ok"."""
    flag = "" if flag is None or pd.isna(flag) else str(flag)
    return Cell(flag, flag, f"text qc-{flag}" if flag else "text")


def agreement_table(stats: dict[str, dict[str, Any]], units: dict[str, str]) -> HtmlTable:
    """Pearson r, bias, SD, 95% limits of agreement and MAE of each measurement (rows).

    Statistics that are not available (too few pairs, a constant side) read "n/a", with the
    reason in a note column when ``agreement_stats`` gave one.
    """
    with_notes = any(s.get("note") for s in stats.values())
    table = HtmlTable([Column("measurement", True), Column("unit", True), Column("n"), Column("Pearson r"),
                       Column("bias"), Column("SD of differences"), Column("95% limits of agreement", True),
                       Column("MAE"), *([Column("note", True)] if with_notes else [])])
    for name, s in stats.items():
        unit = units.get(name, "")
        scale = volume_scale(unit)
        low, high = number(s.get("loa_lower"), 1, scale), number(s.get("loa_upper"), 1, scale)
        limits = "n/a" if low.text == MISSING else f"{low.text} to {high.text}"
        table.rows.append([text(name), text(UNIT_LABELS.get(unit, unit)), number(s.get("n"), 0),
                           _available(number(s.get("pearson_r"), 3)), number(s.get("bias"), 1, scale),
                           _available(number(s.get("sd_diff"), 1, scale)), text(limits), number(s.get("mae"), 1, scale),
                           *([text(s.get("note"), "note")] if with_notes else [])])
    return table


def _available(cell: Cell) -> Cell:
    """A statistic that could not be computed reads "n/a" (not available), not a blank."""
    return Cell("n/a", "") if cell.text == MISSING else cell


def ef_rows_table(frame: pd.DataFrame) -> HtmlTable:
    """Per patient: EDV, ESV, EF from predicted and reference masks, the Info EF, and notes."""
    unit = str(frame["unit"].iloc[0])
    scale, vol = volume_scale(unit), UNIT_LABELS[unit]
    has_info = frame["ef_info"].notna().any()
    has_quality = "image_quality" in frame and frame["image_quality"].notna().any()
    columns = [Column("patient", True), Column(f"EDV pred [{vol}]"), Column(f"EDV ref [{vol}]"),
               Column(f"ESV pred [{vol}]"), Column(f"ESV ref [{vol}]"), Column("EF pred [%]"), Column("EF ref [%]"),
               Column("EF pred − ref [%]")]
    columns += [Column("EF Info file [%]")] if has_info else []
    columns += [Column("image quality", True)] if has_quality else []
    table = HtmlTable([*columns, Column("notes", True)])
    for _, r in frame.iterrows():
        cells = [text(r["patient_id"]), *(number(r[c], 1, scale) for c in ("edv_pred", "edv_ref", "esv_pred", "esv_ref")),
                 number(r["ef_pred"], 1), number(r["ef_ref"], 1), number(r["ef_error"], 1)]
        cells += [number(r["ef_info"], 1)] if has_info else []
        cells += [text(r["image_quality"])] if has_quality else []
        table.rows.append([*cells, text(r["notes"], "note")])
    return table


def volume_rows_table(frame: pd.DataFrame) -> HtmlTable:
    """Per volume and class: predicted and reference volume, signed, absolute and relative error."""
    unit = str(frame["unit"].iloc[0])
    pred, ref = ("ml_pred", "ml_ref") if unit == "mL" else ("voxels_pred", "voxels_ref")
    digits = 2 if unit == "mL" else 0
    table = HtmlTable([Column("case", True), Column("class", True), Column(f"predicted [{unit}]"),
                       Column(f"reference [{unit}]"), Column(f"error [{unit}]"), Column(f"|error| [{unit}]"),
                       Column("relative error [%]"), Column("notes", True)])
    for _, r in frame.iterrows():
        table.rows.append([text(r["case_id"]), text(r["class_name"]), number(r[pred], digits), number(r[ref], digits),
                           number(r["error"], digits), number(r["abs_error"], digits),
                           number(r["rel_error_pct"], 1), text(r["notes"], "note")])
    return table
