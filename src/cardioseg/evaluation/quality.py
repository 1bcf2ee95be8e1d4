"""QC of an evaluation's cases, and how well it finds the worst ones.

Each case's post-processed prediction goes through ``clinical.qc.assess`` with the plan's roles,
the case's spacing (when distances are in mm) and view, and its uncertainty score; an ED/ES pair
of the same patient and apical view adds the plausibility of its single-plane EF (method of discs
on the predicted cavity) to both its cases. The table joins ``per_case.csv`` on ``case_id``.

Because the references are known here, ``qc_performance`` measures the QC against them: the
Spearman rank correlation between the uncertainty score and the case's Dice (negative is good),
and how many of the worst 10 % of cases by Dice the flag catches, beside how many cases it flags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from cardioseg.anatomy import PHASES, VIEWS
from cardioseg.clinical.echo import echo_labels
from cardioseg.clinical.qc import assess
from cardioseg.clinical.sequence import single_plane_volume
from cardioseg.clinical.simpson import ejection_fraction
from cardioseg.clinical.volumes import ClinicalError
from cardioseg.data.prepared import PreparedDataset

WORST_SHARE = 0.10
QC_COLUMNS = ("qc_flag", "qc_reasons", "qc_uncertainty")


def qc_table(
    prepared: PreparedDataset, predictions: Mapping[str, np.ndarray], uncertainty: Mapping[str, float | None],
    spacing_known: bool,
) -> pd.DataFrame:
    """One row per predicted case: ``case_id`` and the ``QC_COLUMNS``."""
    plan = prepared.plan
    names, roles = plan.class_names, {c.id: c.role for c in plan.foreground}
    efs = _pair_efs(prepared, predictions, spacing_known)
    rows = []
    for case, labels in predictions.items():
        info = prepared.cases[case]
        spacing = prepared.spacing(case) if spacing_known else None
        result = assess(labels, names, spacing, uncertainty.get(case), roles, view=info.get("view"), ef=efs.get(case))
        rows.append({"case_id": case, **result.as_row()})
    return pd.DataFrame(rows, columns=["case_id", *QC_COLUMNS])


def _pair_efs(prepared: PreparedDataset, predictions: Mapping[str, np.ndarray], spacing_known: bool) -> dict[str, float]:
    """case id -> single-plane EF (%) of the ED/ES pair of its patient and view, where both are predicted."""
    labels, _ = echo_labels(prepared.plan)
    if labels is None:
        return {}
    pairs: dict[tuple[str, str], dict[str, str]] = {}
    for case in predictions:
        info = prepared.cases[case]
        if info.get("ndim") == 2 and info.get("view") in VIEWS and info.get("phase") in PHASES:
            pairs.setdefault((str(info.get("patient_id")), info["view"]), {})[info["phase"]] = case
    efs: dict[str, float] = {}
    for cases in pairs.values():
        if set(cases) != set(PHASES):
            continue
        try:
            ed, es = (_volume(prepared, predictions[cases[p]], cases[p], labels.cavity, labels.atrium, spacing_known)
                      for p in PHASES)
            ef = ejection_fraction(ed, es)
        except ClinicalError:
            continue
        efs.update(dict.fromkeys(cases.values(), ef))
    return efs


def _volume(prepared: PreparedDataset, labels: np.ndarray, case: str, cavity: int, atrium: int | None,
            spacing_known: bool) -> float:
    spacing = prepared.spacing(case) if spacing_known else None
    return single_plane_volume(labels == cavity, spacing, labels == atrium if atrium is not None else None)


def qc_performance(per_case: pd.DataFrame) -> dict[str, Any]:
    """Flag counts, the uncertainty/Dice rank correlation, and the worst-decile catch (module docstring).

    Dice is the post-processed Dice averaged over a case's classes; cases without one are left out.
    """
    post = per_case[per_case["variant"] == "post"]
    cases = post.groupby("case_id").agg(dice=("dice", "mean"), flag=("qc_flag", "first"),
                                         uncertainty=("qc_uncertainty", "first"))
    flagged = cases["flag"] == "check"
    out: dict[str, Any] = {"n_cases": len(cases), "n_flagged": int(flagged.sum())}
    scored = cases.dropna(subset=["dice"])
    n_worst = math.ceil(WORST_SHARE * len(scored)) if len(scored) else 0
    worst = scored.nsmallest(n_worst, "dice").index
    out["n_worst"] = n_worst
    out["worst_flagged"] = int((cases.loc[worst, "flag"] == "check").sum())
    known = scored.dropna(subset=["uncertainty"])
    if len(known) >= 3 and known["uncertainty"].nunique() > 1 and known["dice"].nunique() > 1:
        out["spearman_uncertainty_dice"] = float(spearmanr(known["uncertainty"], known["dice"]).statistic)
    else:
        out["spearman_uncertainty_dice"] = None
    out["reasons"] = reason_counts(per_case)
    return out


def reason_counts(per_case: pd.DataFrame) -> dict[str, int]:
    """How many cases carry each kind of reason (the text before its numbers), most frequent first."""
    counts: dict[str, int] = {}
    for text in per_case.drop_duplicates("case_id")["qc_reasons"]:
        if not isinstance(text, str) or not text:
            continue
        for kind in {_kind(reason) for reason in text.split("; ")}:
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _kind(reason: str) -> str:
    """A reason without its case-specific numbers: "LV tiny (25 px, ...)" -> "LV tiny"."""
    words = []
    for word in reason.split(" "):
        if word.startswith("(") or any(ch.isdigit() for ch in word):
            break
        words.append(word)
    return " ".join(words)


def flag_line(summary: Mapping[str, Any]) -> str | None:
    """The console line of an evaluation's QC, or None when there is none."""
    qc = summary.get("qc")
    if not qc:
        return None
    line = f"QC: {qc['n_flagged']} of {qc['n_cases']} cases flagged for a check"
    if qc.get("n_worst"):
        line += f", {qc['worst_flagged']} of the {qc['n_worst']} lowest-Dice cases among them"
    if qc.get("spearman_uncertainty_dice") is not None:
        line += f"; uncertainty vs Dice Spearman {qc['spearman_uncertainty_dice']:.2f}"
    return line
