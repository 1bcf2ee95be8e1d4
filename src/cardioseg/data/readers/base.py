"""What every reader provides, and the file-reading helpers the readers share.

Each source layout has its own reader, but all of them hand back the same ``Case``. The helpers
here make any unreadable, truncated or inconsistent file surface as a ``DataError`` that names
that file, never as a library traceback, so ``--skip-bad`` can drop one case and go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pydicom
from PIL import Image

from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers import dicom_io, volume_io
from cardioseg.data.readers.dicom_io import MAX_DICOM_BYTES
from cardioseg.data.readers.dicom_pixels import decode_grey, physical_spacing, require_pixels
from cardioseg.data.sniff import Content, require_content
from cardioseg.errors import DataError

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NIFTI_SUFFIXES = (".nii.gz", ".nii")
RASTER_CONTENT = (Content.PNG, Content.JPEG, Content.TIFF, Content.BMP)


class Reader(Protocol):
    """One source layout. Reader modules implement this at module level (``READERS`` holds them)."""

    name: str
    label_names: dict[int, str]  # source label id -> anatomical name, where the layout defines them
    orientation_fix: str  # "none" or "transpose": what the prepare step applies for the apex-up view

    def looks_like(self, root: Path) -> bool:
        """Cheap test used by layout detection: does ``root`` have this layout's landmarks?"""
        ...

    def discover(self, root: Path, cfg: DataConfig) -> list[CaseRef]:
        """List and pair files without reading pixels; DataError for a missing partner or no cases."""
        ...

    def load(self, ref: CaseRef, cfg: DataConfig) -> Case:
        """Read one case's pixels; DataError naming the file when it is unreadable or inconsistent."""
        ...

    def official_splits(self, root: Path) -> dict[str, str] | None:
        """patient_id -> 'train' / 'val' / 'test' when the layout ships a split, else None."""
        ...


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Check ``path`` is a non-empty file, and turn any library exception into a DataError naming it."""
    if not path.is_file():
        raise DataError(f"{what} not found", path)
    if path.stat().st_size == 0:
        raise DataError(f"{what} is empty (0 bytes)", path)
    try:
        yield
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read {what} ({type(exc).__name__}: {exc})", path) from exc


def strip_suffix(name: str, suffixes: tuple[str, ...]) -> str | None:
    """``name`` without the first matching suffix (so ``.nii.gz`` counts as one), or None."""
    lower = name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def read_raster(path: Path, *, label: bool = False) -> np.ndarray:
    """A PNG/JPEG/TIFF/BMP as a 2D array: colour is converted to grey (ITU-R 601 luma).

    For a label map (``label=True``) a palette image keeps its palette indices, which are the
    class ids, instead of being converted to the colours they stand for. Pillow decodes by content,
    so a JPEG named ``.png`` reads as it would under its own name; content that is no raster image
    at all is refused, saying what it is.
    """
    with reading(path, "image file"):
        require_content(path, RASTER_CONTENT, "an image (PNG, JPEG, TIFF or BMP)")
        with Image.open(path) as opened:
            opened.load()
            colour = opened.mode in ("RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "1")
            array = np.asarray(opened.convert("L") if colour or (opened.mode == "P" and not label) else opened)
    return require_2d(array, path)


def read_dicom(path: Path) -> tuple[np.ndarray, tuple[float, float] | None, pydicom.Dataset]:
    """One 2D frame in grey, (row_mm, col_mm) or None, and the header.

    Colour is converted to grey and monochrome pixels get their modality LUT, as
    ``dicom_pixels.decode_grey`` documents; the spacing follows ``dicom_pixels.physical_spacing``
    (ultrasound regions, else PixelSpacing). A multi-frame file is refused here: it is a cine, read
    by ``dicom_frames.read_dicom_frames``. The header is read and its image size checked against
    ``MAX_DICOM_BYTES`` before any pixel is decoded (see ``read_dicom_header``).
    """
    with reading(path, "DICOM file"):
        ds = dicom_io.open_dicom(path, MAX_DICOM_BYTES, pixels=True)
        require_pixels(ds, path)
        frames = dicom_io.dicom_geometry(ds, path).frames
        if frames > 1:
            raise DataError(f"a multi-frame DICOM ({frames} frames, a cine), not a single 2D image", path)
        array = decode_grey(ds, path)[0]
        spacing, _ = physical_spacing(ds, path)
    return require_2d(array, path), spacing, ds


def read_dicom_header(path: Path, max_bytes: int = MAX_DICOM_BYTES) -> pydicom.Dataset:
    """A DICOM header without its pixels, refused when its image would take more than ``max_bytes``.

    A deflated file (transfer syntax 1.2.840.10008.1.2.1.99) is inflated with a bound: no further
    than its header plus the pixel bytes that header declares, so a small file that would inflate
    to gigabytes is refused instead of filling memory.
    """
    with reading(path, "DICOM file"):
        return dicom_io.open_dicom(path, max_bytes, pixels=False)


def read_npy(path: Path) -> np.ndarray:
    """A NumPy array file, without pickles (they could run code).

    It is mapped first, then copied: a header declaring more than the file holds fails at the
    mapping instead of allocating what it declares.
    """
    with reading(path, "NumPy file"):
        require_content(path, (Content.NPY,), "a NumPy .npy array")
        array = np.array(np.load(path, mmap_mode="r", allow_pickle=False))
    return require_2d(array, path)


def read_volume(path: Path) -> tuple[np.ndarray, tuple[float, ...], np.ndarray | None]:
    """A NIfTI (nibabel) or MetaImage/NRRD (SimpleITK) file in index order (i, j, k), its spacing and affine.

    NIfTI goes through nibabel because SimpleITK silently returns partial pixels for a truncated
    ``.nii.gz``. The affine is the NIfTI one; ITK formats have none here (None). Headers are checked
    before any pixel is read: dimensions, data type, spacing, the declared size against the file
    (and ``volume_io.MAX_VOLUME_BYTES``), and where a MetaImage/NRRD header says its pixels are.
    """
    with reading(path, "image volume"):
        if strip_suffix(path.name, NIFTI_SUFFIXES) is not None:
            return volume_io.read_nifti(path)
        return volume_io.read_itk(path)


def check_volume_header(path: Path) -> None:
    """The checks ``read_volume`` makes before reading pixels, for readers that open volumes lazily."""
    with reading(path, "image volume"):
        volume_io.check_header(path)


def require_2d(array: np.ndarray, path: Path) -> np.ndarray:
    """Drop singleton axes (a 2D frame saved as H x W x 1); anything else must already be 2D."""
    squeezed = np.squeeze(array) if array.ndim > 2 else array
    if squeezed.ndim != 2:
        raise DataError(f"expected a single 2D image, got an array of shape {array.shape}", path)
    return squeezed


def check_image(image: np.ndarray, path: Path) -> np.ndarray:
    """Reject non-numeric images and NaN/inf pixels, which would poison normalisation and training."""
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise DataError(f"image pixels have non-numeric type {image.dtype}", path)
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise DataError(f"image holds {int((~np.isfinite(image)).sum())} NaN or infinite pixels", path)
    return image


def check_label(
    label: np.ndarray, path: Path, image_shape: tuple[int, ...], allowed: set[int] | None = None
) -> np.ndarray:
    """An integer label map of the image's shape, with values in ``allowed`` (when given), as uint8."""
    if label.dtype == bool:
        label = label.view(np.uint8)
    if label.shape != image_shape:
        raise DataError(f"label shape {label.shape} does not match image shape {image_shape}", path)
    values = np.unique(label)
    if not np.isfinite(values).all() or not np.array_equal(values, np.round(values)):
        raise DataError("label map holds non-integer values", path)
    if values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise DataError(f"label values {preview(values)} are outside 0..255", path)
    unexpected = {int(v) for v in values} - allowed if allowed is not None else set()
    if unexpected:
        raise DataError(f"unexpected label values {sorted(unexpected)} (expected {sorted(allowed or ())})", path)
    return label.astype(np.uint8, copy=False)


def preview(values: np.ndarray, limit: int = 8) -> str:
    """A short, readable list of array values for an error message."""
    shown = ", ".join(f"{v:g}" for v in values[:limit].astype(float))
    return f"[{shown}{', ...' if len(values) > limit else ''}] ({len(values)} distinct)"


def require_cases(refs: list[CaseRef], root: Path, layout: str) -> list[CaseRef]:
    """An empty dataset is an error, not a silent zero-case run."""
    if not refs:
        raise DataError(f"no {layout} cases found", root)
    return refs


def case_from_ref(
    ref: CaseRef,
    image: np.ndarray,
    label: np.ndarray | None,
    spacing: tuple[float, ...] | None,
    affine: np.ndarray | None = None,
    **extra_meta: Any,
) -> Case:
    """Build a ``Case`` carrying over the identity fields and meta found at discovery."""
    return Case(
        case_id=ref.case_id,
        patient_id=ref.patient_id,
        image=image,
        label=label,
        spacing=spacing,
        affine=affine,
        view=ref.view,
        phase=ref.phase,
        image_path=ref.image_path,
        label_path=ref.label_path,
        meta={**dict(ref.meta), **extra_meta},
    )
