"""Multi-frame and colour DICOM as grey frames: pydicom's own test files, and files built from real CAMUS and
Sunnybrook pixels (ultrasound region calibration, frame times, tagged ED/ES, enhanced multi-frame MR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, convert_color_space, pixel_array
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from cardioseg.data.readers.base import read_dicom
from cardioseg.data.readers.dicom_frames import read_dicom_frames
from cardioseg.errors import DataError

BT601 = np.array([0.299, 0.587, 0.114])
CM_UNITS = 3


def _testfile(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} not available offline")
    return Path(path)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ BT601


def test_ybr_full_422_jpeg_ultrasound_cine_gives_its_luminance_frames() -> None:
    path = _testfile("examples_ybr_color.dcm")  # US multi-frame, 30 frames, JPEG baseline, YBR_FULL_422
    cine = read_dicom_frames(path)
    assert cine.frames.shape == (30, 240, 320) and cine.frames.dtype == np.float32
    raw_y = pixel_array(path, as_rgb=False)[..., 0]  # the Y channel as stored, no colour conversion
    np.testing.assert_array_equal(cine.frames, raw_y)
    # pydicom's RGB, converted back to YBR_FULL, agrees but for the rounding and clipping of its round trip
    y_back = convert_color_space(pydicom.dcmread(path).pixel_array, "RGB", "YBR_FULL", per_frame=True)[..., 0]
    difference = np.abs(cine.frames - y_back)
    assert difference.mean() < 0.6 and difference.max() <= 6


def test_ultrasound_region_calibration_gives_the_pixel_size_in_mm_and_frame_time_the_times() -> None:
    cine = read_dicom_frames(_testfile("examples_ybr_color.dcm"))
    # by hand from the header: one 2D region, units 3 (cm), PhysicalDeltaX = Y = 0.05104970559477806 cm; FrameTime 33.333
    assert cine.spacing == pytest.approx((0.5104970559477806, 0.5104970559477806))
    assert cine.spacing_source == "ultrasound regions"
    np.testing.assert_allclose(cine.frame_times_ms, np.arange(30) * 33.333)
    assert cine.ed_frame is None and cine.es_frame is None


def test_palette_colour_is_looked_up_then_converted_with_bt601_weights() -> None:
    path = _testfile("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    indices = ds.pixel_array
    # the palette read by hand: 16-bit entries, the first index mapped by the descriptor's second value
    first = int(ds.RedPaletteColorLookupTableDescriptor[1])
    lut = np.stack([np.frombuffer(getattr(ds, f"{c}PaletteColorLookupTableData"), "<u2")
                    for c in ("Red", "Green", "Blue")], axis=-1)
    expected = _luma(lut[np.clip(indices.astype(int) - first, 0, len(lut) - 1)])
    frames = read_dicom_frames(path)
    assert frames.frames.shape == (1, 350, 800)
    np.testing.assert_allclose(frames.frames[0], expected, atol=0.01)
    np.testing.assert_allclose(frames.frames[0], _luma(apply_color_lut(indices, ds)), atol=0.01)  # pydicom's lookup
    # two regions: the 2D sector in cm (0.02622878766196998 cm) is chosen, not the waveform strip
    assert frames.spacing == pytest.approx((0.2622878766196998, 0.2622878766196998))


def test_rgb_ultrasound_is_bt601_luma_and_reads_as_one_2d_image() -> None:
    path = _testfile("examples_rgb_color.dcm")
    rgb = pydicom.dcmread(path).pixel_array
    image, spacing, _ = read_dicom(path)
    assert image.shape == (240, 320)
    np.testing.assert_allclose(image, _luma(rgb), atol=1e-3)
    assert np.abs(image - convert_color_space(rgb, "RGB", "YBR_FULL")[..., 0]).max() <= 0.5
    assert spacing is None  # no region, no PixelSpacing: unknown
    assert read_dicom_frames(path).spacing_source == "unknown"


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jls_lossy_sample.dcm",
                                  "examples_jpeg2k.dcm", "SC_ybr_full_422_uncompressed.dcm"])
def test_compressed_colour_files_decode_to_the_luminance_of_pydicoms_rgb(name: str) -> None:
    path = _testfile(name)
    ds = pydicom.dcmread(path)
    rgb = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns, 3)
    frames = read_dicom_frames(path).frames
    assert frames.shape == rgb.shape[:3]
    y = np.stack([convert_color_space(frame, "RGB", "YBR_FULL")[..., 0] for frame in rgb])
    assert np.abs(frames - y).max() <= 2  # YBR files: their stored Y; RGB ones: BT.601 of the RGB


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"])
def test_lossless_compressed_mr_equals_the_uncompressed_file(name: str) -> None:
    image, spacing, _ = read_dicom(_testfile(name))
    original, original_spacing, _ = read_dicom(_testfile("MR_small.dcm"))
    np.testing.assert_array_equal(image, original)
    assert spacing == original_spacing == (0.3125, 0.3125)


def _with_syntax(source: Path, target: Path, syntax: str) -> Path:
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(target, enforce_file_format=True)
    return target


def test_an_unsupported_transfer_syntax_is_a_data_error_naming_the_file_and_the_syntax(tmp_path: Path) -> None:
    # an echo cine stored as H.264 video, which pydicom has no decoder for
    video = _with_syntax(_testfile("examples_ybr_color.dcm"), tmp_path / "echo_h264.dcm", "1.2.840.10008.1.2.4.102")
    with pytest.raises(DataError, match=r"echo_h264\.dcm.*MPEG-4 AVC/H\.264.*1\.2\.840\.10008\.1\.2\.4\.102.*not supported"):
        read_dicom_frames(video)
    still = _with_syntax(_testfile("SC_rgb_jpeg_dcmtk.dcm"), tmp_path / "still_hevc.dcm", "1.2.840.10008.1.2.4.107")
    with pytest.raises(DataError, match=r"still_hevc\.dcm.*HEVC.*not supported"):
        read_dicom(still)


def test_a_truncated_cine_and_a_multi_frame_given_as_one_image_are_clear_errors(tmp_path: Path) -> None:
    source = _testfile("examples_ybr_color.dcm")
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.dcm: no pixel data, although the header declares an image of 240 x 320 x 30 frames x 3 samples.*truncated"):
        read_dicom_frames(truncated)
    with pytest.raises(DataError, match=r"examples_ybr_color\.dcm: a multi-frame DICOM \(30 frames"):
        read_dicom(source)


def _camus_cine(camus224: Path, frames: int = 3) -> np.ndarray:
    """Real CAMUS frames (ED, ES, ED of patient0001 2CH), tinted so that R, G and B differ: (F, H, W, 3) uint8."""
    names = ["patient0001_2CH_ED", "patient0001_2CH_ES"]
    grey = [np.asarray(Image.open(camus224 / "train" / f"{names[i % 2]}.png")) for i in range(frames)]
    stack = np.stack(grey).astype(np.float64)
    return np.stack([stack, stack * 0.8, stack * 0.6], axis=-1).round().astype(np.uint8)


def _us_multiframe(rgb: np.ndarray, *, regions: list[tuple[int, int, int, int, float, float]],
                   frame_time_vector: list[float] | None = None, r_wave: list[int] | None = None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = rgb.shape[1:3]
    ds.NumberOfFrames = len(rgb)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    items = []
    for x0, y0, x1, y1, dx_cm, dy_cm in regions:
        region = Dataset()
        region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
        region.RegionLocationMinX0, region.RegionLocationMinY0 = x0, y0
        region.RegionLocationMaxX1, region.RegionLocationMaxY1 = x1, y1
        region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = CM_UNITS
        region.PhysicalDeltaX, region.PhysicalDeltaY = dx_cm, dy_cm
        items.append(region)
    ds.SequenceOfUltrasoundRegions = items
    if frame_time_vector is not None:
        ds.FrameTimeVector = frame_time_vector
        ds.FrameIncrementPointer = 0x00181065
    if r_wave is not None:
        ds.RWavePointer = r_wave
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    return ds


def test_a_colour_echo_cine_built_from_real_camus_frames_reads_back_exactly(camus224: Path, tmp_path: Path) -> None:
    rgb = _camus_cine(camus224)
    ds = _us_multiframe(rgb, regions=[(0, 0, 50, 30, 0.08, 0.08), (10, 5, 215, 220, 0.031, 0.029)],
                        frame_time_vector=[0, 40, 45], r_wave=[3])
    path = tmp_path / "echo.dcm"
    ds.save_as(path, enforce_file_format=True)
    cine = read_dicom_frames(path)
    np.testing.assert_allclose(cine.frames, _luma(rgb), atol=1e-3)
    assert cine.spacing == pytest.approx((0.29, 0.31))  # the larger region: dy 0.029 cm (rows), dx 0.031 cm (columns)
    np.testing.assert_allclose(cine.frame_times_ms, [0.0, 40.0, 85.0])
    assert cine.ed_frame == 2 and cine.es_frame is None  # RWavePointer counts frames from 1


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_the_real_echo_cine_compressed_losslessly_decodes_to_the_same_frames(
    syntax: str, camus224: Path, tmp_path: Path
) -> None:
    rgb = _camus_cine(camus224)
    ds = _us_multiframe(rgb, regions=[(0, 0, 223, 223, 0.03, 0.03)])
    ds.compress(syntax)  # pydicom's encoders (pylibjpeg-rle, pyjpegls, pylibjpeg-openjpeg)
    path = tmp_path / "echo_compressed.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_allclose(read_dicom_frames(path).frames, _luma(rgb), atol=1e-3)


def test_enhanced_multiframe_mr_built_from_real_sunnybrook_slices(sunnybrook5: Path, tmp_path: Path) -> None:
    slices = [pydicom.dcmread(sunnybrook5 / "dicoms" / "SCD0000101" / name) for name in ("48.dcm", "59.dcm")]
    pixels = np.stack([s.pixel_array for s in slices])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Rows, ds.Columns, ds.NumberOfFrames = pixels.shape[1], pixels.shape[2], len(pixels)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    measures, transform, shared = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing = [1.5, 1.25]
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2, -10, "US"
    shared.PixelMeasuresSequence, shared.PixelValueTransformationSequence = [measures], [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for label, delay in (("ED", 12.5), ("ES", 300.0)):
        frame, content, sync = Dataset(), Dataset(), Dataset()
        content.FrameLabel = label
        sync.NominalCardiacTriggerDelayTime = delay
        frame.FrameContentSequence, frame.CardiacSynchronizationSequence = [content], [sync]
        per_frame.append(frame)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = pixels.astype("<i2").tobytes()
    path = tmp_path / "enhanced_mr.dcm"
    ds.save_as(path, enforce_file_format=True)
    cine = read_dicom_frames(path)
    np.testing.assert_array_equal(cine.frames, pixels * 2.0 - 10.0)
    assert cine.spacing == (1.5, 1.25) and cine.spacing_source == "PixelSpacing"
    np.testing.assert_allclose(cine.frame_times_ms, [0.0, 287.5])
    assert (cine.ed_frame, cine.es_frame) == (0, 1)


def test_frame_time_vector_of_the_wrong_length_is_refused(camus224: Path, tmp_path: Path) -> None:
    ds = _us_multiframe(_camus_cine(camus224), regions=[], frame_time_vector=[0, 40])
    path = tmp_path / "echo.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DataError, match=r"echo\.dcm: FrameTimeVector has 2 values for 3 frames"):
        read_dicom_frames(path)

