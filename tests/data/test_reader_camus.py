"""The CAMUS original-layout reader, on a small tree built from real camus224 pixels.

camus224 stores each frame in the files' index order (i = lateral, j = depth: apex left), which is
exactly the array a CAMUS NIfTI holds. So a camus224 PNG written as NIfTI is a faithful CAMUS
file, and the reader must hand back its transpose (apex up) with spacing (row_mm, col_mm).
Frames are cropped to 224 x 200 so that a wrong transpose also shows in the shape.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from cardioseg.config import DataConfig
from cardioseg.data.case import CaseRef
from cardioseg.data.readers import detect_layout, get_reader
from cardioseg.errors import DataError

CFG = DataConfig()
ROW_MM, COL_MM = 0.308, 0.154  # depth, lateral
PATIENTS = {"patient0001": "train", "patient0200": "val", "patient0002": "test"}
INFO_2CH = "ED: 1\nES: 14\nNbFrame: 18\nSex: F\nAge: 49\nImageQuality: Good\nEF: 45.1\nFrameRate: 50.0\n"
INFO_4CH = "ED: 1\nES: 16\nNbFrame: 20\nSex: F\nAge: 49\nImageQuality: Medium\nEF: 43.2\nFrameRate: 50.0\n"


def _stored(camus224: Path, stem: str) -> np.ndarray:
    """A camus224 array as stored (index order i, j), cropped along depth to 200."""
    folder = "val" if stem.startswith("patient0200") else "train"
    return iio.imread(camus224 / folder / f"{stem}.png")[:, :200]


def _write_nifti(path: Path, stored: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(stored, np.diag([COL_MM, ROW_MM, 1.0, 1.0])), path)


def _write_mhd(path: Path, stored: np.ndarray) -> None:
    image = sitk.GetImageFromArray(np.ascontiguousarray(stored.T))  # SimpleITK arrays are (row, col)
    image.SetSpacing((COL_MM, ROW_MM))  # SimpleITK spacing is (x, y) = (col, row)
    sitk.WriteImage(image, str(path))


def _build(root: Path, camus224: Path, *, mhd: bool = False) -> None:
    """A CAMUS patient tree: 2023 NIfTI (flat) or 2019 MetaImage (training/ and testing/)."""
    for patient, split in PATIENTS.items():
        parent = root / ("testing" if split == "test" else "training") if mhd else root
        folder = parent / patient
        folder.mkdir(parents=True)
        (folder / "Info_2CH.cfg").write_text(INFO_2CH)
        (folder / "Info_4CH.cfg").write_text(INFO_4CH)
        for view in ("2CH", "4CH"):
            for phase in ("ED", "ES"):
                stem = f"{patient}_{view}_{phase}"
                writer, suffix = (_write_mhd, ".mhd") if mhd else (_write_nifti, ".nii.gz")
                writer(folder / f"{stem}{suffix}", _stored(camus224, stem))
                if not (mhd and split == "test"):  # the 2019 test set ships without labels
                    writer(folder / f"{stem}_gt{suffix}", _stored(camus224, f"{stem}_gt"))
        if not mhd:
            sequence = np.stack([_stored(camus224, f"{patient}_2CH_ED")] * 3, axis=-1)
            _write_nifti(folder / f"{patient}_2CH_half_sequence.nii.gz", sequence)


def _write_splits(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, fname in (("train", "training"), ("val", "validation"), ("test", "testing")):
        patients = [p for p, s in PATIENTS.items() if s == split]
        (folder / f"subgroup_{fname}.txt").write_text("".join(f"{p}\n" for p in patients))


@pytest.fixture()
def camus_nifti(tmp_path: Path, camus224: Path) -> Path:
    root = tmp_path / "database_nifti"
    _build(root, camus224)
    _write_splits(tmp_path / "database_split")
    return root


def test_nifti_tree_is_discovered_with_info_and_sequence_meta(camus_nifti: Path) -> None:
    assert detect_layout(camus_nifti) == "camus"
    refs = get_reader("camus").discover(camus_nifti, CFG)
    assert len(refs) == 12 and {r.patient_id for r in refs} == set(PATIENTS)
    ref = next(r for r in refs if r.case_id == "patient0001_2CH_ES")
    assert (ref.view, ref.phase) == ("2CH", "ES")
    meta = dict(ref.meta)
    assert {k: meta[k] for k in ("ED", "ES", "NbFrame", "Sex", "Age", "ImageQuality", "EF", "FrameRate")} == {
        "ED": 1,
        "ES": 14,
        "NbFrame": 18,
        "Sex": "F",
        "Age": 49,
        "ImageQuality": "Good",
        "EF": 45.1,
        "FrameRate": 50.0,
    }
    assert meta["sequence_path"] == camus_nifti / "patient0001" / "patient0001_2CH_half_sequence.nii.gz"
    assert dict(next(r for r in refs if r.case_id == "patient0001_4CH_ED").meta)["EF"] == 43.2
    assert "half_sequence" not in " ".join(r.case_id for r in refs)


def test_nifti_frames_come_back_apex_up_with_row_col_spacing(camus_nifti: Path, camus224: Path) -> None:
    reader = get_reader("camus")
    ref = next(r for r in reader.discover(camus_nifti, CFG) if r.case_id == "patient0200_4CH_ED")
    case = reader.load(ref, CFG)
    assert case.image.shape == case.label.shape == (200, 224)
    np.testing.assert_array_equal(case.image, _stored(camus224, "patient0200_4CH_ED").T)
    np.testing.assert_array_equal(case.label, _stored(camus224, "patient0200_4CH_ED_gt").T)
    assert case.spacing == pytest.approx((ROW_MM, COL_MM))
    assert case.meta["ImageQuality"] == "Medium" and case.view == "4CH"
    assert np.argwhere(case.label == 3).mean(axis=0)[0] > np.argwhere(case.label == 1).mean(axis=0)[0]  # atrium below


def test_official_splits_from_database_split_or_root(camus_nifti: Path) -> None:
    reader = get_reader("camus")
    assert reader.official_splits(camus_nifti) == PATIENTS
    split_dir = camus_nifti.parent / "database_split"
    for path in split_dir.iterdir():
        path.rename(camus_nifti / path.name)
    assert reader.official_splits(camus_nifti) == PATIENTS


def test_mhd_tree_in_training_and_testing_folders(tmp_path: Path, camus224: Path, camus_nifti: Path) -> None:
    root = tmp_path / "release" / "camus2019"
    _build(root, camus224, mhd=True)
    reader = get_reader("camus")
    assert detect_layout(root) == "camus"
    refs = reader.discover(root, CFG)
    assert len(refs) == 12
    assert all(r.label_path is None for r in refs if r.patient_id == "patient0002")
    assert reader.official_splits(root) == {"patient0001": "train", "patient0200": "train", "patient0002": "test"}
    # The same frame read from MetaImage and from NIfTI is the same Case.
    mhd_ref = next(r for r in refs if r.case_id == "patient0001_2CH_ED")
    nii_ref = next(r for r in reader.discover(camus_nifti, CFG) if r.case_id == "patient0001_2CH_ED")
    from_mhd, from_nii = reader.load(mhd_ref, CFG), reader.load(nii_ref, CFG)
    np.testing.assert_array_equal(from_mhd.image, from_nii.image)
    np.testing.assert_array_equal(from_mhd.label, from_nii.label)
    assert from_mhd.spacing == pytest.approx(from_nii.spacing)
    assert reader.load(next(r for r in refs if r.patient_id == "patient0002"), CFG).label is None


def test_singleton_third_axis_is_dropped(camus_nifti: Path, camus224: Path) -> None:
    path = camus_nifti / "patient0001" / "patient0001_2CH_ED.nii.gz"
    _write_nifti(path, _stored(camus224, "patient0001_2CH_ED")[..., None])
    reader = get_reader("camus")
    ref = next(r for r in reader.discover(camus_nifti, CFG) if r.image_path == path)
    case = reader.load(ref, CFG)
    assert case.image.shape == (200, 224) and case.spacing == pytest.approx((ROW_MM, COL_MM))


def _ref(root: Path, case_id: str) -> CaseRef:
    return next(r for r in get_reader("camus").discover(root, CFG) if r.case_id == case_id)


def test_missing_label_partner_names_the_image(camus_nifti: Path) -> None:
    (camus_nifti / "patient0001" / "patient0001_4CH_ES_gt.nii.gz").unlink()
    with pytest.raises(DataError, match=r"patient0001_4CH_ES\.nii\.gz"):
        get_reader("camus").discover(camus_nifti, CFG)


def test_truncated_and_empty_nifti_name_the_file(camus_nifti: Path) -> None:
    path = camus_nifti / "patient0001" / "patient0001_2CH_ED.nii.gz"
    ref = _ref(camus_nifti, "patient0001_2CH_ED")
    path.write_bytes(path.read_bytes()[:-200])  # SimpleITK would quietly return partial pixels
    with pytest.raises(DataError, match=r"patient0001_2CH_ED\.nii\.gz"):
        get_reader("camus").load(ref, CFG)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        get_reader("camus").load(ref, CFG)


def test_truncated_raw_of_an_mhd_names_the_file(tmp_path: Path, camus224: Path) -> None:
    _build(tmp_path, camus224, mhd=True)
    raw = tmp_path / "training" / "patient0001" / "patient0001_2CH_ED.raw"
    raw.write_bytes(raw.read_bytes()[:100])
    ref = _ref(tmp_path, "patient0001_2CH_ED")
    with pytest.raises(DataError, match=r"patient0001_2CH_ED\.mhd"):
        get_reader("camus").load(ref, CFG)


def test_label_shape_mismatch_and_foreign_values_name_the_label(camus_nifti: Path, camus224: Path) -> None:
    gt = camus_nifti / "patient0001" / "patient0001_2CH_ED_gt.nii.gz"
    ref = _ref(camus_nifti, "patient0001_2CH_ED")
    stored = _stored(camus224, "patient0001_2CH_ED_gt")
    _write_nifti(gt, stored[:, :150])
    with pytest.raises(DataError, match=r"_2CH_ED_gt\.nii\.gz.*shape"):
        get_reader("camus").load(ref, CFG)
    _write_nifti(gt, (stored > 0).astype(np.uint8) * 255)
    with pytest.raises(DataError, match=r"_2CH_ED_gt\.nii\.gz.*255"):
        get_reader("camus").load(ref, CFG)


def test_malformed_info_file_names_it(camus_nifti: Path) -> None:
    (camus_nifti / "patient0200" / "Info_2CH.cfg").write_text("ED 1\nthis is not a cfg\n")
    with pytest.raises(DataError, match=r"Info_2CH\.cfg"):
        get_reader("camus").discover(camus_nifti, CFG)
