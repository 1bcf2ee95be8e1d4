"""The readers against the real datasets in ../shared/data, the layout table, and rasterisation."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from cardioseg.config import DataConfig
from cardioseg.data.readers import READERS, detect_layout, get_reader
from cardioseg.data.readers.sunnybrook import MYOCARDIUM as MYO
from cardioseg.data.readers.sunnybrook import rasterise
from cardioseg.errors import ConfigError, DataError

CFG = DataConfig()


# --- the table -------------------------------------------------------------------------------


def test_table_names_and_orientation_fixes() -> None:
    assert {layout: reader.name for layout, reader in READERS.items()} == {layout: layout for layout in READERS}
    assert {layout for layout, reader in READERS.items() if reader.orientation_fix == "transpose"} == {"camus_png"}
    assert {reader.orientation_fix for reader in READERS.values()} <= {"none", "transpose"}


def test_get_reader_unknown_layout_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="camus_png"):
        get_reader("nope")


def test_detect_layout_of_an_unrelated_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as err:
        detect_layout(tmp_path)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    ("fixture", "layout"), [("camus224", "camus_png"), ("msd_heart_la", "msd"), ("sunnybrook5", "sunnybrook")]
)
def test_detect_layout_of_the_real_datasets(fixture: str, layout: str, request: pytest.FixtureRequest) -> None:
    assert detect_layout(request.getfixturevalue(fixture)) == layout


# --- camus224 (PNG pairs) ----------------------------------------------------------------------


def test_camus224_discovers_every_pair_and_the_official_split(camus224: Path) -> None:
    reader = get_reader("camus_png")
    refs = reader.discover(camus224, CFG)
    assert len(refs) == 1800
    assert len({r.patient_id for r in refs}) == 450
    assert Counter((r.view, r.phase) for r in refs) == {(v, p): 450 for v in ("2CH", "4CH") for p in ("ED", "ES")}
    splits = reader.official_splits(camus224)
    assert splits is not None and Counter(splits.values()) == {"train": 400, "val": 50}
    assert set(splits) == {r.patient_id for r in refs}
    assert all(splits[r.patient_id] == {"train": "train", "val": "val"}[dict(r.meta)["folder"]] for r in refs)


def test_camus224_sample_loads_as_stored_transposed(camus224: Path) -> None:
    reader = get_reader("camus_png")
    refs = reader.discover(camus224, CFG)
    for ref in refs[::300]:
        case = reader.load(ref, CFG)
        assert case.image.shape == case.label.shape == (224, 224)
        assert case.image.dtype == np.uint8 and case.spacing is None
        assert set(np.unique(case.label)) == {0, 1, 2, 3}
        # Stored with the apex to the left: the atrium (3) lies right of the LV cavity (1) ...
        lv, la = (np.argwhere(case.label == k).mean(axis=0) for k in (1, 3))
        assert la[1] > lv[1]
        # ... and the declared fix (transpose) puts it below, as in the apex-up view.
        fixed = case.label.T
        assert np.argwhere(fixed == 3).mean(axis=0)[0] > np.argwhere(fixed == 1).mean(axis=0)[0]


# --- MSD Task02 left atrium --------------------------------------------------------------------


def test_msd_discovers_the_present_cases(msd_heart_la: Path) -> None:
    refs = get_reader("msd").discover(msd_heart_la, CFG)
    assert len(refs) == 15
    assert [r.case_id for r in refs] == sorted(r.case_id for r in refs)
    # la_005 and la_026 are byte-identical images; prepare groups them by content hash.
    assert all(r.patient_id == r.case_id for r in refs)
    assert get_reader("msd").official_splits(msd_heart_la) is None


def test_msd_load_keeps_nibabel_order_affine_and_zooms(msd_heart_la: Path) -> None:
    reader = get_reader("msd")
    ref = next(r for r in reader.discover(msd_heart_la, CFG) if r.case_id == "la_016")
    case = reader.load(ref, CFG)
    header = nib.load(ref.image_path)
    assert case.image.shape == case.label.shape == header.shape == (256, 256, 90)
    assert case.spacing == pytest.approx((1.25, 1.25, 1.37), abs=1e-4)
    np.testing.assert_allclose(case.affine, header.affine)
    assert case.image.dtype == np.uint16 and set(np.unique(case.label)) == {0, 1}
    assert dict(case.meta)["label_names"] == ((0, "background"), (1, "left atrium"))


def test_msd_skips_listed_but_absent_images_and_globs_without_json(
    msd_heart_la: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for sub in ("imagesTr", "labelsTr"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "la_016.nii.gz").symlink_to(msd_heart_la / sub / "la_016.nii.gz")
    listed = [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ("la_016", "la_099")]
    (tmp_path / "dataset.json").write_text(
        json.dumps({"labels": {"0": "background", "1": "left atrium"}, "training": listed})
    )
    with caplog.at_level(logging.WARNING):
        assert [r.case_id for r in get_reader("msd").discover(tmp_path, CFG)] == ["la_016"]
    assert "la_099" in caplog.text

    (tmp_path / "dataset.json").unlink()
    (tmp_path / "imagesTr" / "._la_016.nii.gz").write_bytes(b"\x00\x05\x16\x07")  # macOS leftover
    assert detect_layout(tmp_path) == "msd"
    assert [r.case_id for r in get_reader("msd").discover(tmp_path, CFG)] == ["la_016"]


# --- Sunnybrook --------------------------------------------------------------------------------


def test_sunnybrook_every_contoured_slice_is_a_plausible_case(sunnybrook5: Path) -> None:
    reader = get_reader("sunnybrook")
    refs = reader.discover(sunnybrook5, CFG)
    assert len(refs) == 96
    assert len({r.patient_id for r in refs}) == 5
    assert sum(dict(r.meta)["o_contour_path"] is not None for r in refs) == 46
    cases = [reader.load(ref, CFG) for ref in refs]
    for case in cases:
        header = pydicom.dcmread(case.image_path, stop_before_pixels=True)
        assert case.spacing == pytest.approx(tuple(float(v) for v in header.PixelSpacing))
        assert case.image.shape == case.label.shape == (256, 256)
        assert case.meta["slice_location"] == pytest.approx(float(header.SliceLocation))
        pool_cm2 = (case.label == 1).sum() * case.spacing[0] * case.spacing[1] / 100
        assert 1 < pool_cm2 < 60, case.case_id  # an LV cavity cross-section, apex to base
        assert (MYO not in case.meta["unannotated_labels"]) == bool((case.label == 2).any())
    drawn = [c for c in cases if (MYO not in c.meta["unannotated_labels"])]
    # SC-HF-I-6 (SCD0000501) ships copies of SC-HF-I-1's o-contours; they do not enclose its
    # blood pool, so its 9 o-contours are refused and 37 of the 46 slices get a myocardium.
    assert len(drawn) == 37
    assert {c.patient_id for c in cases if dict(c.meta)["o_contour_path"] and MYO in c.meta["unannotated_labels"]} == {
        "SCD0000501"
    }
    # x runs along columns: the bright blood pool is where the contour says, not in its mirror.
    brighter = [c.image[c.label == 1].mean() > c.image[(c.label == 1).T].mean() for c in cases]
    assert np.mean(brighter) > 0.9


def test_rasterise_fills_pixel_centres_inside_a_hand_checked_square() -> None:
    half = np.array([[10.5, 10.5], [20.5, 10.5], [20.5, 20.5], [10.5, 20.5]])
    mask = rasterise(half, (32, 32))
    assert mask.sum() == 100 and mask[11:21, 11:21].all()
    on_centres = np.array([[10, 10], [20, 10], [20, 20], [10, 20]], float)
    assert rasterise(on_centres, (32, 32)).sum() == 121  # centres on the edge count as inside
    wide = np.array([[10.5, 5.5], [30.5, 5.5], [30.5, 10.5], [10.5, 10.5]])  # x = columns, y = rows
    mask = rasterise(wide, (32, 40))
    assert mask.sum() == 100 and mask[6:11, 11:31].all()


def _mini_sunnybrook(root: Path, source: Path) -> Path:
    """One patient, one slice: a real DICOM and a square i-contour, in the Sunnybrook layout."""
    (root / "link.csv").write_text("patient_id,original_id\nSCD1,SC-1\n")
    (root / "dicoms" / "SCD1").mkdir(parents=True)
    shutil.copy(source / "dicoms" / "SCD0000101" / "48.dcm", root / "dicoms" / "SCD1" / "48.dcm")
    inner = root / "contourfiles" / "SC-1" / "i-contours" / "IM-0001-0048-icontour-manual.txt"
    inner.parent.mkdir(parents=True)
    inner.write_text("100.5 100.5\n120.5 100.5\n120.5 120.5\n100.5 120.5\n")
    return inner


def test_sunnybrook_bad_files_name_the_file(sunnybrook5: Path, tmp_path: Path) -> None:
    inner = _mini_sunnybrook(tmp_path, sunnybrook5)
    reader = get_reader("sunnybrook")
    (ref,) = reader.discover(tmp_path, CFG)
    assert (reader.load(ref, CFG).label == 1).sum() == 400

    dicom = tmp_path / "dicoms" / "SCD1" / "48.dcm"
    dicom.write_bytes(dicom.read_bytes()[:-5000])
    with pytest.raises(DataError, match=r"48\.dcm"):
        reader.load(ref, CFG)
    dicom.write_bytes(b"not a dicom at all" * 10)
    with pytest.raises(DataError, match=r"48\.dcm"):
        reader.load(ref, CFG)

    shutil.copy(sunnybrook5 / "dicoms" / "SCD0000101" / "48.dcm", dicom)
    inner.write_text("12 13\nfoo bar\n")
    with pytest.raises(DataError, match=inner.name):
        reader.load(ref, CFG)

    dicom.unlink()
    with pytest.raises(DataError, match=r"48\.dcm"):
        reader.discover(tmp_path, CFG)
