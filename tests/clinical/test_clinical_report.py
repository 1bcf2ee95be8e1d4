"""Clinical outputs of an evaluation: LA volumes on real MSD masks, EF on real CAMUS patients, bad input.

The numbers come from ``cardioseg.clinical`` (plain arrays in); the tables of a prepared dataset and
the written files from its adapter, ``cardioseg.evaluation.clinical_outputs``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cardioseg.anatomy import Role
from cardioseg.clinical.echo import EchoFrame, EchoLabels, echo_labels, ef_table
from cardioseg.clinical.volume_table import VolumeCase, volume_row, volume_table
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.clinical_outputs import clinical_outputs, clinical_summary_lines, prepared_ef_table
from cardioseg.plan import ClassSpec, Plan
from evaluation_folders import eroded_predictions


def with_meta(prepared: PreparedDataset, meta: dict[str, dict[str, Any]]) -> PreparedDataset:
    """A fresh view of a prepared dataset with extra case meta in memory (as the CAMUS original-layout
    reader records it); the shared fixture is left as it is."""
    view = PreparedDataset(prepared.root)
    for case_id, extra in meta.items():
        view.cases[case_id]["meta"].update(extra)
    return view


def test_volume_of_a_known_cube_in_ml() -> None:
    ref = np.zeros((20, 20, 20), bool)
    ref[5:15, 5:15, 5:15] = True  # 1000 voxels of 1.25 x 1.25 x 1.37 mm = 2140.625 mm³
    pred = ref.copy()
    pred[5:7] = False  # 800 voxels
    row = volume_row(pred, ref, (1.25, 1.25, 1.37))
    assert row["mm3_ref"] == pytest.approx(2140.625)
    assert row["ml_ref"] == pytest.approx(2.140625)
    assert row["ml_pred"] == pytest.approx(1.7125)
    assert row["error"] == pytest.approx(-0.428125)
    assert row["rel_error_pct"] == pytest.approx(20.0)
    assert row["unit"] == "mL" and row["notes"] == ""


def test_empty_masks_give_notes_not_ratios() -> None:
    empty = np.zeros((4, 4, 4), bool)
    row = volume_row(empty, empty, None)
    assert row["unit"] == "voxels" and row["ml_ref"] is None
    assert math.isnan(row["rel_error_pct"])
    assert "reference mask is empty" in row["notes"] and "predicted mask is empty" in row["notes"]


def test_volume_table_names_each_class_by_the_plan() -> None:
    ref = np.zeros((4, 4, 2), np.uint8)
    ref[0, :2, 0] = 1  # 2 voxels of class 1
    ref[1:3, 1:3, 1] = 2  # 4 voxels of class 2
    pred = ref.copy()
    pred[0, 0, 0] = 0  # one class-1 voxel missed
    other = VolumeCase("b", "p2", ref, ref, (1.0, 1.0, 2.0), unannotated=frozenset({2}))  # class 2 not drawn
    table, notes = volume_table([VolumeCase("a", "p1", pred, ref, (1.0, 1.0, 2.0)), other],
                                {1: "left atrium", 2: "LV myocardium"})
    assert table[["case_id", "class_name"]].values.tolist() == [["a", "left atrium"], ["a", "LV myocardium"],
                                                              ["b", "left atrium"]]
    assert table["voxels_ref"].tolist() == [2, 4, 2] and table["voxels_pred"].tolist() == [1, 4, 2]
    assert table["ml_ref"].tolist() == pytest.approx([0.004, 0.008, 0.004])  # 2 mm³ voxels
    assert notes == ["b: LV myocardium is not drawn on the reference, so it has no volume row"]


def test_ef_table_from_plain_arrays_leaves_an_undrawn_cavity_out() -> None:
    """Bullet-shaped cavities (label 1): ED wider than ES, so EF > 0; the reference 2CH ED frame does not
    draw the cavity, so its EDV (and EF) is unknown, while the predicted side still has both."""
    def cavity(width: int) -> np.ndarray:
        labels = np.zeros((120, 100), np.uint8)
        labels[20:100, 50 - width // 2 : 50 + width // 2] = 1
        return labels

    ed, es = cavity(40), cavity(30)
    frames = {(view, phase): EchoFrame(mask, mask, (0.5, 0.5)) for view in ("2CH", "4CH")
              for phase, mask in (("ED", ed), ("ES", es))}
    frames[("2CH", "ED")] = EchoFrame(ed, np.full_like(ed, 255), (0.5, 0.5), unannotated=frozenset({1}))
    table, notes = ef_table({"p1": frames}, EchoLabels(cavity=1, atrium=None))
    row = table.iloc[0]
    assert notes == [] and row["unit"] == "mL"
    assert row["ef_pred"] > 0 and math.isnan(row["edv_ref"]) and math.isnan(row["ef_ref"])
    assert row["esv_ref"] == pytest.approx(row["esv_pred"])
    assert "reference ED: class(es) [1] not drawn on 2CH, so no biplane volume" in row["notes"]


def test_left_atrium_volumes_of_real_msd_masks(msd_small: PreparedDataset, msd_eval: Path) -> None:
    summary = json.loads((msd_eval / "summary.json").read_text())["clinical"]
    table = pd.read_csv(msd_eval / "clinical_volumes.csv")
    assert sorted(table["case_id"]) == sorted(msd_small.cases)
    for _, row in table.iterrows():
        spacing = msd_small.spacing(row["case_id"])
        assert spacing is not None
        voxels = int((msd_small.original_label(row["case_id"]) == 1).sum())
        assert row["voxels_ref"] == voxels
        assert row["ml_ref"] == pytest.approx(voxels * np.prod(spacing) / 1000, rel=1e-5)
        assert 0 < row["ml_pred"] < row["ml_ref"]  # erosion shrinks
    stats = summary["volumes"]["agreement"]["left atrium"]
    assert stats["n"] == len(table) and stats["bias"] < 0
    assert stats["mae"] == pytest.approx(table["abs_error"].mean(), rel=1e-4)
    relative = 100 * table["abs_error"] / table["ml_ref"]  # percent, as the column's name says
    assert np.allclose(table["rel_error_pct"], relative, rtol=1e-4) and "rel_error" not in table
    assert summary["volumes"]["per_class"]["left atrium"]["mean_rel_error_pct"] == pytest.approx(relative.mean(), rel=1e-4)
    assert summary["volumes"]["unit"] == "mL"
    assert (msd_eval / "bland_altman_volume.png").stat().st_size > 10_000
    assert "ef" not in summary and not (msd_eval / "clinical_ef.csv").exists()


def test_ef_of_reference_against_itself_agrees_exactly(camus_small: PreparedDataset) -> None:
    table, notes = prepared_ef_table(camus_small, {c: camus_small.original_label(c) for c in camus_small.cases})
    assert len(table) == 4 and table["ef_ref"].notna().all()
    assert np.array_equal(table["ef_pred"], table["ef_ref"]) and np.array_equal(table["edv_pred"], table["edv_ref"])
    assert (table["unit"] == "px^3").all()
    assert any("pixel units" in note for note in notes)


def test_ef_agreement_matches_the_written_table(camus_eval: Path) -> None:
    summary = json.loads((camus_eval / "summary.json").read_text())["clinical"]
    table = pd.read_csv(camus_eval / "clinical_ef.csv")
    assert (table["edv_pred"] < table["edv_ref"]).all() and (table["esv_pred"] < table["esv_ref"]).all()
    assert table["ef_ref"].between(20, 85).all()  # plausible real EFs
    diff = table["ef_pred"] - table["ef_ref"]
    stats = summary["ef"]["agreement"]["ef"]
    assert stats["n"] == 4
    assert stats["bias"] == pytest.approx(diff.mean(), abs=1e-4)
    assert stats["mae"] == pytest.approx(diff.abs().mean(), abs=1e-4)
    assert stats["loa_upper"] == pytest.approx(diff.mean() + 1.96 * diff.std(ddof=1), abs=1e-3)
    assert np.allclose(table["ef_error"], diff, atol=1e-3)
    assert (camus_eval / "bland_altman_ef.png").is_file() and not (camus_eval / "bland_altman_ef_info.png").exists()


def test_patient_without_its_4ch_view_gets_a_note(camus_small: PreparedDataset) -> None:
    predictions = {c: p for c, p in eroded_predictions(camus_small).items() if not c.startswith("patient0002_4CH")}
    table, _ = prepared_ef_table(camus_small, predictions)
    table = table.set_index("patient_id")
    lonely = table.loc["patient0002"]
    assert math.isnan(lonely["ef_pred"]) and math.isnan(lonely["ef_ref"]) and math.isnan(lonely["edv_pred"])
    assert "ED: no 4CH view" in lonely["notes"] and "ES: no 4CH view" in lonely["notes"]
    assert table.drop(index="patient0002")["ef_pred"].notna().all()


def test_empty_predicted_mask_gives_a_note(camus_small: PreparedDataset) -> None:
    predictions = eroded_predictions(camus_small)
    predictions["patient0003_2CH_ES"] = np.zeros_like(predictions["patient0003_2CH_ES"])
    table, _ = prepared_ef_table(camus_small, predictions)
    row = table.set_index("patient_id").loc["patient0003"]
    assert math.isnan(row["esv_pred"]) and math.isnan(row["ef_pred"]) and row["ef_ref"] > 0
    assert "predicted ES: 2CH cavity mask is empty" in row["notes"]


def test_no_predictions_is_a_note(camus_small: PreparedDataset, tmp_path: Path) -> None:
    (tmp_path / "clinical_ef.csv").write_text("stale")  # from an earlier evaluation into the same folder
    summary = clinical_outputs(camus_small, {}, tmp_path)
    assert summary["notes"] == ["no predictions: no clinical index computed"]
    assert not (tmp_path / "clinical_ef.csv").exists()


def test_info_file_ef_is_a_second_reference(camus_small: PreparedDataset, tmp_path: Path) -> None:
    meta = {c: {"EF": 55.0, "ImageQuality": "Good"} for c in camus_small.cases if c.startswith("patient0001_2CH")}
    meta |= {c: {"EF": 57.0} for c in camus_small.cases if c.startswith("patient0001_4CH")}
    prepared = with_meta(camus_small, meta)
    summary = clinical_outputs(prepared, eroded_predictions(prepared), tmp_path)
    table = pd.read_csv(tmp_path / "clinical_ef.csv", index_col="patient_id")
    assert table.loc["patient0001", "ef_info"] == pytest.approx(56.0)  # the two views disagree: their mean
    assert "Info files disagree on EF" in table.loc["patient0001", "notes"]
    assert table["ef_info"].isna().sum() == 3
    assert summary["ef"]["agreement_with_info"]["ef_ref"]["n"] == 1
    assert (tmp_path / "bland_altman_ef_info.png").is_file()


def test_multiclass_camus_uses_the_atrium(camus_multiclass: PreparedDataset, tmp_path: Path) -> None:
    assert echo_labels(camus_multiclass.plan) == (EchoLabels(cavity=1, atrium=3), "")
    table, _ = prepared_ef_table(camus_multiclass, {c: camus_multiclass.original_label(c) for c in camus_multiclass.cases})
    assert table["ef_ref"].between(20, 85).all()
    notes = table.set_index("patient_id")["notes"]
    assert "geometric annulus" not in notes["patient0002"]  # the LV/LA border gave all four annuli
    # camus224's resizing put myocardium pixels between LV and LA in one view: said, not hidden
    assert "reference ED: 2CH: atrium does not touch the cavity; geometric annulus used" in notes["patient0001"]


def plan_of(layout: str, labels: dict[int, int] | None, classes: list[tuple[str, Role | None]]) -> Plan:
    """A plan with foreground classes 1..K named and given roles as `cardioseg prepare` names them."""
    specs = [ClassSpec(id=i, name=name, role=role) for i, (name, role) in enumerate(classes, start=1)]
    return Plan(layout=layout, label_map=labels, classes=(ClassSpec(id=0, name="background"), *specs))


@pytest.mark.parametrize(
    ("layout", "labels", "classes", "expected"),
    [
        ("camus_png", {1: 1, 3: 2}, [("LV endocardium", "lv_cavity"), ("left atrium", "left_atrium")], EchoLabels(1, 2)),
        ("camus_png", {2: 1}, [("LV myocardium", "lv_myocardium")], None),  # myocardium only: no cavity
        ("camus_png", {1: 1, 3: 1}, [("LV endocardium + left atrium", "left_atrium")], None),  # merged with the atrium
        ("camus_png", {1: 1, 3: 1}, [("LV cavity", "lv_cavity")], None),  # merged, whatever its name says
        ("folders", None, [("foreground", None)], EchoLabels(1, None)),
        ("folders", None, [("class1", None), ("class2", None)], None),
    ],
)
def test_which_class_is_the_cavity(
    layout: str, labels: dict[int, int] | None, classes: list[tuple[str, Role | None]], expected: EchoLabels | None
) -> None:
    found, reason = echo_labels(plan_of(layout, labels, classes))
    assert found == expected
    assert (reason != "") == (expected is None or layout == "folders")


def test_the_role_names_the_cavity_in_any_layout() -> None:
    """Sunnybrook-like classes: the blood pool is the cavity by its role, without a note; a single
    class whose role is another structure is not taken as the cavity."""
    plan = plan_of("sunnybrook", None, [("LV blood pool", "lv_cavity"), ("LV myocardium", "lv_myocardium")])
    assert echo_labels(plan) == (EchoLabels(1, None), "")
    found, reason = echo_labels(plan_of("msd", None, [("left atrium", "left_atrium")]))
    assert found is None and "LV cavity" in reason


def test_two_volumes_give_a_caveat_not_a_correlation(msd_eval: Path) -> None:
    """Two real volumes: r would be exactly ±1 and the limits of agreement rest on one degree of freedom."""
    stats = json.loads((msd_eval / "summary.json").read_text())["clinical"]["volumes"]["agreement"]["left atrium"]
    assert stats["n"] == 2 and stats["bias"] is not None
    assert stats["pearson_r"] is None and stats["loa_lower"] is None and stats["loa_upper"] is None
    assert stats["note"] == "n = 2: too few cases for a correlation / limits of agreement"


def test_console_summary_of_echo_and_volume_evaluations(camus_eval: Path, msd_eval: Path) -> None:
    echo = json.loads((camus_eval / "summary.json").read_text())["clinical"]
    ef = echo["ef"]["agreement"]["ef"]
    lines = clinical_summary_lines(echo)
    assert lines[0] == "EF (biplane Simpson, 4 of 4 patients measurable):"
    assert lines[1] == (f"  EF: bias {ef['bias']:+.1f} %, 95% limits {ef['loa_lower']:.1f} to {ef['loa_upper']:.1f} %, "
                        f"MAE {ef['mae']:.1f} %, n = 4")
    assert lines[2].startswith("  EDV: bias ") and "px³" in lines[2]
    assert "Clinical files: clinical_ef.csv, bland_altman_ef.png" in lines
    volumes = json.loads((msd_eval / "summary.json").read_text())["clinical"]
    per_class = volumes["volumes"]["per_class"]["left atrium"]
    lines = clinical_summary_lines(volumes)
    assert lines[0] == "Volumes (2 volumes, mL):"
    assert lines[1].startswith(f"  left atrium: mean |error| {per_class['mean_abs_error']:.1f} mL, "
                               f"mean relative error {per_class['mean_rel_error_pct']:.1f} %, n = 2")
    assert "Clinical files: clinical_volumes.csv, bland_altman_volume.png" in lines
    table = pd.read_csv(msd_eval / "clinical_volumes.csv")  # each volume in mL, predicted and reference
    for row in table.itertuples():
        assert (f"  {row.case_id} left atrium: {row.ml_pred:.1f} mL predicted, {row.ml_ref:.1f} mL reference"
                in lines), lines
    assert clinical_summary_lines({"notes": ["no predictions: no clinical index computed"], "files": []}) == [
        "Note: no predictions: no clinical index computed"]
