"""Misnamed files and bad headers give a DataError that names the file and the problem.

Each case here was once a library message, a traceback or silently wrong pixels: a JPEG called
``.nii.gz``, a zero or negative dimension, a complex volume, NaN/zero/negative spacing, a
DICOM with empty Rows, a MetaImage header pointing at a file outside its folder.
"""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from cardioseg.data.readers.base import read_dicom, read_npy, read_raster, read_volume
from cardioseg.errors import DataError


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _nifti(array: np.ndarray | None = None) -> bytes:
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4) if array is None else array
    return nib.Nifti1Image(array, np.diag([0.5, 0.5, 2.0, 1.0])).to_bytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- content that is not what the name says ------------------------------------------------------


@pytest.mark.parametrize(("name", "data", "read", "message"), [
    ("scan.nii.gz", _jpeg(), read_volume, "scan.nii.gz is a JPEG image, not a NIfTI volume"),
    ("scan.nii", _jpeg(), read_volume, "scan.nii is a JPEG image, not a NIfTI volume"),
    ("scan.nii.gz", _nifti(), read_volume, "scan.nii.gz is an uncompressed NIfTI image, not a gzip-compressed"),
    ("scan.nii", gzip.compress(_nifti()), read_volume, r"scan.nii is a gzip-compressed NIfTI image.*\.nii\.gz"),
    ("scan.nii.gz", gzip.compress(b"a tarball, say" * 50), read_volume,
     "scan.nii.gz is a gzip file that does not hold a NIfTI image"),
    ("scan.mhd", b"<!DOCTYPE html><html><body>Sign in</body></html>", read_volume,
     "scan.mhd is an HTML page, not a MetaImage"),
    ("frame.png", b"<html><head><title>404</title></head></html>", read_raster, "frame.png is an HTML page, not"),
    ("frame.png", gzip.compress(_nifti()), read_raster, "frame.png is a gzip-compressed NIfTI image, not"),
    ("slice.dcm", b"PK\x03\x04" + b"\0" * 200, read_dicom, "slice.dcm is a ZIP archive, not a DICOM file"),
    ("slice.dcm", _jpeg(), read_dicom, "slice.dcm is a JPEG image, not a DICOM file"),
    ("mask.npy", b"0 1 0\n1 1 0\n", read_npy, "mask.npy is a text file, not a NumPy"),
])
def test_content_that_does_not_match_the_name_is_named(tmp_path: Path, name: str, data: bytes, read: Callable[[Path], object],
                                                        message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        read(_write(tmp_path / name, data))
    assert str(tmp_path / name) in str(err.value)


def test_a_raster_of_another_raster_type_still_reads(tmp_path: Path) -> None:
    """Pillow decodes by content, so a JPEG saved as .png gives the very pixels a .jpg would: kept."""
    image = read_raster(_write(tmp_path / "frame.png", _jpeg()))
    np.testing.assert_array_equal(image, read_raster(_write(tmp_path / "frame.jpg", _jpeg())))


# --- NIfTI headers ----------------------------------------------------------------------------


def _patched(data: bytes, offset: int, fmt: str, *values: float) -> bytes:
    patched = bytearray(data)
    struct.pack_into(fmt, patched, offset, *values)
    return bytes(patched)


DIM, PIXDIM, DATATYPE = 40, 76, 70  # NIfTI-1 header offsets (dim[0..7], pixdim[0..7], datatype)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize(("offset", "fmt", "value", "message"), [
    (DIM + 2, "<h", -3, r"dimension 1 is -3"),
    (DIM + 4, "<h", 0, r"dimension 2 is 0"),
    (DIM, "<h", 9, r"dim\[0\] = 9"),
    (PIXDIM + 4, "<f", float("nan"), "spacing"),
    (PIXDIM + 8, "<f", float("inf"), "spacing"),
    (PIXDIM + 4, "<f", 0.0, "spacing"),
    (PIXDIM + 12, "<f", -2.0, "spacing"),
])
def test_bad_nifti_headers(tmp_path: Path, suffix: str, offset: int, fmt: str, value: float, message: str) -> None:
    data = _patched(_nifti(), offset, fmt, value)
    path = _write(tmp_path / f"scan{suffix}", gzip.compress(data) if suffix == ".nii.gz" else data)
    with pytest.raises(DataError, match=message):
        read_volume(path)


def test_complex_nifti_is_refused_not_cut_to_its_real_part(tmp_path: Path) -> None:
    path = _write(tmp_path / "scan.nii", _nifti(np.full((2, 3, 4), 1 + 2j, np.complex64)))
    with pytest.raises(DataError, match="complex"):
        read_volume(path)


def test_a_truncated_nifti_says_how_much_is_missing(tmp_path: Path) -> None:
    data = _nifti()
    path = _write(tmp_path / "scan.nii", data[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_volume(path)
    path = _write(tmp_path / "scan.nii.gz", gzip.compress(data)[:-30])
    with pytest.raises(DataError, match=r"scan\.nii\.gz"):
        read_volume(path)


def test_a_huge_declared_size_is_refused_before_reading(tmp_path: Path) -> None:
    """A 60 kB .nii.gz whose header promises 30000 x 30000 x 30000 voxels: no 54 TB allocation."""
    data = _patched(_nifti(), DIM + 2, "<hhh", 30000, 30000, 30000)
    path = _write(tmp_path / "scan.nii.gz", gzip.compress(data))
    with pytest.raises(DataError, match="larger than"):
        read_volume(path)


def test_valid_nifti_reads_as_before(tmp_path: Path) -> None:
    """Plain and gzipped, a singleton axis with zero spacing (common for 2D frames) is no error."""
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    for name, data in (("a.nii", _nifti(array)), ("a.nii.gz", gzip.compress(_nifti(array)))):
        read, zooms, affine = read_volume(_write(tmp_path / name, data))
        np.testing.assert_array_equal(read, array)
        assert zooms == (0.5, 0.5, 2.0) and affine[2, 2] == 2.0
    flat = nib.Nifti1Image(np.ones((3, 4, 1), np.uint8), np.eye(4))
    flat.header["pixdim"][3] = 0.0
    assert read_volume(_write(tmp_path / "flat.nii", flat.to_bytes()))[0].shape == (3, 4, 1)


def test_real_msd_volume_reads_exactly_as_nibabel_gives_it(msd_heart_la: Path) -> None:
    path = msd_heart_la / "imagesTr" / "la_016.nii.gz"
    array, zooms, affine = read_volume(path)
    reference = nib.load(path)
    np.testing.assert_array_equal(array, np.asanyarray(reference.dataobj))
    assert array.dtype == reference.get_data_dtype()
    np.testing.assert_array_equal(affine, reference.affine)
    assert zooms == tuple(float(z) for z in reference.header.get_zooms())


# --- MetaImage headers -------------------------------------------------------------------------


def _mhd(folder: Path, array: np.ndarray | None = None) -> Path:
    array = np.arange(24, dtype=np.int16).reshape(4, 3, 2) if array is None else array
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.3, 0.4, 0.5))
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(folder / "frame.mhd"))
    return folder / "frame.mhd"


def _edit_header(path: Path, key: str, value: str) -> None:
    lines = [f"{key} = {value}" if line.split("=")[0].strip() == key else line
             for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")


def test_metaimage_reads_with_its_spacing(tmp_path: Path) -> None:
    array, spacing, affine = read_volume(_mhd(tmp_path))
    assert array.shape == (2, 3, 4) and spacing == pytest.approx((0.3, 0.4, 0.5)) and affine is None


@pytest.mark.parametrize("spacing", ["0 0.4 0.5", "0.3 -0.4 0.5", "nan 0.4 0.5", "0.3 inf 0.5", "0.3 0.4"])
def test_bad_metaimage_spacing(tmp_path: Path, spacing: str) -> None:
    path = _mhd(tmp_path)
    _edit_header(path, "ElementSpacing", spacing)
    with pytest.raises(DataError, match=r"frame\.mhd.*ElementSpacing"):
        read_volume(path)


@pytest.mark.parametrize("dims", ["2 3 -4", "2 0 4", "2 3 x"])
def test_bad_metaimage_dimensions(tmp_path: Path, dims: str) -> None:
    path = _mhd(tmp_path)
    _edit_header(path, "DimSize", dims)
    with pytest.raises(DataError, match=r"frame\.mhd.*DimSize"):
        read_volume(path)


def test_metaimage_data_file_too_short_for_its_header(tmp_path: Path) -> None:
    path = _mhd(tmp_path)
    _edit_header(path, "DimSize", "20 30 40")
    with pytest.raises(DataError, match="holds 48 bytes"):
        read_volume(path)


def test_compressed_metaimage_holding_fewer_pixels_than_declared(tmp_path: Path) -> None:
    """SimpleITK returns 400 slices for this header, 396 of them never in the file."""
    image = sitk.GetImageFromArray(np.full((4, 8, 8), 7, np.int16))
    sitk.WriteImage(image, str(tmp_path / "frame.mhd"), True)
    _edit_header(tmp_path / "frame.mhd", "DimSize", "8 8 400")
    with pytest.raises(DataError, match=r"compressed data in frame\.zraw inflates to 512 bytes"):
        read_volume(tmp_path / "frame.mhd")
    _edit_header(tmp_path / "frame.mhd", "DimSize", "8 8 4")
    assert (read_volume(tmp_path / "frame.mhd")[0] == 7).all()


def test_compressed_metaimage_whose_data_is_not_zlib(tmp_path: Path) -> None:
    """SimpleITK prints "Uncompress failed" and returns the 10 x 10 image anyway, from unfilled memory."""
    (tmp_path / "frame.mhd").write_text("ObjectType = Image\nNDims = 2\nDimSize = 10 10\nElementType = MET_SHORT\n"
                                        "CompressedData = True\nElementDataFile = frame.zraw\n")
    (tmp_path / "frame.zraw").write_bytes(b"not zlib data " * 10)
    with pytest.raises(DataError, match=r"frame\.mhd.*compressed pixel data is corrupt"):
        read_volume(tmp_path / "frame.mhd")


def test_compressed_local_metaimage_needs_its_compressed_size(tmp_path: Path) -> None:
    """Without CompressedDataSize, SimpleITK prints "Uncompress failed" and returns wrong pixels."""
    pixels = np.arange(20, dtype=np.uint8).reshape(4, 5)
    header = "ObjectType = Image\nNDims = 2\nDimSize = 5 4\nCompressedData = True\nElementType = MET_UCHAR\n"
    data = zlib.compress(pixels.tobytes())
    path = tmp_path / "frame.mha"
    path.write_bytes(f"{header}ElementDataFile = LOCAL\n".encode() + data)
    with pytest.raises(DataError, match=r"frame\.mha.*CompressedDataSize"):
        read_volume(path)
    path.write_bytes(f"{header}CompressedDataSize = {len(data)}\nElementDataFile = LOCAL\n".encode() + data)
    np.testing.assert_array_equal(read_volume(path)[0], pixels.T)


@pytest.mark.parametrize("where", ["absolute", "parent", "parent_in_the_middle"])
def test_metaimage_may_not_read_files_outside_its_folder(tmp_path: Path, where: str) -> None:
    """The header names its data file: a crafted one could make the reader return any file's bytes."""
    secret = tmp_path / "outside" / "secret.raw"
    secret.parent.mkdir()
    secret.write_bytes(bytes(range(48)))  # exactly the 2 x 3 x 4 int16 voxels the header declares
    path = _mhd(tmp_path / "case")
    target = {"absolute": str(secret), "parent": "../outside/secret.raw",
              "parent_in_the_middle": "sub/../../outside/secret.raw"}[where]
    _edit_header(path, "ElementDataFile", target)
    with pytest.raises(DataError, match=r"frame\.mhd.*ElementDataFile.*outside"):
        read_volume(path)


# --- DICOM headers -----------------------------------------------------------------------------


@pytest.fixture()
def slice_dcm(sunnybrook5: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(sunnybrook5 / "dicoms" / "SCD0000101" / "48.dcm", tmp_path / "48.dcm"))


def _edit_dicom(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        ds[keyword].value = value
    ds.save_as(path)


@pytest.mark.parametrize("spacing", [["nan", "1.3"], ["1.3", "inf"], ["0", "1.3"], ["-1.3", "1.3"], ["1.3"]])
def test_bad_pixel_spacing(slice_dcm: Path, spacing: list[str]) -> None:
    _edit_dicom(slice_dcm, PixelSpacing=spacing)
    with pytest.raises(DataError, match=r"48\.dcm.*PixelSpacing"):
        read_dicom(slice_dcm)


def test_empty_pixel_spacing_means_unknown(slice_dcm: Path) -> None:
    """DICOM's rule for a type-2 element: present but empty is "not known", as when absent."""
    _edit_dicom(slice_dcm, PixelSpacing=None)
    assert read_dicom(slice_dcm)[1] is None


def test_empty_rows(slice_dcm: Path) -> None:
    _edit_dicom(slice_dcm, Rows=None)
    with pytest.raises(DataError, match=r"48\.dcm.*Rows is empty"):
        read_dicom(slice_dcm)


@pytest.mark.parametrize("frames", ["2.5", "abc", "-1", "0"])
def test_non_integer_number_of_frames(slice_dcm: Path, frames: str) -> None:
    """Written as raw bytes: pydicom itself refuses to build such an IS element."""
    ds = pydicom.dcmread(slice_dcm)
    ds.NumberOfFrames = 9999
    ds.save_as(slice_dcm)
    placeholder = b"\x28\x00\x08\x00IS\x04\x009999"
    data = slice_dcm.read_bytes()
    assert data.count(placeholder) == 1
    slice_dcm.write_bytes(data.replace(placeholder, placeholder[:-4] + frames.encode().ljust(4)))
    with pytest.raises(DataError, match=r"48\.dcm.*NumberOfFrames"):
        read_dicom(slice_dcm)


def test_a_bare_dicom_data_set_still_reads(slice_dcm: Path, tmp_path: Path) -> None:
    """No preamble, no file meta (older writers): pydicom parses these with ``force=True`` but could not decode
    their pixels without a transfer syntax; the reader now names the encoding pydicom found."""
    ds = pydicom.dcmread(slice_dcm)
    del ds.file_meta
    ds.preamble = None
    bare = tmp_path / "bare.dcm"
    pydicom.dcmwrite(bare, ds, implicit_vr=True, little_endian=True)
    np.testing.assert_array_equal(read_dicom(bare)[0], read_dicom(slice_dcm)[0])


def test_header_checks_alone_for_lazy_readers(tmp_path: Path) -> None:
    """``check_volume_header`` refuses what ``read_volume`` would, without reading the voxels."""
    from cardioseg.data.readers.base import check_volume_header

    check_volume_header(_write(tmp_path / "ok.nii.gz", gzip.compress(_nifti())))
    check_volume_header(_mhd(tmp_path / "mhd"))
    with pytest.raises(DataError, match=r"scan\.nii\.gz is a JPEG image"):
        check_volume_header(_write(tmp_path / "scan.nii.gz", _jpeg()))
    with pytest.raises(DataError, match="complex"):
        check_volume_header(_write(tmp_path / "c.nii", _nifti(np.ones((2, 3, 4), np.complex64))))
    path = _mhd(tmp_path / "outside")
    _edit_header(path, "ElementDataFile", "../secret.raw")
    with pytest.raises(DataError, match="outside"):
        check_volume_header(path)


@pytest.mark.parametrize(("step", "readable"), [(0.0, True), (0.04, True), (float("nan"), False), (-0.04, False)])
def test_time_steps_of_a_4d_nifti(tmp_path: Path, step: float, readable: bool) -> None:
    """Zero along time is "unknown", not a distance; NaN or negative is a broken header."""
    data = _patched(nib.Nifti1Image(np.ones((2, 3, 4, 5), np.int16), np.eye(4)).to_bytes(), PIXDIM + 16, "<f", step)
    path = _write(tmp_path / "cine.nii", data)
    if readable:
        assert read_volume(path)[1][3] == pytest.approx(step)
    else:
        with pytest.raises(DataError, match=r"pixdim\[4\]"):
            read_volume(path)


def test_nrrd_declaring_a_huge_volume_is_refused_before_reading(tmp_path: Path) -> None:
    """A gzip-encoded NRRD of a few hundred bytes whose ``sizes`` claim 120 GB: SimpleITK would allocate it all."""
    small = tmp_path / "small.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16)), str(small), useCompression=True)
    assert read_volume(small)[0].shape == (5, 4, 3)
    bomb = tmp_path / "bomb.nrrd"
    bomb.write_bytes(small.read_bytes().replace(b"sizes: 5 4 3", b"sizes: 5000 4000 3000"))
    with pytest.raises(DataError, match=r"sizes 5000 x 4000 x 3000 declare 120,000,000,000 bytes") as refused:
        read_volume(bomb)
    assert refused.value.path == bomb
