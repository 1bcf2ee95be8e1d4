"""What an uploaded file is, told from its first bytes, never from its name.

A name can lie (a text file called ``scan.png``) and can be chosen to reach a reader that
behaves differently; the bytes decide which reader sees the file. Recognised: PNG, JPEG,
DICOM (the ``DICM`` marker after the 128-byte preamble) and single-file NIfTI-1 (``sizeof_hdr``
348 and magic ``n+1``), plain or gzip-compressed.
"""

from __future__ import annotations

import struct
import zlib
from enum import Enum

from cardioseg.errors import DataError

HEAD_BYTES = 1024
"""How much of a file ``sniff`` needs (the gzip case inflates only the NIfTI header from it)."""

NIFTI1_HEADER = 348
GZIP_MAGIC = b"\x1f\x8b"


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


def _is_nifti1(header: bytes) -> bool:
    """sizeof_hdr 348 in either byte order, and the single-file magic ``n+1``."""
    if len(header) < NIFTI1_HEADER:
        return False
    sizes = struct.unpack("<i", header[:4])[0], struct.unpack(">i", header[:4])[0]
    return NIFTI1_HEADER in sizes and header[344:348] == b"n+1\x00"


def _gunzip_head(data: bytes) -> bytes:
    """The first bytes of a gzip stream, inflated from its beginning alone."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, NIFTI1_HEADER)
    except zlib.error:
        return b""


def sniff(head: bytes) -> Kind:
    """The kind of a file from its first ``HEAD_BYTES`` bytes; DataError for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Kind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return Kind.JPEG
    if head[128:132] == b"DICM":
        return Kind.DICOM
    if _is_nifti1(head):
        return Kind.NIFTI
    if head.startswith(GZIP_MAGIC):
        if _is_nifti1(_gunzip_head(head)):
            return Kind.NIFTI_GZ
        raise DataError("a gzip file that does not hold a NIfTI-1 image")
    raise DataError("not a PNG, JPEG, DICOM or NIfTI-1 file (judged by its content, not its name)")

