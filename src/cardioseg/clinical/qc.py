"""Quality control of one automatic segmentation: which of a hundred cases a clinician should look at.

``assess`` applies rule-based checks to a label map and turns them, with the uncertainty score,
into a flag ("ok" or "check") and the reasons. Every threshold comes from anatomy or is relative to
the image or the structure itself, never fitted to a dataset (docs/qc.md gives the derivations):

* **empty / tiny**: a class of the plan absent, or covering less than ``MIN_IMAGE_FRACTION`` of the image.
* **several components**: a second connected component (8-/26-connected) holding at least
  ``COMPONENT_SHARE`` of the structure: the heart's chambers and the LV wall are each one piece.
* **holes**: background enclosed by a solid structure (LV cavity, left atrium) amounting to at
  least ``HOLE_SHARE`` of it: blood pools have no holes.
* **implausible size**: with the spacing, areas (2D, mm²) and volumes (3D, mL) outside
  ``PLAUSIBLE_ML`` (published chamber volumes and LV mass, widened to pathology; 2D areas are the
  long-axis section of a prolate ellipsoid of that volume, the lower bound applied to apical views
  only); without it, a structure covering more than ``MAX_IMAGE_FRACTION`` of the image.
* **cavity not enclosed**: where both are predicted, less than ``ENCLOSED_SHARE`` of the LV
  cavity's outline borders the myocardium (in an apical view only the mitral opening is open).
* **left atrium off the LV**: a predicted atrium touching neither the LV cavity nor its wall.
* **implausible EF** (an ED/ES pair, ``ef``): outside ``PLAUSIBLE_EF``.

The uncertainty score is ``1 - mean pairwise Dice`` between the label maps of the opinions the
segmenter combined (ensemble members, test-time flips), averaged over classes (``PairwiseAgreement``).
It is in the units of the quality it predicts, zero when all opinions agree, and does not depend on
how well the networks' probabilities are calibrated (the mean entropy would). A case is flagged
when it exceeds ``UNCERTAINTY_LIMIT``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from cardioseg.anatomy import VIEWS, Role, parse_view, role_from_name
from cardioseg.clinical.volumes import MM3_PER_ML
from cardioseg.plan import Plan

Flag = Literal["ok", "check"]

MIN_IMAGE_FRACTION = 0.001
"""A structure under 0.1 % of the image (50 pixels of 224 x 224) is too small to be measured."""
MAX_IMAGE_FRACTION = 0.5
"""An acquisition frames the heart with its surroundings: one structure filling half the image has leaked."""
COMPONENT_SHARE = 0.02
"""A second piece holding 2 % of a structure is a second structure, not a stray pixel."""
HOLE_SHARE = 0.01
"""Enclosed background of 1 % of a blood pool is a hole a reader would see."""
ENCLOSED_SHARE = 0.5
"""The myocardium borders all of the LV cavity in short axis and all but the mitral opening (about 30 mm
of a 200 mm outline) in apical views; under half means the wall is missing or misplaced."""
PLAUSIBLE_ML: dict[Role, tuple[float, float]] = {
    "lv_cavity": (5.0, 450.0),
    "left_atrium": (5.0, 300.0),
    "lv_myocardium": (30.0, 500.0),
}
"""Volume ranges (mL) beyond which a structure is not a human heart's, normal or diseased. LV cavity:
normal EDV 46-150 mL and ESV 14-61 mL (Lang et al., JASE 28:1-39, 2015, table 1), down to ~5 mL at
end-systole in hypertrophic hearts and up to ~450 mL in dilated cardiomyopathy. Left atrium: normal
22-58 mL (Lang 2015: 16-34 mL/m²), severe dilation beyond 48 mL/m², giant atria ~300 mL. Myocardium:
LV mass 67-224 g normal (Lang 2015) and up to ~500 g hypertrophied, at 1.05 g/mL."""
ELONGATION = 2.0
"""Long axis / diameter of the prolate ellipsoid that turns a volume into a long-axis section area:
the LV's long axis is about twice its diameter (sphericity index ~0.5)."""
PLAUSIBLE_EF = (5.0, 85.0)
"""EF (%) of a living heart: severely reduced is under 30 %, hyperdynamic rarely over 80 % (normal
52-74 %, Lang 2015); under 5 % (or negative: ESV above EDV) or over 85 % means the masks are wrong."""
UNCERTAINTY_LIMIT = 0.1
"""Opinions disagreeing by more than 0.1 Dice: more than two expert annotators of the LV in apical
echocardiography typically do (inter-observer Dice about 0.90-0.94, Leclerc et al., IEEE TMI 2019)."""
SOLID: tuple[Role, ...] = ("lv_cavity", "left_atrium")


@dataclass(frozen=True)
class QcResult:
    """The verdict on one case: "check" when any reason was found."""

    flag: Flag
    reasons: tuple[str, ...]
    uncertainty: float | None

    def as_row(self) -> dict[str, Any]:
        """The CSV columns ``qc_flag``, ``qc_reasons`` ("; "-joined) and ``qc_uncertainty`` (blank when unknown)."""
        return {"qc_flag": self.flag, "qc_reasons": "; ".join(self.reasons),
                "qc_uncertainty": None if self.uncertainty is None else round(self.uncertainty, 4)}


def area_limits_mm2(role: Role) -> tuple[float, float]:
    """(smallest, largest) long-axis section area in mm² of a prolate ellipsoid of the role's volume range."""
    low, high = PLAUSIBLE_ML[role]
    return _section_mm2(low), _section_mm2(high)


def _section_mm2(ml: float) -> float:
    """pi/4 * L * D of the ellipsoid with L = ELONGATION * D and volume pi/6 * D² * L = ``ml``."""
    diameter = (6.0 * ml * MM3_PER_ML / (math.pi * ELONGATION)) ** (1.0 / 3.0)
    return math.pi / 4.0 * ELONGATION * diameter**2


def ef_reason(ef: float | None) -> str | None:
    """Why an ejection fraction (%) is implausible, or None when it is plausible or unknown."""
    if ef is None or not math.isfinite(ef):
        return None
    low, high = PLAUSIBLE_EF
    if ef < low or ef > high:
        return f"EF {ef:.0f} % outside {low:.0f}-{high:.0f} %"
    return None


def assess(
    labels: np.ndarray,
    class_names: Mapping[int, str],
    spacing: Sequence[float] | None = None,
    uncertainty: float | None = None,
    roles: Mapping[int, Role | None] | None = None,
    *,
    view: str | None = None,
    ef: float | None = None,
) -> QcResult:
    """QC of a 2D or 3D label map whose foreground classes are ``class_names`` (id -> name).

    ``roles`` (id -> role) default to the roles the names denote (``anatomy.role_from_name``);
    ``spacing`` is (row_mm, col_mm) or three voxel sizes; ``view`` ("2CH", "4CH") enables the
    lower area bound of apical views; ``ef`` (%) of the ED/ES pair this case belongs to.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"QC needs a 2D or 3D label map, got shape {labels.shape}")
    roles = {c: role_from_name(n) for c, n in class_names.items()} if roles is None else dict(roles)
    reasons: list[str] = []
    masks = {c: labels == c for c in class_names}
    for class_id, name in class_names.items():
        reasons += _structure_reasons(masks[class_id], name, roles.get(class_id), labels == 0, spacing, view)
    by_role = {role: (masks[c], class_names[c]) for c, role in roles.items() if role is not None and c in masks}
    reasons += _relation_reasons(by_role)
    if (reason := ef_reason(ef)) is not None:
        reasons.append(reason)
    if uncertainty is not None and uncertainty > UNCERTAINTY_LIMIT:
        reasons.append(f"models/flips disagree (uncertainty {uncertainty:.2f} > {UNCERTAINTY_LIMIT})")
    return QcResult("check" if reasons else "ok", tuple(reasons), uncertainty)


def assess_for_plan(
    labels: np.ndarray, plan: Plan, spacing: Sequence[float] | None = None, uncertainty: float | None = None,
    name: str = "", ef: float | None = None,
) -> QcResult:
    """``assess`` with the classes and roles of a plan, the view read from a file or case name.

    A one-channel model's labels say 1 for its class, whatever its id in the plan.
    """
    if plan.binary:
        names, roles = {1: plan.foreground[0].name}, {1: plan.foreground[0].role}
    else:
        names, roles = plan.class_names, {c.id: c.role for c in plan.foreground}
    _, view, _ = parse_view(name)
    return assess(labels, names, spacing, uncertainty, roles, view=view, ef=ef)


def enclosed(mask: np.ndarray) -> np.ndarray:
    """Background pixels the mask encloses: ``binary_fill_holes(mask) & ~mask``, by one labelling of the background
    (components not touching the border; 4-/6-connected, as ``binary_fill_holes``) instead of its repeated
    dilations, which cost 1.5 ms per 224x224 image, as much as an int8 network pass."""
    outside, _ = ndimage.label(~mask)
    border = np.unique(np.concatenate([np.take(outside, [0, -1], axis=a).ravel() for a in range(mask.ndim)]))
    return ~mask & ~np.isin(outside, border)


def _structure_reasons(
    mask: np.ndarray, name: str, role: Role | None, background: np.ndarray, spacing: Sequence[float] | None,
    view: str | None,
) -> list[str]:
    count = int(np.count_nonzero(mask))
    if count == 0:
        return [f"{name} empty"]
    share = count / mask.size
    if share < MIN_IMAGE_FRACTION:
        return [f"{name} tiny ({count} px, {share:.2%} of the image)"]
    reasons = []
    components, n = ndimage.label(mask, np.ones((3,) * mask.ndim, bool))
    if n > 1:
        sizes = np.sort(np.bincount(components.ravel())[1:])[::-1]
        if sizes[1] >= COMPONENT_SHARE * count:
            big = int(np.count_nonzero(sizes >= COMPONENT_SHARE * count))
            reasons.append(f"{name} in {big} pieces")
    if role in SOLID:
        holes = int(np.count_nonzero(enclosed(mask) & background))
        if holes >= HOLE_SHARE * count:
            reasons.append(f"{name} has holes ({holes} px)")
    if spacing is not None and role is not None:
        reasons += _size_reasons(count, mask.ndim, name, role, spacing, view)
    elif share > MAX_IMAGE_FRACTION:
        reasons.append(f"{name} covers {share:.0%} of the image")
    return reasons


def _size_reasons(count: int, ndim: int, name: str, role: Role, spacing: Sequence[float], view: str | None) -> list[str]:
    """Area (2D) or volume (3D) outside the anatomical range of the role."""
    cell = float(np.prod([float(s) for s in spacing]))
    if ndim == 3:
        ml = count * cell / MM3_PER_ML
        low, high = PLAUSIBLE_ML[role]
        if ml < low or ml > high:
            return [f"{name} volume {ml:.0f} mL outside {low:.0f}-{high:.0f} mL"]
        return []
    if role == "lv_myocardium":  # a wall's section area depends on the view and the slice too much
        return []
    area_cm2 = count * cell / 100.0
    low, high = (a / 100.0 for a in area_limits_mm2(role))
    if area_cm2 > high or (view in VIEWS and area_cm2 < low):
        return [f"{name} area {area_cm2:.1f} cm² outside {low:.0f}-{high:.0f} cm²"]
    return []


def _relation_reasons(by_role: Mapping[Role, tuple[np.ndarray, str]]) -> list[str]:
    """The cavity inside its wall, the atrium against the LV (``by_role``: role -> (mask, class name))."""
    cavity, wall, atrium = (by_role.get(r, (None, ""))[0] for r in ("lv_cavity", "lv_myocardium", "left_atrium"))
    name = {role: class_name for role, (_, class_name) in by_role.items()}
    reasons = []
    if cavity is not None and wall is not None and cavity.any() and wall.any():
        outline = cavity & ~ndimage.binary_erosion(cavity, border_value=0)
        near_wall = ndimage.binary_dilation(wall, np.ones((3,) * wall.ndim, bool))
        share = np.count_nonzero(outline & near_wall) / max(1, np.count_nonzero(outline))
        if share < ENCLOSED_SHARE:
            reasons.append(f"{name['lv_cavity']} not enclosed by the {name['lv_myocardium']} ({share:.0%} of its outline)")
    lv = [m for m in (cavity, wall) if m is not None and m.any()]
    if atrium is not None and atrium.any() and lv:
        touching = ndimage.binary_dilation(atrium, np.ones((3,) * atrium.ndim, bool))
        if not any((touching & m).any() for m in lv):
            reasons.append(f"{name['left_atrium']} does not touch the LV")
    return reasons


class PairwiseAgreement:
    """Accumulates the pairwise Dice of several opinions' label maps, plane by plane if need be.

    ``add`` takes the label maps of one image (or one plane of a volume) from every opinion;
    ``uncertainty`` is 1 - the mean over opinion pairs of the Dice averaged over ``classes``,
    counting a class both opinions leave empty as agreement. None with fewer than two opinions.
    """

    def __init__(self, classes: Sequence[int]) -> None:
        self.classes = list(classes)
        self._overlap: dict[tuple[int, int], np.ndarray] = {}
        self._sizes: dict[tuple[int, int], np.ndarray] = {}

    def add(self, opinions: Sequence[np.ndarray]) -> None:
        for pair in itertools.combinations(range(len(opinions)), 2):
            a, b = (opinions[i] for i in pair)
            overlap = np.array([np.count_nonzero((a == c) & (b == c)) for c in self.classes], float)
            sizes = np.array([np.count_nonzero(a == c) + np.count_nonzero(b == c) for c in self.classes], float)
            self._overlap[pair] = self._overlap.get(pair, 0.0) + overlap
            self._sizes[pair] = self._sizes.get(pair, 0.0) + sizes

    @property
    def uncertainty(self) -> float | None:
        if not self._overlap:
            return None
        dice = [np.where(self._sizes[p] > 0, 2 * self._overlap[p] / np.maximum(self._sizes[p], 1), 1.0).mean()
                for p in self._overlap]
        return float(1.0 - np.mean(dice))


def disagreement(opinions: Sequence[np.ndarray], classes: Sequence[int]) -> float | None:
    """1 - mean pairwise Dice of one image's label maps from several opinions (``PairwiseAgreement``)."""
    agreement = PairwiseAgreement(classes)
    agreement.add(opinions)
    return agreement.uncertainty
