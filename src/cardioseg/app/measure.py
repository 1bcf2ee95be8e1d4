"""The numbers shown beside the image: per-class area of the slice, and volume for a volume.

Areas are in pixels and, when the pixel spacing is known (DICOM PixelSpacing, NIfTI header),
in mm²; volumes through ``cardioseg.clinical.mask_volume``, in mL only with a known spacing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cardioseg.app.sessions import Session
from cardioseg.clinical import mask_volume


def slice_areas(session: Session, mask: np.ndarray) -> list[dict[str, Any]]:
    spacing = session.plane_spacing()
    pixel_mm2 = spacing[0] * spacing[1] if spacing else None
    rows = []
    for label, name in session.model.class_names.items():
        pixels = int(np.count_nonzero(mask == label))
        rows.append({"label": label, "name": name, "pixels": pixels,
                     "mm2": pixels * pixel_mm2 if pixel_mm2 is not None else None})
    return rows


def volumes(session: Session) -> list[dict[str, Any]] | None:
    """Per-class volume of the corrected mask; None for a 2D image or a cine (its frames are times, not slices)."""
    if session.depth == 1 or session.scan.cine is not None:
        return None
    final = session.final()
    rows = []
    for label, name in session.model.class_names.items():
        result = mask_volume(final == label, session.scan.spacing)
        rows.append({"label": label, "name": name, "voxels": result.voxels, "ml": result.ml})
    return rows


def measurements(session: Session, mask: np.ndarray) -> dict[str, Any]:
    return {"areas": slice_areas(session, mask), "volumes": volumes(session)}
