"""Reading NIfTI and MetaImage/NRRD volumes with their headers checked before any pixel is read.

nibabel and SimpleITK trust a header: a zero dimension gives an empty array, a complex volume
loses its imaginary part further down, a negative pixdim is silently made positive, a size
beyond the file allocates what it declares, and a MetaImage header's ``ElementDataFile`` may name
any file on the machine. Each of these is a DataError here, naming the file and the field.

The callers (``base.read_volume``) run this inside ``reading``, which turns any remaining library
error into a DataError naming the file.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from cardioseg.data.sniff import (
    NIFTI1_HEADER,
    NIFTI2_HEADER,
    Content,
    gunzip_head,
    identify,
    nifti_header_size,
    require_content,
)
from cardioseg.errors import DataError

MAX_VOLUME_BYTES = 1 << 31
"""Largest pixel data a volume header may declare (2 GiB): a 512 x 512 x 1000 16-bit CT is 0.5 GiB,
cardiac MRI volumes are tens of MB."""

HEAD_READ = 64 * 1024
METAIMAGE_SUFFIXES = (".mhd", ".mha")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
_MET_TYPE_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4, "MET_LONG": 4,
    "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}
_NRRD_DATA_FILE = re.compile(r"^data ?file:\s*(.*)$", re.MULTILINE | re.IGNORECASE)


# --- NIfTI ---------------------------------------------------------------------------------------


def check_header(path: Path) -> None:
    """Everything ``read_nifti`` / ``read_itk`` check before reading pixels: for readers that read lazily."""
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _nifti_header(path)
    else:
        _check_itk_header(path)


def read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    """A single-file NIfTI-1/2 image, plain or gzipped, as nibabel gives it, after its header is checked."""
    header_size, needed = _nifti_header(path)
    if path.name.lower().endswith(".gz"):
        image_class = nib.Nifti1Image if header_size == NIFTI1_HEADER else nib.Nifti2Image
        img = image_class.from_bytes(_gunzip(path, needed))
    else:
        img = nib.load(path)
    array = np.asanyarray(img.dataobj)
    zooms = tuple(float(z) for z in img.header.get_zooms()[: array.ndim])
    return array, zooms, np.asarray(img.affine)


def _nifti_header(path: Path) -> tuple[int, int]:
    """(header size, bytes the file must hold) of a checked NIfTI header; a plain file's length is checked too."""
    gzipped = path.name.lower().endswith(".gz")
    with open(path, "rb") as handle:
        head = handle.read(HEAD_READ)
    _require_nifti(path, identify(head), gzipped)
    header_bytes = gunzip_head(head, NIFTI2_HEADER) if gzipped else head[:NIFTI2_HEADER]
    size = nifti_header_size(header_bytes)
    header_class = nib.Nifti1Header if size == NIFTI1_HEADER else nib.Nifti2Header
    endian = "<" if struct.unpack("<i", header_bytes[:4])[0] == size else ">"  # nibabel would guess from dim[0]
    header = header_class.from_fileobj(io.BytesIO(header_bytes[:size]), endianness=endian, check=False)
    needed = _nifti_bytes(header, path)
    if not gzipped and needed > path.stat().st_size:
        raise DataError(f"truncated: the header declares {needed:,} bytes (header and voxels), "
                        f"the file holds {path.stat().st_size:,}", path)
    return size, needed


def _require_nifti(path: Path, content: Content, gzipped: bool) -> None:
    expected = Content.NIFTI_GZ if gzipped else Content.NIFTI
    if content is expected:
        return
    if content in (Content.NIFTI, Content.NIFTI_GZ):
        rename = ".nii" if content is Content.NIFTI else ".nii.gz"
        raise DataError(f"{path.name} is {content.value}, not {expected.value} as its name says: "
                        f"rename it to end in {rename}", path)
    raise DataError(f"{path.name} is {content.value}, not a NIfTI volume", path)


def _nifti_bytes(header: nib.Nifti1Header, path: Path) -> int:
    """Header, extensions and voxels as declared: the bytes a reader needs, after the fields are checked."""
    dim = [int(d) for d in header["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise DataError(f"dim[0] = {ndim}: the number of dimensions must be 1 to 7", path)
    shape = dim[1 : ndim + 1]
    for axis, n in enumerate(shape, start=1):
        if n < 1:
            raise DataError(f"dimension {axis} is {n}: every dimension of the image must be at least 1", path)
    try:
        dtype = header.get_data_dtype()
    except Exception as exc:  # nibabel raises its HeaderDataError, or KeyError for an unknown code
        raise DataError(f"datatype code {int(header['datatype'])} is not a NIfTI data type", path) from exc
    if dtype.kind == "c":
        raise DataError(f"the image holds complex values ({dtype}): cardioseg reads real-valued images, and "
                        "keeping only the real part would silently change it", path)
    pixdim = [float(p) for p in header["pixdim"]]
    for axis in range(1, ndim + 1):  # zero is "unknown" along a singleton axis or in time (axes 4+), no distance
        spacing = pixdim[axis]
        if not math.isfinite(spacing) or spacing < 0 or (spacing == 0 and shape[axis - 1] > 1 and axis <= 3):
            raise DataError(f"spacing pixdim[{axis}] = {spacing:g}: voxel sizes must be finite and positive", path)
    if not np.isfinite(header.get_best_affine()).all():
        raise DataError("the NIfTI affine (sform/qform) holds NaN or infinite values", path)
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_bytes > MAX_VOLUME_BYTES:
        raise DataError(f"the header declares {' x '.join(map(str, shape))} voxels of {dtype} ({n_bytes:,} bytes), "
                        f"larger than the limit of {MAX_VOLUME_BYTES:,} bytes", path)
    offset = float(header["vox_offset"])
    if not math.isfinite(offset) or offset < 0 or offset > MAX_VOLUME_BYTES:
        raise DataError(f"vox_offset = {offset:g} is not a byte offset into the file", path)
    minimum = (NIFTI2_HEADER if isinstance(header, nib.Nifti2Header) else NIFTI1_HEADER) + 4  # + extension flag
    return max(int(offset), minimum) + n_bytes


def _gunzip(path: Path, size: int) -> bytes:
    """The first ``size`` inflated bytes of a gzip file (members joined, as gzip does); DataError when fewer."""
    pending, out = path.read_bytes(), bytearray()
    try:
        while pending and len(out) < size:
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += stream.decompress(pending, size - len(out))
            pending = stream.unconsumed_tail if not stream.eof else stream.unused_data
            if not stream.eof and not pending:
                break
    except zlib.error as exc:
        raise DataError(f"the gzip data is corrupt ({exc})", path) from exc
    if len(out) < size:
        raise DataError(f"truncated: the header declares {size:,} bytes (header and voxels), "
                        f"the gzip stream holds {len(out):,}", path)
    return bytes(out)


# --- MetaImage and NRRD --------------------------------------------------------------------------


def read_itk(path: Path) -> tuple[np.ndarray, tuple[float, ...], None]:
    """A MetaImage or NRRD volume through SimpleITK, its header (and where it points) checked first."""
    _check_itk_header(path)
    itk = sitk.ReadImage(str(path))
    spacing = tuple(float(s) for s in itk.GetSpacing())
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise DataError(f"spacing {spacing} must be finite and positive", path)
    return sitk.GetArrayFromImage(itk).T, spacing, None


def _check_itk_header(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in METAIMAGE_SUFFIXES:
        require_content(path, (Content.METAIMAGE,), "a MetaImage header")
        _check_metaimage(path)
    elif suffix in NRRD_SUFFIXES:
        require_content(path, (Content.NRRD,), "an NRRD file")
        _check_nrrd(path)


def _check_metaimage(path: Path) -> None:
    fields, header_bytes = _metaimage_fields(path)
    ndims = _ints(fields, "NDims", path, count=1)[0]
    dims = _ints(fields, "DimSize", path, count=ndims)
    if "ElementSpacing" in fields:
        _spacing(fields["ElementSpacing"], ndims, path)
    data_file = fields.get("ElementDataFile")
    if not data_file:
        raise DataError("the header has no ElementDataFile (where its pixels are)", path)
    channels = _ints(fields, "ElementNumberOfChannels", path, count=1)[0] if "ElementNumberOfChannels" in fields else 1
    n_bytes = math.prod(dims) * channels * _MET_TYPE_BYTES.get(fields.get("ElementType", "").upper(), 1)
    if n_bytes > MAX_VOLUME_BYTES:
        raise DataError(f"DimSize {' x '.join(map(str, dims))} declares {n_bytes:,} bytes of pixels, larger than "
                        f"the limit of {MAX_VOLUME_BYTES:,}", path)
    names = _data_file_names(data_file, path)
    compressed = fields.get("CompressedData", "false").lower() == "true"
    if names is None:
        if compressed:
            raise DataError("compressed pixel data in a LIST or numbered pattern of files is not supported", path)
        return  # uncompressed LIST / pattern: SimpleITK checks each file's length itself
    local = data_file.upper() == "LOCAL"
    name, start = (path.name, header_bytes) if local else (names[0], 0)
    source = path if local else path.parent / names[0]
    if not source.is_file():
        raise DataError(f"the data file {name} named by ElementDataFile is missing", path)
    skip = _header_size(fields, path)
    if compressed:
        if skip < 0:
            raise DataError("HeaderSize = -1 (pixels at the end of the file) cannot locate compressed data", path)
        stored = _ints(fields, "CompressedDataSize", path, count=1)[0] if "CompressedDataSize" in fields else None
        if local and stored is None:  # SimpleITK then fails to inflate and returns the unfilled buffer as pixels
            raise DataError("compressed pixels inside the header file (LOCAL) need a CompressedDataSize", path)
        available = _inflated_size(source, start + skip, stored, n_bytes, path)
        what = f"the compressed data in {name} inflates to"
    else:
        available = source.stat().st_size - start - max(skip, 0)
        what = f"{name} holds"
    if available < n_bytes:
        raise DataError(f"the header declares {n_bytes:,} bytes of pixels but {what} {available:,} bytes", path)


def _header_size(fields: dict[str, str], path: Path) -> int:
    """Bytes ITK skips before the pixels (HeaderSize): 0 when absent, -1 for "the pixels end the file"."""
    text = fields.get("HeaderSize", "0")
    if not re.fullmatch(r"-1|\d+", text):
        raise DataError(f"HeaderSize = {text!r}: expected a byte count (or -1)", path)
    return int(text)


def _inflated_size(source: Path, start: int, stored: int | None, limit: int, path: Path) -> int:
    """How many bytes the zlib data of ``source`` (``stored`` bytes from ``start``) inflates to, up to ``limit``.

    ITK allocates the declared size and inflates into it; from a short stream it returns the
    unfilled rest of that buffer as pixels, without an error.
    """
    with open(source, "rb") as handle:
        handle.seek(start)
        pending = handle.read() if stored is None else handle.read(min(stored, source.stat().st_size))
    stream, total = zlib.decompressobj(), 0
    try:
        while pending and total < limit:
            total += len(stream.decompress(pending, min(limit - total, 1 << 24)))
            pending = stream.unconsumed_tail
    except zlib.error as exc:
        raise DataError(f"the compressed pixel data is corrupt ({exc})", path) from exc
    return total


def _metaimage_fields(path: Path) -> tuple[dict[str, str], int]:
    """``Key = value`` lines up to ElementDataFile (the last one), and how many bytes they take."""
    with open(path, "rb") as handle:
        head = handle.read(HEAD_READ)
    fields: dict[str, str] = {}
    at = 0
    for raw in head.splitlines(keepends=True):
        at += len(raw)
        key, sep, value = raw.decode("latin-1").partition("=")
        if sep:
            fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            return fields, at
    raise DataError(f"no ElementDataFile line in the first {HEAD_READ:,} bytes of the header", path)


def _data_file_names(value: str, path: Path) -> list[str] | None:
    """The data file ElementDataFile names ("LOCAL": this file); None for a LIST or a numbered pattern,
    whose names are checked here too. Every name must stay inside the header's own folder."""
    if value.upper() == "LOCAL":
        return [path.name]
    if value.upper().startswith("LIST"):
        lines = path.read_text(encoding="latin-1").splitlines()
        start = next(i for i, line in enumerate(lines) if line.split("=")[0].strip() == "ElementDataFile") + 1
        for name in (line.strip() for line in lines[start:] if line.strip()):
            _inside_folder(name, path)
        return None
    parts = value.split()
    if "%" in value and len(parts) >= 4:  # "slice%03d.raw first last step"
        _inside_folder(parts[0], path)
        return None
    _inside_folder(value, path)
    return [value]


def _inside_folder(name: str, path: Path) -> None:
    """A data file named by a header must be a relative path without ``..``: else a header could read any file."""
    windows = PureWindowsPath(name)
    if PurePosixPath(name).is_absolute() or windows.is_absolute() or windows.drive or windows.root:
        raise DataError(f"ElementDataFile / data file {name!r} is an absolute path, outside the header's folder",
                        path)
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise DataError(f"ElementDataFile / data file {name!r} climbs out of the header's folder with '..': "
                        "refused, it points outside", path)


_NRRD_TYPE_BYTES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                     "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"), 4),
}
_NRRD_FIELD = re.compile(r"^(sizes|type)\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)


def _check_nrrd(path: Path) -> None:
    """An NRRD header: ``sizes`` x ``type`` within ``MAX_VOLUME_BYTES`` (a tiny gzip-encoded file may declare a
    huge volume), and a ``data file:`` field naming only files inside the header's folder."""
    with open(path, "rb") as handle:
        header = handle.read(HEAD_READ).split(b"\n\n", 1)[0].decode("latin-1")
    fields = {key.lower(): value.strip() for key, value in _NRRD_FIELD.findall(header)}
    sizes = fields.get("sizes", "").split()
    if not sizes or not all(v.isdigit() and int(v) > 0 for v in sizes):
        raise DataError(f"sizes = {fields.get('sizes')!r}: expected positive integers", path)
    n_bytes = math.prod(int(v) for v in sizes) * _NRRD_TYPE_BYTES.get(fields.get("type", "").lower(), 8)
    if n_bytes > MAX_VOLUME_BYTES:
        raise DataError(f"sizes {' x '.join(sizes)} declare {n_bytes:,} bytes of pixels, larger than the limit of "
                        f"{MAX_VOLUME_BYTES:,}", path)
    match = _NRRD_DATA_FILE.search(header)
    if match is None:
        return
    value = match[1].strip()
    if value.upper().startswith("LIST"):
        lines = header[match.end():].splitlines()
        for name in (line.strip() for line in lines if line.strip()):
            _inside_folder(name, path)
        return
    _inside_folder(value.split()[0] if "%" in value else value, path)


def _ints(fields: dict[str, str], key: str, path: Path, count: int) -> list[int]:
    text = fields.get(key)
    values = (text or "").split()
    if len(values) != count or not all(v.isdigit() and int(v) > 0 for v in values):
        raise DataError(f"{key} = {text!r}: expected {count} positive integer(s)", path)
    return [int(v) for v in values]


def _spacing(text: str, ndims: int, path: Path) -> None:
    values = text.split()
    try:
        spacing = [float(v) for v in values]
    except ValueError:
        spacing = []
    if len(spacing) != ndims or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise DataError(f"ElementSpacing = {text!r}: expected {ndims} finite positive numbers", path)
