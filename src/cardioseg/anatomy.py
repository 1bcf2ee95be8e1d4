"""The cardiac vocabulary, defined once: structure roles, apical views, cardiac phases, CAMUS label ids.

A class's *role* says which anatomical structure it is, whatever id a dataset gives it, so that
clinical indices (EF from the LV cavity, atrial volumes from the left atrium) find their class in
any label map. Readers declare the roles of their source labels; the plan carries them.
"""

from __future__ import annotations

import re
from typing import Literal

Role = Literal["lv_cavity", "lv_myocardium", "left_atrium"]
ROLES: tuple[Role, ...] = ("lv_cavity", "lv_myocardium", "left_atrium")
ROLE_NAMES: dict[str, str] = {"lv_cavity": "LV cavity", "lv_myocardium": "LV myocardium", "left_atrium": "left atrium"}

VIEWS = ("2CH", "4CH")
"""Apical two- and four-chamber views: the pair the biplane method of discs needs."""
PHASES = ("ED", "ES")
"""End-diastole and end-systole."""

CAMUS_LABELS: dict[int, Role] = {1: "lv_cavity", 2: "lv_myocardium", 3: "left_atrium"}
"""Source label ids of the CAMUS label maps (0 is background)."""


def role_from_name(name: str) -> Role | None:
    """The structure a label name denotes ("LV endocardium", "LV blood pool", "left atrium", ...), or None.

    Readers name their source labels; this turns the usual names into roles, so a lab's own
    dataset whose labels are named gets its roles too. Right-heart structures have no role.
    """
    text = name.lower()
    if "right" in text or " rv" in f" {text}" or " ra " in f" {text} ":
        return None
    if "atri" in text or text.strip() in ("la",):
        return "left_atrium"
    if "myocard" in text or text.strip() in ("myo", "lv wall"):
        return "lv_myocardium"
    if any(word in text for word in ("endocard", "blood pool", "cavity", "lumen")) or text.strip() in ("lv", "left ventricle"):
        return "lv_cavity"
    return None

_VIEW_IN_NAME = re.compile(r"^(?:(.*?)[\s_.-]+)?([24]CH)[\s_.-]*(ED|ES)(?![A-Za-z])", re.IGNORECASE)


def parse_view(name: str) -> tuple[str | None, str | None, str | None]:
    """(patient, view, phase) from a file name in the CAMUS style (``patient0001_2CH_ED.png``,
    ``P12-4ch-es.dcm``); Nones where the name does not say. Readers and the web app tag views alike."""
    match = _VIEW_IN_NAME.search(name)
    if match is None:
        return None, None, None
    patient, view, phase = match.groups()
    return (patient or None), view.upper(), phase.upper()
