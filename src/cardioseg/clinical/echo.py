"""Echo (CAMUS-style) clinical indices per patient: EDV, ESV by biplane Simpson and EF.

The same computation runs on the predicted and on the reference label maps, so any difference
comes from the segmentation alone; the EF recorded in the CAMUS ``Info_*.cfg`` files (reader
metadata), when present, is a third, independent reference. Anything that stops a number (a view
without its partner, an empty mask, a class not drawn) becomes a note on that patient, never a guess.

Inputs are plain values (label maps, spacings, view and phase tags); which class is the LV cavity
and which the left atrium comes from the plan's roles (``echo_labels``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cardioseg.anatomy import CAMUS_LABELS, PHASES, VIEWS
from cardioseg.clinical.simpson import biplane_volume, ejection_fraction
from cardioseg.clinical.volumes import ClinicalError
from cardioseg.plan import Plan

CAMUS_LAYOUTS = ("camus", "camus_png")
INFO_KEYS = {"ef_info": ("EF", "LVef"), "edv_info": ("LVedv",), "esv_info": ("LVesv",)}

ViewKey = tuple[str, str]
"""(view, phase), e.g. ("2CH", "ED")."""


@dataclass(frozen=True)
class EchoLabels:
    """Class ids of the LV cavity and (when segmented) the left atrium in the label maps."""

    cavity: int
    atrium: int | None


@dataclass(frozen=True)
class EchoFrame:
    """One apical frame of a patient at the original resolution, and what is known about it."""

    pred: np.ndarray
    ref: np.ndarray
    spacing: tuple[float, ...] | None
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Reader metadata: the CAMUS Info-file values (EF, LVedv, LVesv, ImageQuality) when recorded."""
    unannotated: frozenset[int] = frozenset()
    """Classes the annotators did not draw on this frame: the reference says nothing about them."""


def echo_labels(plan: Plan) -> tuple[EchoLabels | None, str]:
    """Which class is the LV cavity; (None, reason) when the plan does not say it unambiguously.

    The class whose role is the LV cavity, when there is one. Without roles, a non-CAMUS dataset's
    single class is taken as the cavity (a note says so): a lab's own binary LV masks.
    """
    cavity = plan.class_of_role("lv_cavity")
    if cavity is None:
        foreground = plan.foreground
        if plan.layout not in CAMUS_LAYOUTS and len(foreground) == 1 and foreground[0].role is None:
            return EchoLabels(foreground[0].id, None), f"layout {plan.layout}: class {foreground[0].id} taken as the LV cavity"
        return None, "no class of the plan is the LV cavity (by its role, or as the single class of a non-CAMUS dataset)"
    if plan.layout in CAMUS_LAYOUTS and plan.label_map:
        merged = sorted(s for s, t in plan.label_map.items() if t == cavity and CAMUS_LABELS.get(s) != "lv_cavity")
        if merged:
            return None, f"class {cavity} merges the LV cavity with CAMUS label(s) {merged}: its area is not the LV's"
    return EchoLabels(cavity, plan.class_of_role("left_atrium")), ""


def apical_views(tags: Iterable[tuple[str, str, str | None, str | None]]) -> dict[str, dict[ViewKey, str]]:
    """patient -> {(view, phase): case id}, from (case id, patient, view, phase) of 2D frames.

    Only apical views (2CH, 4CH) at ED or ES count; a later case of the same view and phase
    replaces an earlier one (cases are taken in sorted order).
    """
    frames: dict[str, dict[ViewKey, str]] = {}
    for case_id, patient, view, phase in sorted(tags, key=lambda tag: tag[0]):
        if view in VIEWS and phase in PHASES:
            frames.setdefault(patient, {})[(view, phase)] = case_id
    return frames


def ef_table(patients: Mapping[str, Mapping[ViewKey, EchoFrame]], labels: EchoLabels) -> tuple[pd.DataFrame, list[str]]:
    """One row per patient (volumes in ``unit``, EF in %) and the run-level notes.

    Volumes are in mL only when every frame has a pixel spacing: mixing mL and pixel units in one
    table would make its agreement statistics meaningless.
    """
    if not patients:
        return pd.DataFrame(), []
    with_mm = all(frame.spacing for views in patients.values() for frame in views.values())
    notes = [] if with_mm else [
        "pixel spacing unknown: volumes in pixel units (px³), comparable only within this table; EF holds"
    ]
    rows = []
    for patient, views in patients.items():
        patient_notes: list[str] = []
        pred = _patient_volumes(views, labels, "pred", with_mm, patient_notes)
        ref = _patient_volumes(views, labels, "ref", with_mm, patient_notes)
        rows.append({"patient_id": patient, "unit": "mL" if with_mm else "px^3", **pred, **ref,
                     "ef_error": pred["ef_pred"] - ref["ef_ref"], **_info_values(views.values(), patient_notes),
                     "notes": "; ".join(patient_notes)})
    return pd.DataFrame(rows), notes


def _patient_volumes(
    views: Mapping[ViewKey, EchoFrame], labels: EchoLabels, source: str, with_mm: bool, notes: list[str]
) -> dict[str, float]:
    """EDV, ESV and EF of one patient from one source of label maps; NaN (and a note) where impossible."""
    who = "predicted" if source == "pred" else "reference"
    needed = {labels.cavity, *([labels.atrium] if labels.atrium is not None else [])}
    volumes = {}
    for phase in PHASES:
        missing = [view for view in VIEWS if (view, phase) not in views]
        volumes[phase] = float("nan")
        if missing:
            if source == "pred":  # the same for both sources: say it once
                notes.append(f"{phase}: no {' or '.join(missing)} view, so no biplane volume")
            continue
        two, four = views[("2CH", phase)], views[("4CH", phase)]
        undrawn = {view: sorted(needed & frame.unannotated) for view, frame in (("2CH", two), ("4CH", four))}
        if source == "ref" and any(undrawn.values()):
            notes.extend(f"reference {phase}: class(es) {ids} not drawn on {view}, so no biplane volume"
                         for view, ids in undrawn.items() if ids)
            continue
        maps = (two.pred, four.pred) if source == "pred" else (two.ref, four.ref)
        try:
            result = biplane_volume(
                *maps, two.spacing if with_mm else None, four.spacing if with_mm else None,
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


def _info_values(frames: Iterable[EchoFrame], notes: list[str]) -> dict[str, object]:
    """EF (and EDV/ESV where recorded) from the CAMUS Info files; views that disagree are averaged, with a note."""
    metas = [frame.meta for frame in frames]
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
