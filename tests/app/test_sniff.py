"""Upload types are told by content: magic bytes, the DICOM marker, the NIfTI-1 header."""

from __future__ import annotations

import gzip
import struct

import nibabel as nib
import numpy as np
import pytest

from cardioseg.anatomy import parse_view
from cardioseg.app.upload import plain_name
from cardioseg.data.sniff import HEAD_BYTES, Kind, sniff
from cardioseg.errors import DataError


def _nifti_bytes() -> bytes:
    return nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4)).to_bytes()


def test_images_and_dicom_by_magic() -> None:
    assert sniff(b"\x89PNG\r\n\x1a\n" + b"\0" * 100) is Kind.PNG
    assert sniff(b"\xff\xd8\xff\xe0" + b"\0" * 100) is Kind.JPEG
    assert sniff(b"\0" * 128 + b"DICM" + b"\0" * 100) is Kind.DICOM


def test_nifti_plain_and_gzipped() -> None:
    data = _nifti_bytes()
    assert sniff(data[:HEAD_BYTES]) is Kind.NIFTI
    assert sniff(gzip.compress(data)[:HEAD_BYTES]) is Kind.NIFTI_GZ


def test_big_endian_nifti_header() -> None:
    header = bytearray(_nifti_bytes()[:HEAD_BYTES])
    header[:4] = struct.pack(">i", 348)
    assert sniff(bytes(header)) is Kind.NIFTI


@pytest.mark.parametrize("content", [
    b"just some text pretending to be an image",
    gzip.compress(b"a gzip file without an image inside" * 20),
    b"",
    b"\0" * 348,  # right length, no NIfTI magic
])
def test_everything_else_is_refused(content: bytes) -> None:
    with pytest.raises(DataError):
        sniff(content)


@pytest.mark.parametrize("name", ["../x.png", "/etc/passwd", "a/b.png", "a\\b.png", "..", "x\x00.png", "a" * 300])
def test_names_that_are_paths_are_refused(name: str) -> None:
    with pytest.raises(DataError, match="plain name"):
        plain_name(name)


def test_views_from_file_names() -> None:
    assert parse_view("patient0001_2CH_ED.png") == ("patient0001", "2CH", "ED")
    assert parse_view("P12-4ch-es.dcm") == ("P12", "4CH", "ES")
    assert parse_view("4CH_ED.png") == (None, "4CH", "ED")
    assert parse_view("scan.png") == (None, None, None)
    assert parse_view("patient0001_2CH_EDV.png") == (None, None, None)
