"""Ejection fraction of a patient whose four apical views are open in the app.

A view is an apical 2CH or 4CH image at end-diastole (ED) or end-systole (ES), read from the file
name (``patient0001_2CH_ED.png``, as CAMUS names them) or chosen on the page. When one patient has
all four, EDV, ESV and EF come from ``cardioseg.clinical.patient_ef`` (biplane Simpson) on the
corrected masks, so every brush stroke updates the EF.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cardioseg.anatomy import PHASES, VIEWS
from cardioseg.app.sessions import Session
from cardioseg.clinical import ClinicalError, patient_ef

UNNAMED = "patient"


def patient_results(sessions: Iterable[Session]) -> list[dict[str, Any]]:
    """One entry per patient with at least one tagged 2D view: the views present and, with all four, EF."""
    groups: dict[str, dict[tuple[str, str], Session]] = {}
    for session in sorted(sessions, key=lambda s: s.created):  # a later upload of a view replaces an earlier
        if session.depth == 1 and session.view in VIEWS and session.phase in PHASES:
            groups.setdefault(session.patient or UNNAMED, {})[(session.view, session.phase)] = session
    return [_patient(patient, views) for patient, views in sorted(groups.items())]


def _patient(patient: str, views: dict[tuple[str, str], Session]) -> dict[str, Any]:
    result: dict[str, Any] = {"patient": patient, "views": sorted(f"{v} {p}" for v, p in views),
                              "ef": None, "edv": None, "esv": None, "unit": None, "notes": []}
    missing = [f"{v} {p}" for p in PHASES for v in VIEWS if (v, p) not in views]
    if missing:
        result["notes"] = [f"missing {', '.join(missing)}"]
        return result
    model = views[("2CH", "ED")].model
    masks = {key: session.final()[..., 0] for key, session in views.items()}
    try:
        ef = patient_ef(
            masks[("2CH", "ED")], masks[("4CH", "ED")], masks[("2CH", "ES")], masks[("4CH", "ES")],
            views[("2CH", "ED")].plane_spacing(), views[("4CH", "ED")].plane_spacing(),
            cavity_label=model.cavity_label, atrium_label=model.atrium_label,
        )
    except ClinicalError as exc:
        result["notes"] = [exc.problem]
        return result
    result.update(ef=ef.ef, edv=ef.edv, esv=ef.esv, unit=ef.unit, notes=list(ef.notes))
    return result
