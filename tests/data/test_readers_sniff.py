"""What a file is, by content: every kind ``identify`` names, on bytes written by the real libraries."""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from cardioseg.data.sniff import HEAD_BYTES, Content, Kind, identify, identify_file, sniff
from cardioseg.errors import DataError


def _pil(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buffer, format=fmt)
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((3, 3)))
    return buffer.getvalue()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("scan.nii", b"x")
    return buffer.getvalue()


def _nifti(cls: type = nib.Nifti1Image) -> bytes:
    return cls(np.zeros((4, 4, 2), np.int16), np.eye(4)).to_bytes()


def _metaimage(tmp_path: Path) -> bytes:
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16)), str(tmp_path / "v.mhd"))
    return (tmp_path / "v.mhd").read_bytes()


@pytest.mark.parametrize(("make", "content"), [
    (lambda _: _pil("PNG"), Content.PNG),
    (lambda _: _pil("JPEG"), Content.JPEG),
    (lambda _: _pil("TIFF"), Content.TIFF),
    (lambda _: _pil("BMP"), Content.BMP),
    (lambda _: _pil("GIF"), Content.GIF),
    (lambda _: b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00", Content.DICOM),
    (lambda _: _nifti(), Content.NIFTI),
    (lambda _: _nifti(nib.Nifti2Image), Content.NIFTI),
    (lambda _: gzip.compress(_nifti()), Content.NIFTI_GZ),
    (lambda _: gzip.compress(_nifti(nib.Nifti2Image)), Content.NIFTI_GZ),
    (lambda _: gzip.compress(b"a gzip file without an image inside" * 20), Content.GZIP),
    (lambda _: _zip(), Content.ZIP),
    (lambda _: _npy(), Content.NPY),
    (_metaimage, Content.METAIMAGE),
    (lambda _: b"NRRD0004\ntype: short\ndimension: 3\n", Content.NRRD),
    (lambda _: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", Content.PDF),
    (lambda _: b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>", Content.HTML),
    (lambda _: b"  <html lang='en'><head>", Content.HTML),
    (lambda _: b"<?xml version='1.0'?><a/>", Content.XML),
    (lambda _: "patient,EF\nP1,55\nP2,élevée\n".encode(), Content.TEXT),
    (lambda _: b"", Content.EMPTY),
    (lambda _: bytes(range(256)) * 4, Content.UNKNOWN),
])
def test_identify_names_what_the_bytes_are(make: Callable[[Path], bytes], content: Content, tmp_path: Path) -> None:
    assert identify(make(tmp_path)) is content


def test_a_real_dicom_and_a_bare_data_set(sunnybrook5: Path, tmp_path: Path) -> None:
    real = (sunnybrook5 / "dicoms" / "SCD0000101" / "48.dcm").read_bytes()
    assert identify(real[:HEAD_BYTES]) is Content.DICOM
    ds = pydicom.dcmread(sunnybrook5 / "dicoms" / "SCD0000101" / "48.dcm")
    del ds.file_meta
    ds.preamble = None
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)  # no preamble, no file meta
    bare = buffer.getvalue()
    assert bare[128:132] != b"DICM"
    assert identify(bare) is Content.DICOM_NO_PREAMBLE
    assert pydicom.dcmread(io.BytesIO(bare), force=True).Rows == 256


def test_text_that_starts_like_a_bmp_is_text() -> None:
    assert identify(b"BMI of the patient: 24\n") is Content.TEXT


def test_identify_file_reads_past_a_long_gzip_name(tmp_path: Path) -> None:
    """A gzip header can carry the original file name: here 2 KiB of it before the NIfTI bytes."""
    path = tmp_path / "scan.nii.gz"
    with open(path, "wb") as raw, gzip.GzipFile("n" * 2048 + ".nii", "wb", fileobj=raw) as out:
        out.write(_nifti())
    assert identify(path.read_bytes()[:HEAD_BYTES]) is Content.GZIP  # the first KiB is only the name
    assert identify_file(path) is Content.NIFTI_GZ


def test_upload_kinds_and_what_else_a_refused_upload_is() -> None:
    assert sniff(_pil("PNG")) is Kind.PNG
    assert sniff(gzip.compress(_nifti())[:HEAD_BYTES]) is Kind.NIFTI_GZ
    with pytest.raises(DataError, match="is a ZIP archive, not a PNG, JPEG, DICOM or NIfTI"):
        sniff(_zip())
    with pytest.raises(DataError, match="is a TIFF image"):
        sniff(_pil("TIFF"))
