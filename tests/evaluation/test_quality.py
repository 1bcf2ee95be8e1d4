"""QC of an evaluation's cases on real prepared data, and its measured performance on hand-checked tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.quality import flag_line, qc_performance, qc_table
from evaluation_folders import camus_multiclass, eroded_predictions, msd_small  # noqa: F401


def test_reference_masks_pass_and_a_broken_one_is_named(camus_multiclass: PreparedDataset) -> None:  # noqa: F811
    prepared = camus_multiclass
    predictions = {case: prepared.original_label(case) for case in prepared.cases}
    table = qc_table(prepared, predictions, {}, spacing_known=False)
    assert len(table) == 8 and set(table["qc_flag"]) == {"ok"} and table["qc_uncertainty"].isna().all()
    broken = sorted(predictions)[0]
    predictions[broken] = np.where(predictions[broken] == 3, 0, predictions[broken])
    table = qc_table(prepared, predictions, {broken: 0.3}, spacing_known=False).set_index("case_id")
    assert table.loc[broken, "qc_flag"] == "check"
    assert table.loc[broken, "qc_reasons"] == "left atrium empty; models/flips disagree (uncertainty 0.30 > 0.1)"
    assert table.loc[broken, "qc_uncertainty"] == 0.3
    assert (table.drop(index=broken)["qc_flag"] == "ok").all()


def test_an_implausible_pair_ef_flags_both_phases(camus_multiclass: PreparedDataset) -> None:  # noqa: F811
    prepared = camus_multiclass
    predictions = {case: prepared.original_label(case) for case in prepared.cases}
    ed = next(c for c, i in prepared.cases.items() if i["view"] == "2CH" and i["phase"] == "ED")
    es = next(c for c, i in prepared.cases.items() if i["view"] == "2CH" and i["phase"] == "ES"
              and i["patient_id"] == prepared.cases[ed]["patient_id"])
    predictions[es] = predictions[ed]  # the ES frame segmented as the ED one: EF 0 %
    table = qc_table(prepared, predictions, {}, spacing_known=False).set_index("case_id")
    assert table.loc[ed, "qc_reasons"] == table.loc[es, "qc_reasons"] == "EF 0 % outside 5-85 %"


def test_msd_volumes_in_ml_pass(msd_small: PreparedDataset) -> None:  # noqa: F811
    table = qc_table(msd_small, eroded_predictions(msd_small), {}, spacing_known=True)
    assert set(table["qc_flag"]) == {"ok"}, table


def _per_case(dice: list[float], flags: list[str], uncertainty: list[float | None]) -> pd.DataFrame:
    rows = []
    for i, (d, f, u) in enumerate(zip(dice, flags, uncertainty)):
        reasons = "LV tiny (3 px, 0.01% of the image)" if f == "check" else ""
        for variant in ("raw", "post"):
            rows.append({"case_id": f"c{i:02d}", "variant": variant, "class_name": "LV", "dice": d,
                         "qc_flag": f, "qc_reasons": reasons, "qc_uncertainty": u})
    return pd.DataFrame(rows)


def test_performance_by_hand() -> None:
    dice = [0.95 - 0.01 * i for i in range(20)]  # c19 worst, then c18
    uncertainty = [0.01 * i for i in range(20)]  # perfectly anti-ordered: Spearman -1
    flags = ["check" if i in (19, 5) else "ok" for i in range(20)]
    perf = qc_performance(_per_case(dice, flags, uncertainty))
    assert perf["n_cases"] == 20 and perf["n_flagged"] == 2
    assert perf["n_worst"] == 2 and perf["worst_flagged"] == 1  # c19 caught, c18 missed
    assert perf["spearman_uncertainty_dice"] == pytest.approx(-1.0)
    assert perf["reasons"] == {"LV tiny": 2}
    assert flag_line({"qc": perf}) == ("QC: 2 of 20 cases flagged for a check, 1 of the 2 lowest-Dice cases among "
                                       "them; uncertainty vs Dice Spearman -1.00")


def test_performance_without_uncertainty() -> None:
    perf = qc_performance(_per_case([0.9, 0.8, 0.7], ["ok"] * 3, [None] * 3))
    assert perf["spearman_uncertainty_dice"] is None and perf["worst_flagged"] == 0 and perf["n_worst"] == 1
    assert flag_line({"qc": perf}) == "QC: 0 of 3 cases flagged for a check, 0 of the 1 lowest-Dice cases among them"
    assert flag_line({}) is None
