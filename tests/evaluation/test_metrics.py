"""Metrics against hand-worked cases, the empty-mask convention, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cardioseg.errors import DataError
from cardioseg.evaluation.metrics import (
    METRIC_NAMES,
    MetricAccumulator,
    case_metrics,
    distance_metrics,
    multiclass_case_metrics,
    overlap_metrics,
    surface,
    units,
)


def square(shape: tuple[int, ...], start: tuple[int, ...], size: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def test_two_overlapping_squares_by_hand() -> None:
    # 4x4 squares offset by (1, 2): overlap 3x2 = 6, each 16 -> TP 6, FP 10, FN 10
    pred, ref = square((10, 10), (1, 1), 4), square((10, 10), (2, 3), 4)
    m = overlap_metrics(pred, ref)
    assert m["dice"] == pytest.approx(12 / 32)
    assert m["iou"] == pytest.approx(6 / 26)
    assert m["precision"] == pytest.approx(6 / 16)
    assert m["recall"] == pytest.approx(6 / 16)
    assert m["accuracy"] == pytest.approx(80 / 100)  # 20 disagreeing pixels of 100


def test_precision_and_recall_differ_when_pred_inside_ref() -> None:
    ref = square((8, 8), (0, 0), 4)
    pred = square((8, 8), (0, 0), 2)
    m = overlap_metrics(pred, ref)
    assert (m["precision"], m["recall"], m["dice"]) == pytest.approx((1.0, 4 / 16, 8 / 20))


def test_one_pixel_shift_hd95_in_pixels_and_anisotropic_mm() -> None:
    ref = square((12, 12), (3, 3), 5)
    down = np.roll(ref, 1, axis=0)
    right = np.roll(ref, 1, axis=1)
    assert distance_metrics(down, ref)["hd95"] == pytest.approx(1.0)
    assert distance_metrics(down, ref, spacing=(2.0, 1.0))["hd95"] == pytest.approx(2.0)
    assert distance_metrics(right, ref, spacing=(2.0, 1.0))["hd95"] == pytest.approx(1.0)


def test_assd_of_one_pixel_shift_by_hand() -> None:
    # 5x5 square, surface = 16-pixel ring, shifted down by one row. Each ring has 8 pixels at
    # distance 1 px from the other ring (its leading row of 5, and the 3 inner pixels of its
    # trailing row) and 8 on it. With spacing (2, 1) the leading rows are 2 mm away, while the
    # inner trailing pixels are 1, 2, 1 mm away (a side column is one column off).
    ref = square((12, 12), (3, 3), 5)
    down = np.roll(ref, 1, axis=0)
    assert distance_metrics(down, ref)["assd"] == pytest.approx(16 / 32)
    m = distance_metrics(down, ref, spacing=(2.0, 1.0))
    assert m["assd"] == pytest.approx(2 * (5 * 2.0 + 1.0 + 2.0 + 1.0) / 32)
    assert (m["hd"], m["hd95"]) == pytest.approx((2.0, 2.0))


def test_surface_is_connectivity_one_border_and_array_edge_counts_as_background() -> None:
    mask = square((5, 5), (0, 0), 3)
    expected = mask.copy()
    expected[1, 1] = False  # the only pixel whose 4 neighbours are foreground; row/col 0 touch the edge
    assert np.array_equal(surface(mask), expected)


def test_hausdorff_of_distant_blob_3d_anisotropic() -> None:
    ref = square((6, 6, 12), (1, 1, 1), 3)
    pred = ref.copy()
    pred[2, 2, 10] = True  # an outlier 7 voxels beyond the cube's face (z = 3) along axis 2
    m = distance_metrics(pred, ref, spacing=(1.0, 1.0, 2.5))
    assert m["hd"] == pytest.approx(7 * 2.5)
    assert m["hd95"] < m["hd"]


def test_isotropic_cube_shift_3d() -> None:
    ref = square((8, 8, 8), (2, 2, 2), 3)
    pred = np.roll(ref, 1, axis=2)
    m = case_metrics(pred, ref, spacing=(0.5, 0.5, 3.0))
    assert m["dice"] == pytest.approx(2 * 18 / 54)
    assert m["hd95"] == pytest.approx(3.0)


def test_both_empty_is_perfect() -> None:
    empty = np.zeros((4, 4, 4), dtype=bool)
    m = case_metrics(empty, empty, spacing=(1, 1, 1))
    assert {k: m[k] for k in ("dice", "iou", "precision", "recall", "accuracy")} == dict.fromkeys(
        ("dice", "iou", "precision", "recall", "accuracy"), 1.0
    )
    assert (m["hd"], m["hd95"], m["assd"]) == (0.0, 0.0, 0.0)


def test_empty_prediction_convention() -> None:
    ref = square((6, 6), (1, 1), 2)
    m = case_metrics(np.zeros_like(ref), ref)
    assert (m["dice"], m["iou"], m["recall"]) == (0.0, 0.0, 0.0)
    assert math.isnan(m["precision"])
    assert all(math.isnan(m[k]) for k in ("hd", "hd95", "assd"))


def test_empty_reference_convention() -> None:
    pred = square((6, 6), (1, 1), 2)
    m = case_metrics(pred, np.zeros_like(pred))
    assert (m["dice"], m["iou"], m["precision"]) == (0.0, 0.0, 0.0)
    assert math.isnan(m["recall"])
    assert math.isnan(m["hd95"])


@pytest.mark.slow  # importing MONAI (and torch) takes seconds
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_agrees_with_monai_on_anisotropic_3d() -> None:
    monai_metrics = pytest.importorskip("monai.metrics")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ref = square((16, 14, 10), (3, 2, 2), 7)
    pred = ref ^ (rng.random(ref.shape) < 0.05)
    spacing = (0.7, 1.3, 3.0)
    ours = distance_metrics(pred, ref, spacing)
    y_pred, y = (torch.from_numpy(m[None, None].astype(np.float32)) for m in (pred, ref))
    hd95 = monai_metrics.compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
    assd = monai_metrics.compute_average_surface_distance(
        y_pred, y, include_background=True, symmetric=True, spacing=spacing
    )
    assert ours["hd95"] == pytest.approx(float(hd95), rel=1e-5)
    assert ours["assd"] == pytest.approx(float(assd), rel=1e-5)


def test_units() -> None:
    assert units(None) == "px"
    assert units((1.0, 2.0)) == "mm"


@pytest.mark.parametrize(
    ("pred", "ref", "spacing", "message"),
    [
        (np.zeros((3, 3), bool), np.zeros((3, 4), bool), None, "differs"),
        (np.zeros((3, 3), bool), np.zeros((3, 3), bool), (1.0,), "spacing"),
        (np.zeros((3, 3), bool), np.zeros((3, 3), bool), (1.0, 0.0), "spacing"),
        (np.full((3, 3), 2), np.zeros((3, 3), bool), None, "binary"),
        (np.zeros((0, 3), bool), np.zeros((0, 3), bool), None, "no voxels"),
    ],
)
def test_bad_inputs_raise_data_error(pred: np.ndarray, ref: np.ndarray, spacing: tuple | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        case_metrics(pred, ref, spacing)


def test_integer_01_masks_are_accepted() -> None:
    mask = square((5, 5), (1, 1), 2)
    assert case_metrics(mask.astype(np.uint8), mask.astype(int))["dice"] == 1.0


def test_multiclass_per_class() -> None:
    ref = np.zeros((8, 8), dtype=np.uint8)
    ref[1:4, 1:4], ref[5:7, 5:7] = 1, 2
    pred = ref.copy()
    pred[5:7, 5:7] = 0
    out = multiclass_case_metrics(pred, ref, {1: "lv", 2: "myo", 3: "la"})
    assert set(out) == {"lv", "myo", "la"}
    assert out["lv"]["dice"] == 1.0
    assert out["myo"]["dice"] == 0.0 and math.isnan(out["myo"]["hd95"])
    assert out["la"]["dice"] == 1.0  # absent in both: perfect by convention
    with pytest.raises(DataError):
        multiclass_case_metrics(pred, ref[:4], {1: "lv"})


def test_accumulator_rows_and_nan_aware_summary() -> None:
    acc = MetricAccumulator()
    acc.add("a", {"dice": 0.8, "hd95": 2.0}, "lv")
    acc.add("b", {"dice": 0.6, "hd95": float("nan")}, "lv")
    acc.add("c", {"dice": 1.0, "hd95": 4.0}, "lv")
    acc.add("a", {"dice": 0.5, "hd95": 1.0}, "myo")
    assert len(acc) == 4
    assert acc.rows()[0] == {"case_id": "a", "class_name": "lv", "dice": 0.8, "hd95": 2.0}
    frame = acc.to_dataframe()
    assert list(frame.columns) == ["case_id", "class_name", "dice", "hd95"]
    summary = acc.summary().set_index(["class_name", "metric"])
    lv_dice = summary.loc[("lv", "dice")]
    assert (lv_dice["mean"], lv_dice["median"], lv_dice["n"], lv_dice["n_undefined"]) == pytest.approx((0.8, 0.8, 3, 0))
    assert lv_dice["std"] == pytest.approx(0.2)  # sample SD of 0.6, 0.8, 1.0
    lv_hd = summary.loc[("lv", "hd95")]
    assert (lv_hd["mean"], lv_hd["n"], lv_hd["n_undefined"]) == (3.0, 2, 1)
    assert math.isnan(summary.loc[("myo", "dice")]["std"])  # one case: no sample SD


def test_accumulator_without_classes_and_duplicates() -> None:
    acc = MetricAccumulator()
    acc.add_classes("p1", multiclass_case_metrics(np.ones((3, 3), int), np.ones((3, 3), int), {1: "lv"}))
    acc.add("p2", case_metrics(np.ones((3, 3), bool), np.ones((3, 3), bool)))
    summary = acc.summary()
    assert set(summary["metric"]) == set(METRIC_NAMES)
    assert list(summary["class_name"].isna()) == [False] * len(METRIC_NAMES) + [True] * len(METRIC_NAMES)
    with pytest.raises(DataError, match="twice"):
        acc.add("p2", {"dice": 1.0})


def test_empty_accumulator_summary_is_empty() -> None:
    assert MetricAccumulator().summary().empty


masks = st.integers(2, 3).flatmap(
    lambda ndim: hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=7).flatmap(
        lambda shape: st.tuples(hnp.arrays(bool, shape), hnp.arrays(bool, shape), st.just(shape))
    )
)


@settings(max_examples=60, deadline=None)
@given(masks, st.booleans())
def test_properties(pair: tuple[np.ndarray, np.ndarray, tuple[int, ...]], with_spacing: bool) -> None:
    pred, ref, shape = pair
    spacing = tuple(0.5 + i for i in range(len(shape))) if with_spacing else None
    m = case_metrics(pred, ref, spacing)
    swapped = case_metrics(ref, pred, spacing)
    assert 0.0 <= m["dice"] <= 1.0 and 0.0 <= m["iou"] <= m["dice"] + 1e-12
    assert m["dice"] == pytest.approx(swapped["dice"])
    assert m["hd95"] == pytest.approx(swapped["hd95"], nan_ok=True)
    assert m["assd"] == pytest.approx(swapped["assd"], nan_ok=True)
    assert m["precision"] == pytest.approx(swapped["recall"], nan_ok=True)
    if pred.any() and ref.any():
        assert 0.0 <= m["assd"] <= m["hd"] + 1e-9
        assert 0.0 <= m["hd95"] <= m["hd"] + 1e-9
    if pred.any():
        same = case_metrics(pred, pred, spacing)
        assert same["dice"] == 1.0 and same["hd95"] == 0.0 and same["assd"] == 0.0
