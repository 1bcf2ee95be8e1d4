"""The LV-on-DICOM-MRI study's layout: <stem>.dcm + <stem>.png, test labels in test/GT/, built from real Sunnybrook slices."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cardioseg.config import load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.data.readers import detect_layout, get_reader
from cardioseg.errors import DataError

CFG = load_config().data


def _study_layout(sunnybrook5: Path, root: Path) -> dict[str, np.ndarray]:
    """Patients SCD0000101..401 in train/ (label beside), SCD0000501 in test/ (label in test/GT/); LV cavity 0/255.

    Returns the cavity mask each copied slice must read back as, by case id.
    """
    reader = get_reader("sunnybrook")
    expected = {}
    for ref in reader.discover(sunnybrook5, CFG):
        case = reader.load(ref, CFG)
        patient = case.image_path.parent.name
        split = "test" if patient == "SCD0000501" else "train"
        stem = f"{patient}_{case.image_path.stem}"
        folder = root / split
        (folder / "GT").mkdir(parents=True, exist_ok=True)
        shutil.copy(case.image_path, folder / f"{stem}.dcm")
        label_dir = folder / "GT" if split == "test" else folder
        Image.fromarray(((case.label == 1) * 255).astype(np.uint8)).save(label_dir / f"{stem}.png")
        expected[f"{split}_{stem}"] = (case.label == 1).astype(np.uint8)
    return expected


def test_the_study_layout_is_detected_read_and_split_by_its_folders(sunnybrook5: Path, tmp_path: Path) -> None:
    expected = _study_layout(sunnybrook5, tmp_path / "study")
    assert detect_layout(tmp_path / "study") == "dicom_png"
    reader = get_reader("dicom_png")
    refs = reader.discover(tmp_path / "study", CFG)
    assert sorted(r.case_id for r in refs) == sorted(expected) and len(refs) == 96
    assert len({r.patient_id for r in refs}) == 5  # PatientID from the headers, not one patient per slice file
    for ref in refs[::10]:
        case = reader.load(ref, CFG)
        np.testing.assert_array_equal(case.label, expected[ref.case_id])
        assert case.spacing is not None and case.image.shape == (256, 256)
    out = tmp_path / "prepared"
    prepare_dataset(load_config(overrides={"data.source": tmp_path / "study", "data.prepared": out,
                                           "preprocess.size": [64, 64]}), progress=False)
    manifest = PreparedDataset(out).manifest
    splits = manifest.groupby("split").case_id.apply(lambda ids: {i.split("_")[1] for i in ids}).to_dict()
    assert splits["test"] == {"SCD0000501"}  # the folder's split, whole
    assert set(splits) == {"train", "val", "test"}  # no val/ folder: validation patients taken from train/
    assert not splits["val"] & splits["train"]


def test_an_image_without_its_label_is_named(sunnybrook5: Path, tmp_path: Path) -> None:
    _study_layout(sunnybrook5, tmp_path / "study")
    lonely = next((tmp_path / "study" / "test" / "GT").glob("*.png"))
    lonely.unlink()
    with pytest.raises(DataError, match=rf"1 DICOM image\(s\) without <stem>.png beside them or in GT/: {lonely.stem}.dcm"):
        get_reader("dicom_png").discover(tmp_path / "study", CFG)
