"""Split invariants: patient-level, seeded, ratios respected, duplicates kept together."""

import pytest

from cardioseg.data.splits import check_disjoint, fold_split, group_patients, official_split, ratio_split
from cardioseg.errors import DataError


def test_duplicates_grouped_by_hash() -> None:
    groups = group_patients(["a", "b", "c", "d"], {"a": ["h1"], "b": ["h2"], "c": ["h1", "h3"], "d": ["h3"]})
    assert groups == [["a", "c", "d"], ["b"]]


def test_ratio_split_is_patient_level_seeded_and_close_to_ratios() -> None:
    patients = [f"p{i:03d}" for i in range(100)]
    groups = [[p] for p in patients]
    first = ratio_split(groups, (0.8, 0.1, 0.1), seed=3)
    assert first == ratio_split(groups, (0.8, 0.1, 0.1), seed=3)
    assert first != ratio_split(groups, (0.8, 0.1, 0.1), seed=4)
    counts = {s: list(first.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 80, "val": 10, "test": 10}


def test_groups_never_split_and_small_sets_get_every_split() -> None:
    groups = [["a", "b"], ["c"], ["d"], ["e"]]
    for seed in range(20):
        assignment = ratio_split(groups, (0.8, 0.1, 0.1), seed)
        assert assignment["a"] == assignment["b"]
        assert set(assignment.values()) == {"train", "val", "test"}


def test_zero_ratio_split_stays_empty() -> None:
    assignment = ratio_split([[str(i)] for i in range(10)], (0.9, 0.1, 0.0), seed=0)
    assert "test" not in assignment.values()


def test_official_split_rejects_duplicates_across_sets() -> None:
    with pytest.raises(DataError, match="identical images"):
        official_split({"a": "train", "b": "val"}, [["a", "b"]], "splits.txt")
    with pytest.raises(DataError, match="no official split"):
        official_split({"a": "train"}, [["a"], ["z"]], "splits.txt")


def test_patient_in_two_splits_is_an_error() -> None:
    check_disjoint([("a", "train"), ("a", "train"), ("b", "val")])
    with pytest.raises(DataError, match="patient a is in two splits"):
        check_disjoint([("a", "train"), ("a", "test")])


def test_folds_put_every_patient_in_one_test_split_and_keep_duplicates_together() -> None:
    """15 volumes as in the MSD atrium set, two of them byte-identical: 5 folds of 3 patients each."""
    groups = [["la_005", "la_026"]] + [[f"v{i:02d}"] for i in range(13)]
    patients = [p for g in groups for p in g]
    tested: list[str] = []
    for fold in range(5):
        assignment = fold_split(groups, 5, fold, (0.8, 0.2, 0.0), seed=0)
        assert set(assignment) == set(patients)
        test = [p for p, s in assignment.items() if s == "test"]
        assert len(test) == 3 and assignment["la_005"] == assignment["la_026"]
        assert {s for p, s in assignment.items() if p not in test} == {"train", "val"}
        tested += test
    assert sorted(tested) == sorted(patients)  # each patient tested exactly once over the five folds
    with pytest.raises(DataError, match="folds are numbered 0 to 4"):
        fold_split(groups, 5, 5, (0.8, 0.2, 0.0), seed=0)
