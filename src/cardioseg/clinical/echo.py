"""Echo (CAMUS-style) clinical indices per patient: EDV, ESV by biplane Simpson and EF.

The same computation runs on the predicted and on the reference label maps, so any difference
comes from the segmentation alone; the EF recorded in the CAMUS ``Info_*.cfg`` files (case meta),
when present, is a third, independent reference. Anything that stops a number (a view without
its partner, an empty mask, unknown labels) becomes a note on that patient, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cardioseg.clinical.simpson import biplane_volume, ejection_fraction
from cardioseg.clinical.volumes import ClinicalError
from cardioseg.data.prepared import PreparedDataset

VIEWS = ("2CH", "4CH")
PHASES = ("ED", "ES")
CAMUS_LAYOUTS = ("camus", "camus_png")
CAMUS_CAVITY, CAMUS_ATRIUM = 1, 3  # source label ids of the LV blood pool and the left atrium
INFO_KEYS = {"ef_info": ("EF", "LVef"), "edv_info": ("LVedv",), "esv_info": ("LVesv",)}

LabelSource = Callable[[str], np.ndarray]


@dataclass(frozen=True)
class EchoLabels:
    """Class ids of the LV cavity and (when segmented) the left atrium in the label maps."""

    cavity: int
    atrium: int | None


def echo_labels(prepared: PreparedDataset) -> tuple[EchoLabels | None, str]:
    """Which class is the LV cavity; (None, reason) when the label maps do not say it unambiguously."""
    raw = prepared.info.get("labels")
    foreground = [c for c in prepared.class_ids if c != 0]
    if prepared.info.get("layout") not in CAMUS_LAYOUTS:
        if len(foreground) == 1:
            return EchoLabels(foreground[0], None), f"layout {prepared.info.get('layout')}: class {foreground[0]} taken as the LV cavity"
        return None, "not a CAMUS layout and more than one class: which one is the LV cavity is unknown"
    mapping = {int(k): int(v) for k, v in raw.items()} if raw else {c: c for c in foreground}
    cavity = mapping.get(CAMUS_CAVITY, 0)
    if cavity == 0:
        return None, "the LV cavity (CAMUS label 1) was not kept in the prepared labels"
    merged = sorted(source for source, target in mapping.items() if target == cavity and source != CAMUS_CAVITY)
    if merged:
        return None, f"class {cavity} merges the LV cavity with CAMUS label(s) {merged}: its area is not the LV's"
    atrium = mapping.get(CAMUS_ATRIUM) or None
    return EchoLabels(cavity, atrium), ""


def echo_frames(prepared: PreparedDataset, case_ids: list[str]) -> dict[str, dict[tuple[str, str], str]]:
    """patient -> {(view, phase): case id} for the 2D cases of apical views at ED or ES."""
    frames: dict[str, dict[tuple[str, str], str]] = {}
    for case_id in sorted(case_ids):
        info = prepared.cases.get(case_id)
        if info and info["ndim"] == 2 and info.get("view") in VIEWS and info.get("phase") in PHASES:
            frames.setdefault(info["patient_id"], {})[(info["view"], info["phase"])] = case_id
    return frames


def ef_table(prepared: PreparedDataset, predictions: dict[str, np.ndarray]) -> tuple[pd.DataFrame, list[str]]:
    """One row per patient (volumes in ``unit``, EF in %) and the run-level notes."""
    frames = echo_frames(prepared, list(predictions))
    if not frames:
        return pd.DataFrame(), []
    labels, reason = echo_labels(prepared)
    if labels is None:
        return pd.DataFrame(), [f"no EF: {reason}"]
    notes = [reason] if reason else []
    case_ids = [c for views in frames.values() for c in views.values()]
    with_mm = all(prepared.spacing(c) for c in case_ids)
    if not with_mm:
        notes.append("pixel spacing unknown: volumes in pixel units (px³), comparable only within this table; EF holds")
    rows = []
    for patient, views in frames.items():
        spacing = {key: (prepared.spacing(c) if with_mm else None) for key, c in views.items()}
        patient_notes: list[str] = []
        pred = _patient_volumes(views, spacing, predictions.__getitem__, labels, "pred", patient_notes)
        ref = _patient_volumes(views, spacing, prepared.original_label, labels, "ref", patient_notes)
        rows.append({"patient_id": patient, "unit": "mL" if with_mm else "px^3", **pred, **ref,
                     "ef_error": pred["ef_pred"] - ref["ef_ref"], **_info_values(prepared, views.values(), patient_notes),
                     "notes": "; ".join(patient_notes)})
    return pd.DataFrame(rows), notes


def _patient_volumes(
    views: dict[tuple[str, str], str], spacing: dict[tuple[str, str], tuple[float, ...] | None],
    lookup: LabelSource, labels: EchoLabels, source: str, notes: list[str],
) -> dict[str, float]:
    """EDV, ESV and EF of one patient from one source of label maps; NaN (and a note) where impossible."""
    who = "predicted" if source == "pred" else "reference"
    volumes = {}
    for phase in PHASES:
        missing = [view for view in VIEWS if (view, phase) not in views]
        volumes[phase] = float("nan")
        if missing:
            if source == "pred":  # the same for both sources: say it once
                notes.append(f"{phase}: no {' or '.join(missing)} view, so no biplane volume")
            continue
        two, four = views[("2CH", phase)], views[("4CH", phase)]
        try:
            result = biplane_volume(
                lookup(two), lookup(four), spacing[("2CH", phase)], spacing[("4CH", phase)],
                cavity_label=labels.cavity, atrium_label=labels.atrium,
            )
        except ClinicalError as exc:
            notes.append(f"{who} {phase}: {exc.problem}")
            continue
        volumes[phase] = result.volume
        notes.extend(f"{who} {phase}: {note}" for note in result.notes)
    ef = float("nan")
    if np.isfinite(volumes["ED"]) and np.isfinite(volumes["ES"]):
        try:
            ef = ejection_fraction(volumes["ED"], volumes["ES"])
        except ClinicalError as exc:
            notes.append(f"{who}: {exc.problem}")
        if volumes["ES"] > volumes["ED"]:
            notes.append(f"{who}: ESV exceeds EDV, EF is negative (check the masks or the phase labels)")
    return {f"edv_{source}": volumes["ED"], f"esv_{source}": volumes["ES"], f"ef_{source}": ef}


def _info_values(prepared: PreparedDataset, case_ids: Iterable[str], notes: list[str]) -> dict[str, object]:
    """EF (and EDV/ESV where recorded) from the CAMUS Info files; views that disagree are averaged, with a note."""
    metas = [prepared.cases[c].get("meta") or {} for c in case_ids]
    out: dict[str, object] = {}
    for column, keys in INFO_KEYS.items():
        values = sorted({float(m[k]) for m in metas for k in keys if isinstance(m.get(k), int | float)})
        out[column] = float(np.mean(values)) if values else float("nan")
        if len(values) > 1:
            notes.append(f"Info files disagree on {column.removesuffix('_info').upper()} ({values}): mean used")
    qualities = sorted({str(m["ImageQuality"]) for m in metas if m.get("ImageQuality")})
    if qualities:
        out["image_quality"] = "/".join(qualities)
    return out
