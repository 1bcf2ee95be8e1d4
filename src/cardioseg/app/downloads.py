"""The corrected mask as a file to download; pixel values are class ids (0 = background).

A 2D image's mask is given back in the uploaded file's own layout (the orientation fix undone),
so it lies pixel for pixel on that file; a cine's NIfTI holds its frames on the third axis. A NIfTI upload's mask keeps the upload's header and
affine. A volume's PNG is the slice on screen, as displayed.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from cardioseg.app.sessions import Session
from cardioseg.data.preprocess import orient
from cardioseg.data.readers.base import NIFTI_SUFFIXES, RASTER_SUFFIXES, strip_suffix
from cardioseg.plan import oriented_spacing


def download_stem(session: Session) -> str:
    return strip_suffix(session.name, (*NIFTI_SUFFIXES, *RASTER_SUFFIXES, ".dcm")) or session.name


def encode_png(plane: np.ndarray) -> bytes:
    """An 8-bit grey PNG of a 2D uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(plane)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_bytes(session: Session, index: int) -> bytes:
    """The mask of a 2D image in its file's layout, or the displayed slice of a volume."""
    if session.depth > 1:
        return encode_png(session.mask(index))
    return encode_png(orient(session.final()[..., 0], session.scan.orientation_fix))


def nifti_bytes(session: Session) -> bytes:
    """The whole mask as .nii.gz: on the upload's grid for NIfTI, else with the pixel spacing."""
    final = session.final()
    if session.scan.volume is not None:
        target = session.folder / "mask.nii.gz"
        session.scan.volume.write_like(target, final)
        return _read_and_remove(target)
    fix = session.scan.orientation_fix
    planes = [orient(final[..., k], fix) for k in range(final.shape[2])]  # one, or a cine's frames
    spacing = oriented_spacing(session.scan.spacing, fix)  # back to the file's axes
    image = nib.Nifti1Image(planes[0] if len(planes) == 1 else np.stack(planes, axis=-1),
                            np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0]))
    return gzip.compress(image.to_bytes(), mtime=0)


def _read_and_remove(path: Path) -> bytes:
    try:
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
