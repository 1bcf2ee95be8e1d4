"""Opening a DICOM file with bounds: the image size its header declares is checked before any pixel is read.

pydicom inflates a Deflated Explicit VR Little Endian file (1.2.840.10008.1.2.1.99) whole, at
open, even with ``stop_before_pixels``: a 1 MB file can become a gibibyte in memory. Here the
file meta (group 0002, never deflated) is read first; for a deflated file the data set is then
inflated step by step until its PixelData element starts, the header's Rows x Columns x frames x
samples x bytes is checked against a limit, and the rest is inflated no further than that size
(plus a little for trailing elements). More than that is refused. Other transfer syntaxes are
read by pydicom as before, the header first (``stop_before_pixels``), then the whole file.

The callers (``base.read_dicom``, ``base.read_dicom_header``) run this inside ``reading``, which
turns any remaining library error into a DataError naming the file.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from cardioseg.data.sniff import Content, require_content
from cardioseg.errors import DataError

MAX_DICOM_BYTES = 1 << 28
"""Largest pixel data a DICOM file may declare (256 MiB): an 8192 x 8192 16-bit frame with room to
spare. cardioseg reads single 2D frames; cardiac ones are well under 10 MB."""

HEADER_STEP = 1 << 16
MAX_HEADER_BYTES = 16 << 20
"""A deflated data set must reach its PixelData element within this many inflated bytes."""
TRAILING_BYTES = 1 << 20
"""Inflated bytes allowed after the declared pixel data (padding, signatures)."""

PIXEL_DATA = BaseTag(0x7FE00010)
_INTEGER = re.compile(r"\+?\d+")


@dataclass(frozen=True)
class Geometry:
    """The image a DICOM header declares."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits: int

    @property
    def pixels(self) -> int:
        return self.rows * self.columns * self.frames

    @property
    def n_bytes(self) -> int:
        return (self.pixels * self.samples * self.bits + 7) // 8

    def describe(self) -> str:
        frames = f" x {self.frames} frames" if self.frames > 1 else ""
        samples = f" x {self.samples} samples" if self.samples > 1 else ""
        return f"{self.rows} x {self.columns}{frames}{samples} at {self.bits} bits"


def dicom_geometry(ds: pydicom.Dataset, path: Path) -> Geometry:
    """Rows, Columns, NumberOfFrames, SamplesPerPixel and BitsAllocated, each a positive integer, or a DataError."""
    found = Geometry(
        rows=_positive_int(ds, "Rows", path),
        columns=_positive_int(ds, "Columns", path),
        frames=_positive_int(ds, "NumberOfFrames", path, default=1),
        samples=_positive_int(ds, "SamplesPerPixel", path, default=1),
        bits=_positive_int(ds, "BitsAllocated", path),
    )
    if found.bits != 1 and found.bits % 8:
        raise DataError(f"BitsAllocated is {found.bits}: expected 1 or a multiple of 8", path)
    return found


def check_size(ds: pydicom.Dataset, path: Path, max_bytes: int) -> Geometry | None:
    """The header's geometry when it declares an image (Rows or Columns present), refused over ``max_bytes``."""
    if "Rows" not in ds and "Columns" not in ds:
        return None
    found = dicom_geometry(ds, path)
    if found.n_bytes > max_bytes:
        raise DataError(f"the header declares an image of {found.describe()} ({found.n_bytes:,} bytes), "
                        f"over the limit of {max_bytes:,} bytes", path)
    return found


def pixel_spacing(ds: pydicom.Dataset, path: Path) -> tuple[float, float] | None:
    """(row_mm, col_mm) from PixelSpacing; None when absent or empty (DICOM's "unknown")."""
    if "PixelSpacing" not in ds:
        return None
    try:
        value = ds.PixelSpacing
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"PixelSpacing cannot be read as numbers ({exc})", path) from exc
    if value is None or value == "":
        return None
    values = list(value) if isinstance(value, pydicom.multival.MultiValue) else [value]
    try:
        spacing = tuple(float(v) for v in values)
    except (ValueError, TypeError) as exc:
        raise DataError(f"PixelSpacing {values} is not numeric", path) from exc
    if len(spacing) != 2 or not all(math.isfinite(v) and v > 0 for v in spacing):
        raise DataError(f"PixelSpacing {list(spacing)} must be two finite positive numbers (row, column spacing in mm)",
                        path)
    return spacing[0], spacing[1]


def open_dicom(path: Path, max_bytes: int, *, pixels: bool) -> pydicom.Dataset:
    """The data set of ``path`` (with its pixel data element when ``pixels``), its declared size checked first."""
    content = require_content(path, (Content.DICOM, Content.DICOM_NO_PREAMBLE), "a DICOM file")
    if content is Content.DICOM:
        with open(path, "rb") as handle:
            preamble = handle.read(128)
            handle.read(4)  # "DICM"
            meta = FileMetaDataset(read_dataset(handle, False, True, stop_when=_past_group_2))
            if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
                return _open_deflated(path, handle.read(), preamble, meta, max_bytes, pixels=pixels)
    header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    found = check_size(header, path, max_bytes)
    ds = pydicom.dcmread(path, force=True) if pixels else header
    if pixels and found is not None and "PixelData" not in ds:  # pydicom returns an empty data set for a cut file
        raise DataError(f"no pixel data, although the header declares an image of {found.describe()}: "
                        "a truncated file?", path)
    if "TransferSyntaxUID" not in ds.file_meta:  # a bare data set: say how pydicom found it encoded
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return ds


def _past_group_2(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag.group != 2


class _Inflater:
    """A raw deflate stream inflated on demand, never beyond the size asked for."""

    def __init__(self, compressed: bytes) -> None:
        self._stream = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending = compressed
        self._dry = False  # the input ran out before the end of the stream (a truncated file)
        self.data = bytearray()

    @property
    def finished(self) -> bool:
        return self._stream.eof or self._dry

    def inflate_to(self, size: int) -> None:
        while len(self.data) < size and not self.finished:
            out = self._stream.decompress(self._pending, size - len(self.data))
            self._pending = self._stream.unconsumed_tail
            self._dry = not out and not self._pending
            self.data += out


def _open_deflated(path: Path, compressed: bytes, preamble: bytes, meta: FileMetaDataset, max_bytes: int, *,
                   pixels: bool) -> pydicom.Dataset:
    stream = _Inflater(compressed)
    header, pixel_element = _deflated_header(stream, path)
    found = check_size(header, path, max_bytes)
    if pixel_element is not None:
        value_offset, length = pixel_element
        if length == 0xFFFFFFFF:
            raise DataError("deflated file with encapsulated (undefined length) pixel data, which DICOM forbids", path)
        bound = value_offset + (found.n_bytes + 1 if found else 0) + TRAILING_BYTES  # + 1: an odd length's pad byte
        stream.inflate_to(bound + 1)
        if len(stream.data) > bound:
            declared = found.describe() if found else "no image"
            raise DataError(f"the deflated data set inflates to more than {bound:,} bytes, more than its header "
                            f"declares ({declared}): refused as a deflate bomb", path)
    stop = None if pixels else _at_pixel_data
    ds = read_dataset(DicomBytesIO(bytes(stream.data)), False, True, stop_when=stop)
    return FileDataset(str(path), ds, preamble=preamble, file_meta=meta, is_implicit_VR=False,
                       is_little_endian=True)


def _at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag == PIXEL_DATA


def _deflated_header(stream: _Inflater, path: Path) -> tuple[pydicom.Dataset, tuple[int, int] | None]:
    """The elements before PixelData, inflated in growing steps, and where PixelData's value starts and its
    declared length (None when the data set has no PixelData)."""
    size = HEADER_STEP
    while True:
        stream.inflate_to(size)
        header, pixel_element = _read_to_pixel_data(bytes(stream.data))
        if pixel_element is not None or stream.finished:
            return header, pixel_element
        if size >= MAX_HEADER_BYTES:
            raise DataError(f"the deflated data set has no PixelData element in its first {MAX_HEADER_BYTES:,} "
                            "inflated bytes", path)
        size *= 4


def _read_to_pixel_data(data: bytes) -> tuple[pydicom.Dataset, tuple[int, int] | None]:
    """The elements of ``data`` before PixelData, and (offset of its value, its declared length) when reached."""
    buffer = DicomBytesIO(data)
    reached: list[tuple[int, int]] = []

    def at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
        if tag == PIXEL_DATA:
            reached.append((buffer.tell(), length))
        return tag == PIXEL_DATA

    header = read_dataset(buffer, False, True, stop_when=at_pixels)
    return header, (reached[0] if reached else None)


def _positive_int(ds: pydicom.Dataset, keyword: str, path: Path, default: int | None = None) -> int:
    if keyword not in ds:
        if default is None:
            raise DataError(f"{keyword} is missing", path)
        return default
    try:
        value: Any = ds[keyword].value
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{keyword} is not an integer ({exc})", path) from exc
    if value is None or value == "" or value == b"":
        raise DataError(f"{keyword} is empty", path)
    text = str(value).strip()
    if not _INTEGER.fullmatch(text) or int(text) < 1:
        raise DataError(f"{keyword} must be a positive integer, not {value!r}", path)
    return int(text)
