"""`predict --format dicom-seg|rtstruct|nifti`: read back with highdicom / pydicom, the masks equal the PNG output.

RTSTRUCT contours are rasterised back by pixel centres with the even-odd rule (the rule
``dicom_out_rtstruct`` documents), through scikit-image and matplotlib rather than the writer's
own code; under that rule the round trip is exact, so the tests compare pixel for pixel.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from inference_helpers import CAMUS_PRE, camus_files, make_bundle, network_inputs
from matplotlib.path import Path as Polygon
from PIL import Image
from skimage.draw import polygon as fill_polygon

from cardioseg.config import Config, load_config
from cardioseg.errors import DataError
from cardioseg.inference.dicom_out import OutputSeries, source_headers, structures
from cardioseg.inference.dicom_out_rtstruct import contours
from cardioseg.inference.inputs import find_inputs
from cardioseg.inference.outputs import check_output_format, write_dicom_labels
from cardioseg.inference.predict import predict_files
from cardioseg.models.checkpoint import save_bundle

LV, MYOCARDIUM, LEFT_ATRIUM, TISSUE = "87878005", "49848007", "82471001", "85756007"


def _cfg(out: Path, fmt: str) -> Config:
    return load_config(overrides={"predict.out_dir": out, "predict.format": fmt})


def _slices(sunnybrook5: Path) -> list[Path]:
    """One real short-axis slice of each of three patients (file names that differ, so do their outputs)."""
    return [sorted((sunnybrook5 / "dicoms" / p).glob("*.dcm"))[k]
            for k, p in enumerate(("SCD0000101", "SCD0000201", "SCD0000301"))]


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def three_class_checkpoint(camus224: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-channel CAMUS model (LV, myocardium, left atrium): its random head shifted so each channel's median
    logit on real images is 0 and scaled to std 4, so that every class wins somewhere."""
    images = network_inputs(camus_files(camus224, 8), CAMUS_PRE)
    bundle = make_bundle("plain_unet", images, classes=4, base=8, seed=2)
    with torch.no_grad():
        head = [m for m in bundle.model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        logits = bundle.model(images)
        scale = 4.0 / float(logits.std())
        head.weight.mul_(scale)
        head.bias.copy_((head.bias - logits.transpose(0, 1).reshape(4, -1).median(dim=1).values) * scale)
    return save_bundle(bundle, tmp_path_factory.mktemp("ckpt3") / "camus3.safetensors")


@pytest.fixture(scope="module")
def png_masks(sunnybrook5: Path, camus_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("png")
    predict_files(_slices(sunnybrook5), [camus_checkpoint], _cfg(out, "auto"))
    return out


def test_dicom_seg_holds_the_png_mask_and_references_its_image(sunnybrook5: Path, camus_checkpoint: Path,
                                                              png_masks: Path, tmp_path: Path) -> None:
    result = predict_files(_slices(sunnybrook5), [camus_checkpoint], _cfg(tmp_path, "dicom-seg"))
    assert list(result.outputs["mask"]) == [str(tmp_path / f"{s.stem}_seg.dcm") for s in _slices(sunnybrook5)]
    for source in _slices(sunnybrook5):
        image = pydicom.dcmread(source, stop_before_pixels=True)
        seg = hd.seg.segread(tmp_path / f"{source.stem}_seg.dcm")
        assert seg.SegmentationType == "BINARY" and seg.number_of_segments == 1
        (segment,) = seg.SegmentSequence
        assert segment.SegmentLabel == "LV" and segment.SegmentAlgorithmType == "AUTOMATIC"
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == LV
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
        (series,) = seg.ReferencedSeriesSequence
        assert series.SeriesInstanceUID == image.SeriesInstanceUID
        assert [i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence] == [image.SOPInstanceUID]
        assert (seg.StudyInstanceUID, seg.PatientID) == (image.StudyInstanceUID, image.PatientID)
        assert image.PatientBirthDate == "00000000" and seg.PatientBirthDate == ""  # anonymised: no valid date
        mask = seg.get_pixels_by_source_instance([image.SOPInstanceUID], combine_segments=True, relabel=False)[0]
        expected = _png(png_masks / f"{source.stem}_mask.png")
        assert expected.any() and not expected.all()
        np.testing.assert_array_equal(mask, expected)


def test_three_classes_are_three_coded_segments(sunnybrook5: Path, three_class_checkpoint: Path,
                                                tmp_path: Path) -> None:
    source = _slices(sunnybrook5)[0]
    predict_files([source], [three_class_checkpoint], _cfg(tmp_path / "png", "png"))
    predict_files([source], [three_class_checkpoint], _cfg(tmp_path / "seg", "dicom-seg"))
    expected = _png(tmp_path / "png" / f"{source.stem}_mask.png")
    assert set(np.unique(expected)) == {0, 1, 2, 3}
    seg = hd.seg.segread(tmp_path / "seg" / f"{source.stem}_seg.dcm")
    assert [(s.SegmentNumber, s.SegmentLabel, s.SegmentedPropertyTypeCodeSequence[0].CodeValue)
            for s in seg.SegmentSequence] == [(1, "LV", LV), (2, "myocardium", MYOCARDIUM), (3, "left atrium", LEFT_ATRIUM)]
    uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
    mask = seg.get_pixels_by_source_instance([uid], combine_segments=True, relabel=False)[0]
    np.testing.assert_array_equal(mask, expected)


def test_a_class_without_a_known_role_is_tissue_with_its_name() -> None:
    found = structures({1: "LV blood pool", 2: "scar"}, {})
    assert [(s.name, s.role, s.concept.value, s.category.value) for s in found] == [
        ("LV blood pool", "lv_cavity", LV, "91723000"), ("scar", None, TISSUE, TISSUE)]


def _rasterise(ds: pydicom.Dataset, image: pydicom.Dataset, roi: int, shape: tuple[int, int]) -> np.ndarray:
    """An ROI's contours on one image back to pixels: centres inside an odd number of contours (scikit-image)."""
    origin = np.asarray(image.ImagePositionPatient, float)
    across, down = np.asarray(image.ImageOrientationPatient[:3], float), np.asarray(image.ImageOrientationPatient[3:], float)
    row_mm, col_mm = (float(v) for v in image.PixelSpacing)
    mask = np.zeros(shape, bool)
    item = next(r for r in ds.ROIContourSequence if r.ReferencedROINumber == roi)
    for contour in item.get("ContourSequence", []):
        assert contour.ContourGeometricType == "CLOSED_PLANAR"
        assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
        points = np.asarray(contour.ContourData, float).reshape(-1, 3) - origin
        assert len(points) == contour.NumberOfContourPoints
        assert np.abs(points @ np.cross(across, down)).max() < 1e-3  # in the image plane
        cols, rows = points @ across / col_mm, points @ down / row_mm
        filled = np.zeros(shape, bool)
        filled[fill_polygon(rows, cols, shape)] = True
        mask ^= filled
    return mask


def test_rtstruct_contours_rasterise_to_the_png_mask(sunnybrook5: Path, three_class_checkpoint: Path,
                                                      tmp_path: Path) -> None:
    sources = _slices(sunnybrook5)[:2]
    predict_files(sources, [three_class_checkpoint], _cfg(tmp_path / "png", "png"))
    predict_files(sources, [three_class_checkpoint], _cfg(tmp_path / "rt", "rtstruct"))
    for source in sources:
        image = pydicom.dcmread(source, stop_before_pixels=True)
        ds = pydicom.dcmread(tmp_path / "rt" / f"{source.stem}_rtstruct.dcm")
        assert ds.Modality == "RTSTRUCT" and ds.SOPClassUID == pydicom.uid.RTStructureSetStorage
        assert (ds.StudyInstanceUID, ds.PatientID) == (image.StudyInstanceUID, image.PatientID)
        (frame_of_reference,) = ds.ReferencedFrameOfReferenceSequence
        assert frame_of_reference.FrameOfReferenceUID == image.FrameOfReferenceUID
        series = frame_of_reference.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
        assert series.SeriesInstanceUID == image.SeriesInstanceUID
        assert series.ContourImageSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
        assert [r.ROIName for r in ds.StructureSetROISequence] == ["LV", "myocardium", "left atrium"]
        assert [o.RTROIIdentificationCodeSequence[0].CodeValue for o in ds.RTROIObservationsSequence] == [
            LV, MYOCARDIUM, LEFT_ATRIUM]
        expected = _png(tmp_path / "png" / f"{source.stem}_mask.png")
        for roi in (1, 2, 3):
            assert (expected == roi).any()
            np.testing.assert_array_equal(_rasterise(ds, image, roi, expected.shape), expected == roi)


HARD_MASKS = {
    "one pixel": np.pad([[1]], 2),
    "one-pixel line": np.pad([[1, 1, 1, 1]], 2),
    "diagonal pixels": np.pad(np.eye(3, dtype=int), 2),
    "ring with an island in its hole": np.pad(np.pad(np.pad(np.pad([[1]], 1), 1, constant_values=1), 1), 2,
                                              constant_values=0),
    "hole touching the outside at a corner": np.pad([[1, 1, 0], [1, 0, 1], [0, 1, 1]], 2),
}


def _even_odd(mask: np.ndarray) -> np.ndarray:
    """Pixel centres inside an odd number of the mask's contours, tested by matplotlib."""
    rows, cols = np.mgrid[: mask.shape[0], : mask.shape[1]]
    centres = np.column_stack([cols.ravel(), rows.ravel()])
    inside = np.zeros(mask.size, bool)
    for polygon in contours(mask.astype(bool)):
        inside ^= Polygon(polygon).contains_points(centres)
    return inside.reshape(mask.shape)


@pytest.mark.parametrize("name", HARD_MASKS)
def test_contours_give_back_hand_checked_masks(name: str) -> None:
    mask = HARD_MASKS[name].astype(bool)
    np.testing.assert_array_equal(_even_odd(mask), mask)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(arrays(np.bool_, st.tuples(st.integers(1, 24), st.integers(1, 24))))
def test_contours_give_back_any_mask(mask: np.ndarray) -> None:
    np.testing.assert_array_equal(_even_odd(mask), mask)


def test_nifti_format_for_a_dicom_slice_has_its_pixel_spacing(sunnybrook5: Path, camus_checkpoint: Path,
                                                              png_masks: Path, tmp_path: Path) -> None:
    source = _slices(sunnybrook5)[0]
    predict_files([source], [camus_checkpoint], _cfg(tmp_path, "nifti"))
    image = nib.load(tmp_path / f"{source.stem}_mask.nii.gz")
    np.testing.assert_array_equal(np.asanyarray(image.dataobj)[..., 0], _png(png_masks / f"{source.stem}_mask.png"))
    row_mm, col_mm = (float(v) for v in pydicom.dcmread(source, stop_before_pixels=True).PixelSpacing)
    assert image.header.get_zooms()[:2] == pytest.approx((row_mm, col_mm))


@pytest.mark.parametrize("fmt", ["dicom-seg", "rtstruct"])
def test_dicom_formats_refuse_a_png_input_before_writing(camus224: Path, camus_checkpoint: Path, tmp_path: Path,
                                                         fmt: str) -> None:
    png = camus_files(camus224, 1)[0]
    with pytest.raises(DataError, match=f"--format {fmt} .*not DICOM") as caught:
        predict_files([png], [camus_checkpoint], _cfg(tmp_path / "out", fmt))
    assert caught.value.path == png
    assert not list((tmp_path / "out").glob("*.dcm")) and not list((tmp_path / "out").glob("*_mask*"))


def test_format_check_names_the_first_input_that_cannot_have_it(sunnybrook5: Path, camus224: Path,
                                                                small_volume: Path) -> None:
    dicom, png = _slices(sunnybrook5)[0], camus_files(camus224, 1)[0]
    found, _ = find_inputs([dicom, png, small_volume])
    check_output_format(found, "auto")
    with pytest.raises(DataError, match="not DICOM") as caught:
        check_output_format(found, "dicom-seg")
    assert caught.value.path == png
    with pytest.raises(DataError, match="--format png writes 2D masks") as caught:
        check_output_format(found, "png")
    assert caught.value.path == small_volume


def test_rtstruct_of_an_image_without_patient_geometry_is_refused(sunnybrook5: Path, camus_checkpoint: Path,
                                                                  tmp_path: Path) -> None:
    ds = pydicom.dcmread(_slices(sunnybrook5)[0])
    del ds.ImagePositionPatient
    ds.save_as(tmp_path / "no_position.dcm")
    with pytest.raises(DataError, match=r"ImagePositionPatient is missing.*--format dicom-seg") as caught:
        predict_files([tmp_path / "no_position.dcm"], [camus_checkpoint], _cfg(tmp_path / "out", "rtstruct"))
    assert caught.value.path == tmp_path / "no_position.dcm"
    assert not list((tmp_path / "out").glob("*.dcm"))


def test_labels_that_do_not_fit_their_source_are_refused(sunnybrook5: Path) -> None:
    header = pydicom.dcmread(_slices(sunnybrook5)[0], stop_before_pixels=True)
    with pytest.raises(DataError, match="2 label frame"):
        source_headers([header], np.zeros((2, 256, 256), np.uint8), Path("x.dcm"))
    with pytest.raises(DataError, match="the labels are 128x256"):
        source_headers([header], np.zeros((1, 128, 256), np.uint8), Path("x.dcm"))
    assert source_headers([header], np.zeros((1, 256, 256), np.uint8), Path("x.dcm"))[0] is not header


def _rasterise_frames(ds: pydicom.Dataset, images: list[pydicom.Dataset], roi: int) -> np.ndarray:
    shape = (int(images[0].Rows), int(images[0].Columns))
    return np.stack([_rasterise_on(ds, image, roi, shape) for image in images])


def _rasterise_on(ds: pydicom.Dataset, image: pydicom.Dataset, roi: int, shape: tuple[int, int]) -> np.ndarray:
    """``_rasterise`` limited to the contours drawn on ``image``."""
    only = pydicom.Dataset()
    item = next(r for r in ds.ROIContourSequence if r.ReferencedROINumber == roi)
    kept = pydicom.Dataset()
    kept.ReferencedROINumber = roi
    kept.ContourSequence = [c for c in item.get("ContourSequence", [])
                            if c.ContourImageSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID]
    only.ROIContourSequence = [kept]
    return _rasterise(only, image, roi, shape)


def test_a_dicom_series_gets_one_seg_and_one_rtstruct_slice_by_slice(msd_heart_la: Path, tmp_path: Path) -> None:
    """A real MSD volume written as a DICOM series (shuffled file names): the volume's labels (column, row, slice)
    land on the right file, through the series' own position order."""
    from tests.data.test_dicom_series import write_msd_series

    write_msd_series(msd_heart_la, tmp_path / "series", first=50, count=6)
    label = np.asarray(nib.load(msd_heart_la / "labelsTr" / "la_003.nii.gz").dataobj[:, :, 50:56]).astype(np.uint8)
    assert label.any()
    (item,), _ = find_inputs([tmp_path / "series"])
    assert item.kind == "series" and item.series is not None
    classes = structures({1: "left atrium"}, {})
    images = [pydicom.dcmread(files[0], stop_before_pixels=True) for files in item.series.files]
    expected = np.stack([label[:, :, k].T for k in range(label.shape[2])])

    seg = hd.seg.segread(write_dicom_labels("dicom-seg", tmp_path / "la_seg.dcm", item, label, classes, OutputSeries()))
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == LEFT_ATRIUM
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == images[0].SeriesInstanceUID
    got = seg.get_pixels_by_source_instance([i.SOPInstanceUID for i in images], combine_segments=True, relabel=False)
    np.testing.assert_array_equal(got, expected)

    rt = pydicom.dcmread(write_dicom_labels("rtstruct", tmp_path / "la_rt.dcm", item, label, classes, OutputSeries()))
    referenced = rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert [c.ReferencedSOPInstanceUID for c in referenced.ContourImageSequence] == [i.SOPInstanceUID for i in images]
    np.testing.assert_array_equal(_rasterise_frames(rt, images, 1), expected.astype(bool))


def _echo_cine(camus224: Path, path: Path) -> np.ndarray:
    """A grey ultrasound multi-frame file of two real CAMUS frames (ED, ES); returns their reference labels (F, H, W)."""
    names = ("patient0001_2CH_ED", "patient0001_2CH_ES")
    frames = np.stack([np.asarray(Image.open(camus224 / "train" / f"{n}.png")) for n in names])
    labels = np.stack([np.asarray(Image.open(camus224 / "train" / f"{n}_gt.png")) for n in names])
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.UltrasoundMultiFrameImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "US", "patient0001", "CAMUS^patient0001"
    ds.Rows, ds.Columns, ds.NumberOfFrames = frames.shape[1], frames.shape[2], len(frames)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return labels


def test_an_echo_cine_without_patient_geometry_gets_a_clear_error_for_both_formats(camus224: Path,
                                                                                    tmp_path: Path) -> None:
    """A SEG of several frames is indexed by their positions, and an RTSTRUCT is drawn in patient space: an echo
    cine has neither, so each format names what is missing (and nothing is written)."""
    labels = _echo_cine(camus224, tmp_path / "echo.dcm")
    (item,), _ = find_inputs([tmp_path / "echo.dcm"])
    assert item.kind == "cine"
    classes = structures({1: "LV endocardium", 2: "LV myocardium", 3: "left atrium"}, {})
    stack = np.moveaxis(labels, 0, -1)  # (H, W, F), as volumes.frames_volume stacks a cine
    with pytest.raises(DataError, match=r"a DICOM SEG of 2 frames needs images placed in a frame of reference"):
        write_dicom_labels("dicom-seg", tmp_path / "echo_seg.dcm", item, stack, classes, OutputSeries())
    with pytest.raises(DataError, match=r"ImagePositionPatient is missing.*--format dicom-seg"):
        write_dicom_labels("rtstruct", tmp_path / "echo_rt.dcm", item, stack, classes, OutputSeries())
    assert not list(tmp_path.glob("echo_*"))


def test_a_dicom_without_type_2_patient_attributes_still_gets_a_seg(sunnybrook5: Path, camus_checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    """Anonymisers often delete attributes DICOM wants present even if empty; the SEG has them, empty."""
    ds = pydicom.dcmread(_slices(sunnybrook5)[0])
    for keyword in ("PatientBirthDate", "PatientSex", "StudyID", "ReferringPhysicianName", "AccessionNumber"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.save_as(tmp_path / "anonymised.dcm")
    predict_files([tmp_path / "anonymised.dcm"], [camus_checkpoint], _cfg(tmp_path / "out", "dicom-seg"))
    seg = hd.seg.segread(tmp_path / "out" / "anonymised_seg.dcm")
    assert (seg.PatientBirthDate, seg.PatientSex, seg.PatientID) == ("", "", ds.PatientID)


def test_slices_of_several_frames_of_reference_are_refused_with_that_reason(sunnybrook5: Path) -> None:
    """Sunnybrook's anonymised slices each carry their own FrameOfReferenceUID, even within one series."""
    from cardioseg.inference.dicom_out import write_dicom_seg

    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((sunnybrook5 / "dicoms" / "SCD0000101").glob("*.dcm"))[:2]]
    assert headers[0].SeriesInstanceUID == headers[1].SeriesInstanceUID
    with pytest.raises(DataError, match="2 different FrameOfReferenceUIDs"):
        write_dicom_seg(Path("never.dcm"), headers, np.zeros((2, 256, 256), np.uint8),
                        structures({1: "LV"}, {}), Path("series"), OutputSeries())
    assert not Path("never.dcm").exists()
