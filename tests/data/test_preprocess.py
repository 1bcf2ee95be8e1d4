"""Each preprocessing step against arrays worked out by hand."""

from pathlib import Path

import numpy as np
import pytest

from cardioseg.config import PreprocessConfig
from cardioseg.data.preprocess import (
    ArrayPlanes,
    Clahe,
    Geometry,
    MedianFilter,
    Pipeline,
    Resize,
    auto_box,
    center_box,
    map_labels,
    normalize,
    orient,
    restore_probabilities,
    roi_box,
)


def preprocess_2d(image: np.ndarray, label: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray, Geometry]:
    fitted = Pipeline(cfg).fit(ArrayPlanes(image))
    out, geometry = fitted.image(0)
    return out, fitted.label(label, geometry), geometry


def test_minmax_maps_range_to_unit_interval() -> None:
    image = np.array([[10, 20], [30, 50]], np.float32)
    np.testing.assert_allclose(normalize(image, "minmax"), [[0, 0.25], [0.5, 1.0]])


def test_constant_image_normalises_to_zero_not_nan() -> None:
    for method in ("minmax", "percentile", "zscore"):
        out = normalize(np.full((4, 4), 7.0), method)
        assert np.all(out == 0)


def test_percentile_clips_outliers() -> None:
    image = np.arange(100, dtype=np.float32).reshape(10, 10)  # values 0..99
    out = normalize(image, "percentile", (5, 95))
    # numpy's linear percentiles of 0..99: p5 = 4.95, p95 = 94.05
    assert out[0, 0] == 0.0 and out[9, 9] == 1.0
    assert out.flat[50] == pytest.approx((50 - 4.95) / (94.05 - 4.95))


def test_zscore() -> None:
    out = normalize(np.array([[1, 3]], np.float32), "zscore")
    np.testing.assert_allclose(out, [[-1, 1]])


def test_median_filter_removes_salt_noise() -> None:
    image = np.zeros((5, 5), np.float32)
    image[2, 2] = 100
    assert MedianFilter(3).apply(image).max() == 0
    assert MedianFilter(0).apply(image)[2, 2] == 100


def test_clahe_output_range_and_contrast() -> None:
    ramp = np.tile(np.linspace(100, 110, 64, dtype=np.float32), (64, 1))  # low contrast
    out = Clahe(2.0, 8).apply(ramp, (100.0, 110.0))
    assert out.min() >= 0 and out.max() <= 1
    assert out.max() - out.min() > 0.5  # contrast stretched


def test_orientation_transpose() -> None:
    array = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(orient(array, "transpose"), array.T)
    assert orient(array, "none") is array


def test_center_box_and_auto_box() -> None:
    assert center_box((100, 200), 0.5) == (25, 75, 50, 150)
    image = np.zeros((100, 100), np.float32)
    image[30:60, 40:80] = 1.0
    y0, y1, x0, x1 = auto_box(image, margin=0.0)
    assert (y0, y1, x0, x1) == (30, 60, 40, 80)


def fan_image() -> np.ndarray:
    """A 100x100 'echo sector' by hand: a bright triangle (rows 10-89, columns 20-79 at its base) on black, a dark
    cavity inside it, and a bright 3x3 marker in a corner standing apart."""
    image = np.zeros((100, 100), np.float32)
    for row in range(10, 90):
        half = (row - 10) * 30 // 79
        image[row, 50 - half:50 + half + 1] = 0.6
    image[40:60, 45:55] = 0.0  # the cavity, enclosed by the sector
    image[1:4, 94:97] = 1.0  # a marker, brighter than the sector: only the largest region counts
    return image


def test_roi_box_finds_the_sector_despite_blobs_and_a_dark_cavity() -> None:
    image = fan_image()
    assert roi_box(image) == (10, 90, 20, 81)
    assert auto_box(image, margin=0.0)[0] > 10  # auto's opening trims the thin apex, where the LV apex lies
    image[40:60, 45:55] = 0.7  # a bright cavity: the sector's box is the same
    assert roi_box(image) == (10, 90, 20, 81)
    image[40:60, 45:55] = 0.0
    # the window keeps a part of the sector's box: rows 0-0.5, columns 0.25-0.75 of 80 x 61 pixels
    assert roi_box(image, window=(0.0, 0.5, 0.25, 0.75)) == (10, 50, 35, 66)
    # binarised at 70% of the range, only the marker is left: its own box
    assert roi_box(image, threshold=0.7) == (1, 4, 94, 97)
    assert roi_box(np.full((8, 8), 3.0)) == (0, 8, 0, 8)  # nothing stands out: the whole image


def test_roi_crop_is_part_of_the_plan_and_keeps_every_lv_pixel_on_camus(camus224: Path) -> None:
    """The echo study's window on real CAMUS images: the crop narrows the image but loses no LV pixel."""
    from PIL import Image

    cfg = PreprocessConfig(crop="roi", roi_window=(0.0, 1.0, 0.15, 0.9), size=(64, 64))
    images = [p for p in sorted((camus224 / "train").glob("*_E[DS].png"))[:80:8]]
    assert images, camus224
    for path in images:  # transposed, as the camus224 reader does: the sector's apex at the top
        image = np.asarray(Image.open(path).convert("L"), np.float32).T
        label = np.asarray(Image.open(path.with_name(path.stem + "_gt.png"))).T
        out, labels, geometry = preprocess_2d(image, label == 1, cfg)
        y0, y1, x0, x1 = geometry.crop_box
        assert (x1 - x0) < 0.85 * image.shape[1], path.name
        assert label[y0:y1, x0:x1].__eq__(1).sum() == (label == 1).sum(), path.name
        assert out.shape == (64, 64) and labels.any()


def test_label_resize_keeps_only_class_ids() -> None:
    label = np.zeros((10, 10), np.uint8)
    label[:5] = 1
    label[5:, 5:] = 3
    out = Resize((7, 7)).apply_label(label)
    assert set(np.unique(out)) <= {0, 1, 3}


def test_map_labels_keeps_listed_classes_only() -> None:
    label = np.array([[0, 1, 2, 3]])
    np.testing.assert_array_equal(map_labels(label, {1: 1}), [[0, 1, 0, 0]])
    np.testing.assert_array_equal(map_labels(label, {1: 1, 3: 2}), [[0, 1, 0, 2]])


def test_restore_undoes_crop_and_resize() -> None:
    cfg = PreprocessConfig(crop="center", crop_fraction=0.5, size=(32, 32), normalize="minmax")
    image = np.random.default_rng(0).random((80, 60)).astype(np.float32)
    label = np.zeros((80, 60), np.uint8)
    label[30:50, 20:40] = 1  # inside the central crop (20:60, 15:45)
    out_image, out_label, geometry = preprocess_2d(image, label, cfg)
    assert out_image.shape == (32, 32) and geometry == Geometry((80, 60), (20, 60, 15, 45))
    restored = restore_probabilities(out_label[None].astype(np.float32), geometry)
    assert restored.shape == (1, 80, 60)
    mask = restored[0] > 0.5
    dice = 2 * (mask & (label > 0)).sum() / (mask.sum() + label.sum())
    assert dice > 0.95
    assert not mask[:20].any()  # outside the crop box stays background


def test_restore_multiclass_background_outside_crop() -> None:
    prob = np.zeros((3, 4, 4), np.float32)
    prob[1] = 1.0
    restored = restore_probabilities(prob, Geometry((8, 8), (2, 6, 2, 6)))
    assert restored[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert restored[:, 4, 4].tolist() == [0.0, 1.0, 0.0]


def test_center_crop_of_a_fixed_number_of_pixels() -> None:
    assert center_box((256, 200), 0.8, 128) == (64, 192, 36, 164)
    assert center_box((100, 200), 0.8, 128) == (0, 100, 36, 164)  # shorter than the crop: kept whole


def test_the_lv_mri_studys_128_pixel_centre_crop_on_real_dicom(sunnybrook5: Path, tmp_path: Path) -> None:
    from cardioseg.config import load_config
    from cardioseg.data.prepare import prepare_dataset
    from cardioseg.data.prepared import PreparedDataset

    cfg = load_config(overrides={"data.source": sunnybrook5, "data.prepared": tmp_path / "p", "data.labels": {1: 1},
                                 "preprocess.crop": "center", "preprocess.crop_pixels": 128,
                                 "preprocess.size": [128, 128]})
    prepared = PreparedDataset(prepare_dataset(cfg, progress=False).out_dir)
    case = prepared.manifest.case_id.iloc[0]
    original = prepared.original_label(case)  # 256 x 256 Sunnybrook slices
    assert original.shape == (256, 256) and prepared.plan.preprocess.crop_pixels == 128
    row = int(prepared.manifest.index[prepared.manifest.case_id == case][0])
    # a 128-pixel crop resized to 128 pixels is the crop itself: the prepared label is the centre of the original
    np.testing.assert_array_equal(prepared.labels[row], original[64:192, 64:192])


def test_stages_show_each_step_and_end_in_the_network_input(camus224: Path) -> None:
    """CLAHE before/after and the crop as a figure would show them; the last stage is exactly the network input."""
    from PIL import Image

    image = np.asarray(Image.open(camus224 / "train" / "patient0001_4CH_ED.png").convert("L"), np.float32).T
    cfg = PreprocessConfig(median_filter=3, clahe=True, crop="roi", size=(64, 64))
    fitted = Pipeline(cfg).fit(ArrayPlanes(image))
    stages = fitted.stages(0)
    assert [name for name, _ in stages] == ["as read", "median 3", "CLAHE", "normalised (minmax)", "crop roi",
                                            "resized 64x64"]
    np.testing.assert_array_equal(stages[0][1], image)
    np.testing.assert_array_equal(stages[-1][1], fitted.image(0)[0])
    before, after = stages[1][1], stages[2][1]
    assert after.shape == before.shape and not np.allclose(after, before)  # CLAHE changed the contrast
    plain = Pipeline(PreprocessConfig(normalize="none", size=(32, 32))).fit(ArrayPlanes(image)).stages(0)
    assert [name for name, _ in plain] == ["as read", "resized 32x32"]
