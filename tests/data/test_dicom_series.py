"""DICOM series folders as volumes: real Sunnybrook cine series, and a series written from a real MSD volume
(one file per slice under random names), read back with the geometry of the original; the ``dicom`` layout of
prepare (series or cine frames with label files, or a DICOM SEG)."""

from __future__ import annotations

import random
import shutil
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from cardioseg.config import load_config
from cardioseg.data.readers import detect_layout
from cardioseg.data.readers import dicom as dicom_layout
from cardioseg.data.readers.dicom_series import choose_series, find_series, position_frames, read_volume
from cardioseg.errors import DataError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_msd_series(msd_heart_la: Path, folder: Path, first: int = 50, count: int = 12, *,
                     description: str = "MSD la_003", seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Slices ``first .. first + count - 1`` of the real la_003 volume as one DICOM file each, named at random.

    Returns the original (i, j, k) array, its NIfTI affine (moved to the first slice written) and the series UID.
    The array's (i, j) is DICOM's (column, row): slice k is written as ``array[:, :, k].T``.
    """
    image = nib.load(msd_heart_la / "imagesTr" / "la_003.nii.gz")
    array = np.asarray(image.dataobj[:, :, first : first + count])
    affine = image.affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, first], [0, 0, 0, 1]], float)
    lps = LPS_TO_RAS @ affine
    col_step, row_step = lps[:3, 0], lps[:3, 1]
    orientation = [*(col_step / np.linalg.norm(col_step)), *(row_step / np.linalg.norm(row_step))]
    uid, study, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    instance_numbers = random.Random(seed).sample(range(1, 1000), count)  # never the order
    for k in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesDescription = "MR", uid, description
        ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.SeriesNumber, ds.StudyID = study, frame_of_reference, 1, "1"
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "la_003", "MSD^la003", "", "O"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = "20130101", "120000", "", ""
        ds.InstanceNumber = instance_numbers[k]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in orientation]
        ds.ImagePositionPatient = [round(float(v), 4) for v in (lps @ [0, 0, k, 1])[:3]]
        ds.PixelSpacing = [float(np.linalg.norm(row_step)), float(np.linalg.norm(col_step))]
        ds.SliceThickness = float(np.linalg.norm(lps[:3, 2]))
        ds.Rows, ds.Columns = array.shape[1], array.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(array[:, :, k].T).astype("<u2").tobytes()
        ds.save_as(folder / f"{uuid.uuid4().hex}.dcm", enforce_file_format=True)
    return array, affine, uid


def _copy_shuffled(files: list[Path], folder: Path, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{uuid.UUID(int=random.Random(seed + i).getrandbits(128)).hex}.dcm" for i in range(len(files))]
    for source, name in zip(files, random.Random(seed).sample(names, len(names))):
        shutil.copy(source, folder / name)


def _sunnybrook_files(sunnybrook5: Path, patient: str = "SCD0000101") -> list[Path]:
    return sorted((sunnybrook5 / "dicoms" / patient).glob("*.dcm"))


def test_a_real_sunnybrook_folder_is_one_cine_series_ordered_along_the_slice_normal(sunnybrook5: Path) -> None:
    files = _sunnybrook_files(sunnybrook5)
    series, single = find_series(files)
    assert single == [] and len(series) == 1
    (cine,) = series
    assert cine.is_cine and (cine.positions, cine.phases) == (9, 2) and cine.n_files == 18
    headers = [[pydicom.dcmread(p, stop_before_pixels=True) for p in phases] for phases in cine.files]
    orientation = np.array(headers[0][0].ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    distances = [float(np.dot(normal, np.array(h[0].ImagePositionPatient, float))) for h in headers]
    assert np.all(np.diff(distances) > 9.9)  # 10 mm apart, from the first position up
    for phases in headers:
        assert phases[0].ImagePositionPatient == phases[1].ImagePositionPatient
        assert float(phases[0].TriggerTime) < float(phases[1].TriggerTime)
    assert cine.spacing == pytest.approx((1.367188, 1.367188, 10.0), abs=1e-3) and cine.note == ""
    frames = position_frames(cine, 0)
    assert frames.frames.shape == (2, 256, 256) and frames.spacing == pytest.approx((1.367188, 1.367188))
    np.testing.assert_allclose(frames.frame_times_ms,
                               [0.0, float(headers[0][1].TriggerTime) - float(headers[0][0].TriggerTime)])


def test_a_sunnybrook_phase_reads_as_simpleitk_reads_the_same_files(sunnybrook5: Path, tmp_path: Path) -> None:
    (cine,) = find_series(_sunnybrook_files(sunnybrook5))[0]
    phase = [files[0] for files in cine.files]
    _copy_shuffled(phase, tmp_path / "phase0", seed=3)
    (series,) = find_series(sorted((tmp_path / "phase0").glob("*.dcm")))[0]
    assert not series.is_cine and series.positions == 9
    volume = read_volume(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "phase0")))
    reference = reader.Execute()
    np.testing.assert_array_equal(volume, sitk.GetArrayFromImage(reference).T)
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(reference.GetSpacing())
    lps[:3, 3] = reference.GetOrigin()
    np.testing.assert_allclose(series.affine, LPS_TO_RAS @ lps, atol=1e-3)


def test_a_series_written_from_a_real_msd_volume_reads_back_with_its_geometry(msd_heart_la: Path,
                                                                              tmp_path: Path) -> None:
    array, affine, uid = write_msd_series(msd_heart_la, tmp_path / "series")
    (series,) = find_series(sorted((tmp_path / "series").glob("*.dcm")))[0]
    assert series.uid == uid and series.description == "MSD la_003" and series.n_files == 12
    np.testing.assert_array_equal(read_volume(series), array)
    np.testing.assert_allclose(series.affine, affine, atol=1e-3)
    assert series.spacing == pytest.approx((1.25, 1.25, 1.37), abs=1e-4)


def test_the_same_series_shuffled_under_other_names_gives_the_same_volume(msd_heart_la: Path, tmp_path: Path) -> None:
    write_msd_series(msd_heart_la, tmp_path / "a")
    _copy_shuffled(sorted((tmp_path / "a").glob("*.dcm")), tmp_path / "b", seed=11)
    first = find_series(sorted((tmp_path / "a").glob("*.dcm")))[0][0]
    second = find_series(sorted((tmp_path / "b").glob("*.dcm")))[0][0]
    assert [p.name for p in first.files[0]] != [p.name for p in second.files[0]]
    np.testing.assert_array_equal(read_volume(first), read_volume(second))
    np.testing.assert_array_equal(first.affine, second.affine)


def test_several_series_in_one_folder_are_listed_and_one_is_chosen_by_uid(msd_heart_la: Path, sunnybrook5: Path,
                                                                          tmp_path: Path) -> None:
    folder = tmp_path / "study"
    _, _, msd_uid = write_msd_series(msd_heart_la, folder, count=6)
    _copy_shuffled(_sunnybrook_files(sunnybrook5), folder, seed=5)
    series, _ = find_series(sorted(folder.glob("*.dcm")))
    assert len(series) == 2
    (chosen,) = choose_series(series, msd_uid, folder)
    assert chosen.uid == msd_uid and chosen.n_files == 6
    with pytest.raises(DataError) as error:
        choose_series(series, "1.2.3.4", folder)
    message = str(error.value)
    assert "no series with SeriesInstanceUID 1.2.3.4" in message
    assert f"{msd_uid} 'MSD la_003': 6 files (6 slices)" in message
    assert "18 files (cine, 9 position(s) x 2 phases)" in message


def test_a_missing_slice_is_said_and_a_missing_phase_refused(msd_heart_la: Path, sunnybrook5: Path,
                                                             tmp_path: Path) -> None:
    write_msd_series(msd_heart_la, tmp_path / "gap", count=6)
    files = sorted((tmp_path / "gap").glob("*.dcm"))
    ordered = find_series(files)[0][0].files
    ordered[2][0].unlink()
    (series,) = find_series(sorted((tmp_path / "gap").glob("*.dcm")))[0]
    assert series.positions == 5 and "uneven slice steps [1.37, 2.74, 1.37, 1.37] mm" in series.note
    cine_files = _sunnybrook_files(sunnybrook5)
    with pytest.raises(DataError, match=r"slice positions hold different numbers of phases \(\[1, 2\]\)"):
        find_series(cine_files[1:])


def _msd_label(msd_heart_la: Path, first: int = 50, count: int = 12) -> np.ndarray:
    return np.asarray(nib.load(msd_heart_la / "labelsTr" / "la_003.nii.gz").dataobj[:, :, first : first + count])


def test_the_dicom_layout_reads_a_series_folder_with_its_nifti_mask(msd_heart_la: Path, tmp_path: Path) -> None:
    array, affine, _ = write_msd_series(msd_heart_la, tmp_path / "data" / "la003")
    label = _msd_label(msd_heart_la)
    nib.save(nib.Nifti1Image(label, affine), tmp_path / "data" / "la003_mask.nii.gz")
    assert detect_layout(tmp_path / "data") == "dicom"
    cfg = load_config().data
    (ref,) = dicom_layout.discover(tmp_path / "data", cfg)
    case = dicom_layout.load(ref, cfg)
    np.testing.assert_array_equal(case.image, array)
    np.testing.assert_array_equal(case.label, label)
    np.testing.assert_allclose(case.affine, affine, atol=1e-3)
    assert case.spacing == pytest.approx((1.25, 1.25, 1.37), abs=1e-4) and case.case_id == "la003"


def test_the_dicom_layout_reads_a_dicom_seg_referencing_the_series(msd_heart_la: Path, tmp_path: Path) -> None:
    import highdicom as hd

    write_msd_series(msd_heart_la, tmp_path / "data" / "la003")
    label = _msd_label(msd_heart_la)
    (series,) = find_series(sorted((tmp_path / "data" / "la003").glob("*.dcm")))[0]
    sources = [pydicom.dcmread(files[0]) for files in series.files]
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="left atrium",
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
        segmented_property_type=hd.sr.CodedConcept("82471001", "SCT", "Left atrium"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=label.transpose(2, 1, 0).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[segment],
        series_instance_uid=generate_uid(), series_number=2, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="1", device_serial_number="1")
    seg.save_as(tmp_path / "data" / "la003_seg.dcm")
    assert detect_layout(tmp_path / "data") == "dicom"
    cfg = load_config().data
    (ref,) = dicom_layout.discover(tmp_path / "data", cfg)
    case = dicom_layout.load(ref, cfg)
    np.testing.assert_array_equal(case.label, label)
    assert dict(case.meta["label_names"]) == {1: "left atrium"}


def test_the_dicom_layout_takes_labelled_frames_of_a_real_echo_cine_and_refuses_unlabelled_files(
    camus224: Path, tmp_path: Path
) -> None:
    from tests.data.test_dicom_frames import _camus_cine, _us_multiframe

    data = tmp_path / "data"
    data.mkdir()
    rgb = _camus_cine(camus224, frames=2)
    _us_multiframe(rgb, regions=[(0, 0, 223, 223, 0.03, 0.03)]).save_as(data / "echo.dcm", enforce_file_format=True)
    for number, phase in ((1, "ED"), (2, "ES")):
        shutil.copy(camus224 / "train" / f"patient0001_2CH_{phase}_gt.png", data / f"echo_frame{number}_mask.png")
    assert detect_layout(data) == "dicom"
    cfg = load_config().data
    refs = dicom_layout.discover(data, cfg)
    assert [ref.case_id for ref in refs] == ["echo_frame1", "echo_frame2"]
    case = dicom_layout.load(refs[1], cfg)
    np.testing.assert_allclose(case.image, rgb[1].astype(float) @ [0.299, 0.587, 0.114], atol=1e-3)
    np.testing.assert_array_equal(case.label, np.asarray(Image.open(camus224 / "train" / "patient0001_2CH_ES_gt.png")))
    assert case.spacing == pytest.approx((0.3, 0.3))
    shutil.copy(data / "echo.dcm", data / "other.dcm")
    with pytest.raises(DataError, match=r"1 DICOM image\(s\) or series without a label .*: other\.dcm"):
        dicom_layout.discover(data, cfg)


def test_prepare_reads_the_dicom_layout_of_real_echo_cines(camus224: Path, tmp_path: Path) -> None:
    from cardioseg.data.prepare import prepare_dataset
    from tests.data.test_dicom_frames import _us_multiframe

    data = tmp_path / "data"
    data.mkdir()
    for number in range(1, 7):
        patient = f"patient{number:04d}_4CH"
        grey = np.stack([np.asarray(Image.open(camus224 / "train" / f"{patient}_{p}.png")) for p in ("ED", "ES")])
        _us_multiframe(np.repeat(grey[..., None], 3, axis=-1), regions=[(0, 0, 223, 223, 0.03, 0.03)]).save_as(
            data / f"{patient}.dcm", enforce_file_format=True)
        for frame, phase in ((1, "ED"), (2, "ES")):
            shutil.copy(camus224 / "train" / f"{patient}_{phase}_gt.png", data / f"{patient}_frame{frame}_mask.png")
    cfg = load_config(overrides={"data.source": data, "data.prepared": tmp_path / "prepared",
                                 "preprocess.size": [64, 64], "data.patient_pattern": r"patient\d+"})
    result = prepare_dataset(cfg, progress=False)
    assert result.n_cases == 12 and result.bad_files == []
    assert sum(result.split_counts.values()) == 12
