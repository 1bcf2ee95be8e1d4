"""What a file is, told from its first bytes, never from its name.

A name can lie (a text file called ``scan.png``, a JPEG saved as ``scan.nii.gz``) and can be
chosen to reach a reader that behaves differently; the bytes decide. ``identify`` names the
content ("a JPEG image", "a gzip file that does not hold a NIfTI image", "an HTML page"), so a
reader can say what a misnamed file actually is instead of passing on a library's message.
``sniff`` is the web app's narrower question: is this an upload type it accepts, and which one.
"""

from __future__ import annotations

import re
import struct
import zlib
from enum import Enum
from pathlib import Path

from cardioseg.errors import DataError

HEAD_BYTES = 1024
"""How much of a file ``sniff`` needs (the gzip case inflates only the NIfTI header from it)."""

NIFTI1_HEADER = 348
NIFTI2_HEADER = 540
GZIP_MAGIC = b"\x1f\x8b"
_METAIMAGE_KEY = re.compile(rb"^\s*(ObjectType|NDims|DimSize|ElementType|ElementDataFile)\s*=", re.MULTILINE)
_BMP_INFO_SIZES = (12, 40, 52, 56, 64, 108, 124)


class Content(Enum):
    """What a file's first bytes say it is; the value reads as the end of "this file is ..."."""

    PNG = "a PNG image"
    JPEG = "a JPEG image"
    TIFF = "a TIFF image"
    BMP = "a BMP image"
    GIF = "a GIF image"
    JPEG2000 = "a JPEG 2000 image"
    DICOM = "a DICOM file"
    DICOM_NO_PREAMBLE = "a DICOM data set without the 128-byte preamble"
    NIFTI = "an uncompressed NIfTI image"
    NIFTI_GZ = "a gzip-compressed NIfTI image"
    NIFTI_PAIR_HEADER = "the header of a NIfTI .hdr/.img pair"
    GZIP = "a gzip file that does not hold a NIfTI image"
    METAIMAGE = "a MetaImage (.mhd/.mha) header"
    NRRD = "an NRRD file"
    NPY = "a NumPy .npy array"
    HDF5 = "an HDF5 file"
    ZIP = "a ZIP archive"
    BZIP2 = "a bzip2 file"
    XZ = "an xz file"
    PDF = "a PDF document"
    HTML = "an HTML page"
    XML = "an XML document"
    TEXT = "a text file"
    EMPTY = "an empty file"
    UNKNOWN = "binary data of no type cardioseg knows"


class Kind(Enum):
    """An accepted upload type, with the file suffix its reader expects."""

    PNG = ".png"
    JPEG = ".jpg"
    DICOM = ".dcm"
    NIFTI = ".nii"
    NIFTI_GZ = ".nii.gz"

    @property
    def is_volume(self) -> bool:
        return self in (Kind.NIFTI, Kind.NIFTI_GZ)


_UPLOAD_KINDS = {
    Content.PNG: Kind.PNG,
    Content.JPEG: Kind.JPEG,
    Content.DICOM: Kind.DICOM,
    Content.NIFTI: Kind.NIFTI,
    Content.NIFTI_GZ: Kind.NIFTI_GZ,
}

_MAGICS: tuple[tuple[bytes, Content], ...] = (
    (b"\x89PNG\r\n\x1a\n", Content.PNG),
    (b"\xff\xd8\xff", Content.JPEG),
    (b"II*\x00", Content.TIFF),
    (b"MM\x00*", Content.TIFF),
    (b"II+\x00", Content.TIFF),  # BigTIFF
    (b"GIF87a", Content.GIF),
    (b"GIF89a", Content.GIF),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", Content.JPEG2000),
    (b"\xff\x4f\xff\x51", Content.JPEG2000),  # bare codestream
    (b"NRRD000", Content.NRRD),
    (b"\x93NUMPY", Content.NPY),
    (b"\x89HDF\r\n\x1a\n", Content.HDF5),
    (b"PK\x03\x04", Content.ZIP),
    (b"PK\x05\x06", Content.ZIP),  # an empty archive
    (b"BZh", Content.BZIP2),
    (b"\xfd7zXZ\x00", Content.XZ),
    (b"%PDF-", Content.PDF),
)


def nifti_header_size(header: bytes) -> int | None:
    """348 (NIfTI-1) or 540 (NIfTI-2) when ``header`` starts a single-file NIfTI image, else None."""
    if len(header) >= NIFTI1_HEADER and header[344:348] == b"n+1\x00" and _sizeof_hdr(header) == NIFTI1_HEADER:
        return NIFTI1_HEADER
    if len(header) >= NIFTI2_HEADER and header[4:12] == b"n+2\x00\r\n\x1a\n" and _sizeof_hdr(header) == NIFTI2_HEADER:
        return NIFTI2_HEADER
    return None


def _sizeof_hdr(header: bytes) -> int | None:
    """``sizeof_hdr`` read in whichever byte order makes it a NIfTI header size."""
    sizes = struct.unpack("<i", header[:4])[0], struct.unpack(">i", header[:4])[0]
    return next((size for size in sizes if size in (NIFTI1_HEADER, NIFTI2_HEADER)), None)


def gunzip_head(data: bytes, size: int = NIFTI2_HEADER) -> bytes:
    """Up to ``size`` bytes of a gzip stream, inflated from its beginning alone (b"" when it is corrupt)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, size)
    except zlib.error:
        return b""


def identify(head: bytes) -> Content:
    """What a file is, from its first ``HEAD_BYTES`` bytes (or more)."""
    if not head:
        return Content.EMPTY
    if len(head) >= 132 and head[128:132] == b"DICM":
        return Content.DICOM
    for magic, content in _MAGICS:
        if head.startswith(magic):
            return content
    if nifti_header_size(head):
        return Content.NIFTI
    if len(head) >= NIFTI1_HEADER and head[344:348] == b"ni1\x00":
        return Content.NIFTI_PAIR_HEADER
    if head.startswith(GZIP_MAGIC):
        return Content.NIFTI_GZ if nifti_header_size(gunzip_head(head)) else Content.GZIP
    if _is_bmp(head):
        return Content.BMP
    if _is_bare_dicom(head):
        return Content.DICOM_NO_PREAMBLE
    if _METAIMAGE_KEY.search(head[:HEAD_BYTES]) and head.lstrip()[:1].isalpha():
        return Content.METAIMAGE
    return _text_kind(head)


def identify_file(path: Path, size: int = 64 * 1024) -> Content:
    """``identify`` on the first ``size`` bytes of ``path`` (more than HEAD_BYTES, for long gzip headers)."""
    with open(path, "rb") as handle:
        return identify(handle.read(size))


def require_content(path: Path, accepted: tuple[Content, ...], what: str) -> Content:
    """What ``path`` holds; a DataError naming the file and what it actually is when that is not ``what``."""
    content = identify_file(path)
    if content not in accepted:
        raise DataError(f"{path.name} is {content.value}, not {what}", path)
    return content


def sniff(head: bytes) -> Kind:
    """The upload kind of a file from its first ``HEAD_BYTES`` bytes; DataError saying what else it is."""
    content = identify(head)
    if content in _UPLOAD_KINDS:
        return _UPLOAD_KINDS[content]
    raise DataError(f"the file is {content.value}, not a PNG, JPEG, DICOM or NIfTI file "
                    "(judged by its content, not its name)")


def _is_bmp(head: bytes) -> bool:
    """``BM``, zero reserved words and a known info-header size: "BM" alone starts many texts."""
    return (len(head) >= 18 and head.startswith(b"BM") and head[6:10] == b"\0\0\0\0"
            and struct.unpack("<I", head[14:18])[0] in _BMP_INFO_SIZES)


def _is_bare_dicom(head: bytes) -> bool:
    """A data set written without preamble: an element of group 0002 or 0008 first, little endian.

    pydicom reads these with ``force=True``; the first element's VR (explicit) or its small even
    length (implicit) must look right, so that text or noise is not taken for DICOM.
    """
    if len(head) < 8:
        return False
    group, element = struct.unpack("<HH", head[:4])
    if group not in (0x0002, 0x0008) or element > 0x0100:
        return False
    if head[4:6].isalpha() and head[4:6].isupper():
        return True
    return struct.unpack("<I", head[4:8])[0] <= 1024


def _text_kind(head: bytes) -> Content:
    """HTML, XML or plain text when the bytes decode as text, else unknown binary."""
    if b"\0" in head:
        return Content.UNKNOWN
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # a character cut at the end of the sample is still text
            return Content.UNKNOWN
        text = head[: exc.start].decode("utf-8")
    if sum(not (c.isprintable() or c.isspace()) for c in text) > len(text) // 20:
        return Content.UNKNOWN
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith(("<!doctype html", "<html")) or "<html" in start[:HEAD_BYTES]:
        return Content.HTML
    if start.startswith("<?xml"):
        return Content.XML
    return Content.TEXT
