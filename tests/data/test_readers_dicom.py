"""DICOM headers are read with bounds: a deflated file cannot inflate past what its header declares.

The bomb is a real Deflated Explicit VR Little Endian file (1.2.840.10008.1.2.1.99): the header
of a Sunnybrook slice (256 x 256, 16 bits) followed by a pixel data element of 1 GiB of zeros,
about 1 MB on disk. pydicom inflates the whole data set at open, before any size check could run.
"""

from __future__ import annotations

import io
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

from cardioseg.data.readers.base import MAX_DICOM_BYTES, read_dicom, read_dicom_header
from cardioseg.errors import DataError

GIB = 1 << 30


def _sunnybrook(sunnybrook5: Path) -> pydicom.Dataset:
    return pydicom.dcmread(sunnybrook5 / "dicoms" / "SCD0000101" / "48.dcm")


def _deflated_file(ds: pydicom.Dataset, pixel_bytes: int) -> tuple[bytes, bytes]:
    """(preamble and file meta, deflated data set): ``ds``'s header and ``pixel_bytes`` zeros of PixelData.

    The zeros are deflated in 1 MiB blocks. After a full flush the compressor starts afresh, so
    every block compresses to the same bytes: the file is built by repeating one block, never
    holding the inflated data.
    """
    header = ds.copy()
    del header.PixelData
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, header)
    pixel_element = b"\xe0\x7f\x10\x00OW\x00\x00" + pixel_bytes.to_bytes(4, "little")
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(buffer.getvalue() + pixel_element) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = 1 << 20
    zeros = deflate.compress(bytes(block)) + deflate.flush(zlib.Z_FULL_FLUSH)
    rest = deflate.compress(bytes(pixel_bytes % block)) + deflate.flush()

    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    prefix = DicomBytesIO()
    prefix.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(prefix, meta)
    return prefix.getvalue(), body + zeros * (pixel_bytes // block) + rest


def test_the_bomb_is_what_it_claims(sunnybrook5: Path) -> None:
    """Small on disk, over 1 GiB inflated (counted by streaming it through zlib, 1 MiB at a time)."""
    prefix, stream = _deflated_file(_sunnybrook(sunnybrook5), GIB)
    assert len(prefix + stream) < 2 << 20
    inflate, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    while stream:
        total += len(inflate.decompress(stream, 1 << 20))
        stream = inflate.unconsumed_tail
    assert inflate.eof and total > GIB
    assert DeflatedExplicitVRLittleEndian.encode() in prefix  # the transfer syntax of the file meta


def test_a_deflate_bomb_is_refused_without_inflating_it(sunnybrook5: Path, tmp_path: Path) -> None:
    path = tmp_path / "bomb.dcm"
    path.write_bytes(b"".join(_deflated_file(_sunnybrook(sunnybrook5), GIB)))
    tracemalloc.start()
    try:
        for read in (read_dicom_header, read_dicom):
            with pytest.raises(DataError, match=r"bomb\.dcm.*inflates to more than"):
                read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20  # the 256 x 256 x 2-byte frame and its header, not the gibibyte


def test_a_deflated_header_declaring_a_huge_image_is_refused(sunnybrook5: Path, tmp_path: Path) -> None:
    ds = _sunnybrook(sunnybrook5)
    ds.Rows = ds.Columns = 40000  # 3.2 GB of 16-bit pixels declared, 1 MiB of zeros present
    path = tmp_path / "huge.dcm"
    path.write_bytes(b"".join(_deflated_file(ds, 1 << 20)))
    with pytest.raises(DataError, match=rf"huge\.dcm.*40000 x 40000.*limit of {MAX_DICOM_BYTES:,}"):
        read_dicom_header(path)


def test_an_uncompressed_header_declaring_a_huge_image_is_refused(sunnybrook5: Path, tmp_path: Path) -> None:
    ds = _sunnybrook(sunnybrook5)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4096, 4096, 1000
    path = tmp_path / "frames.dcm"
    ds.save_as(path)
    with pytest.raises(DataError, match=r"frames\.dcm.*4096 x 4096 x 1000 frames"):
        read_dicom(path)


def test_a_normal_deflated_dicom_reads_like_the_original(sunnybrook5: Path, tmp_path: Path) -> None:
    ds = _sunnybrook(sunnybrook5)
    original = tmp_path / "plain.dcm"
    ds.save_as(original)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = tmp_path / "deflated.dcm"
    ds.save_as(deflated, enforce_file_format=True)
    assert deflated.stat().st_size < original.stat().st_size
    pixels, spacing, header = read_dicom(deflated)
    expected = read_dicom(original)
    np.testing.assert_array_equal(pixels, expected[0])
    assert spacing == expected[1] == pytest.approx((1.367188, 1.367188))
    assert header.SliceLocation == ds.SliceLocation
    assert read_dicom_header(deflated).Rows == 256


def test_a_deflated_stream_that_is_cut_short(sunnybrook5: Path, tmp_path: Path) -> None:
    ds = _sunnybrook(sunnybrook5)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    path = tmp_path / "cut.dcm"
    path.write_bytes(buffer.getvalue()[:-2000])
    with pytest.raises(DataError, match=r"cut\.dcm"):
        read_dicom(path)
