"""Sunnybrook Cardiac Data: short-axis cine MRI DICOM slices with expert contour files.

``link.csv`` maps each DICOM folder (``SCD...``, the patient id) to its contour folder
(``SC-HF-...``). ``contourfiles/<SC>/i-contours/IM-0001-NNNN-icontour-manual.txt`` outlines
``dicoms/<SCD>/<int(NNNN)>.dcm``; ``o-contours/`` holds the epicardial outlines of some slices.
Only slices with an inner contour are cases.

Rasterisation convention: a contour line "x y" is a point in pixel units, x along columns and
y along rows, with pixel (row r, column c) centred at (x=c, y=r) as in DICOM. A pixel belongs to
a region when its centre lies inside the polygon or on its edge (skimage.draw.polygon2mask), so a
square with corners (10.5, 10.5) and (20.5, 20.5) fills exactly the 100 pixels 11..20 x 11..20.
Labels: 1 = LV blood pool (inside the i-contour), 2 = myocardium (inside the o-contour, outside
the i-contour). Slices without a usable o-contour have no myocardium drawn: for them label 0
means "background or unannotated myocardium", recorded as ``meta['unannotated_labels'] = [2]``:
prepare marks those pixels as unknown, the loss and the myocardium metrics leave them out.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from skimage.draw import polygon2mask

from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.base import (
    case_from_ref,
    check_image,
    read_dicom,
    reading,
    require_cases,
)
from cardioseg.errors import DataError

log = logging.getLogger(__name__)

name = "sunnybrook"
label_names: dict[int, str] = {1: "LV blood pool", 2: "LV myocardium"}
orientation_fix = "none"

BLOOD_POOL = 1
MYOCARDIUM = 2
MAX_INNER_OUTSIDE = 0.05  # fraction of the blood pool an o-contour may leave out (outline jitter)
_ICONTOUR = re.compile(r"IM-\d{4}-(\d{4})-icontour-manual\.txt")


def looks_like(root: Path) -> bool:
    return (root / "link.csv").is_file() or ((root / "dicoms").is_dir() and (root / "contourfiles").is_dir())


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    refs = [ref for scd, original in _links(root / "link.csv") for ref in _patient_refs(root, scd, original)]
    return require_cases(refs, root, name)


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    image, spacing, header = read_dicom(ref.image_path)
    check_image(image, ref.image_path)
    if ref.label_path is None:
        raise DataError("a Sunnybrook case needs its i-contour file", ref.image_path)
    inner = _region(ref.label_path, image.shape)
    outer = _outer_region(dict(ref.meta).get("o_contour_path"), inner)
    label = np.zeros(image.shape, np.uint8)
    if outer is not None:
        label[outer] = MYOCARDIUM
    label[inner] = BLOOD_POOL
    extra: dict[str, Any] = {"unannotated_labels": [] if outer is not None else [MYOCARDIUM]}
    if "SliceLocation" in header:
        extra["slice_location"] = float(header.SliceLocation)
    return case_from_ref(ref, image, label, spacing, **extra)


def official_splits(root: Path) -> dict[str, str] | None:
    return None


def read_contour(path: Path) -> np.ndarray:
    """The (N, 2) array of "x y" points of one contour file."""
    with reading(path, "contour file"):
        points = np.loadtxt(path, dtype=float, ndmin=2)
    if points.shape[1] != 2 or len(points) < 3 or not np.isfinite(points).all():
        raise DataError(f"expected at least 3 finite 'x y' lines, got an array of shape {points.shape}", path)
    return points


def rasterise(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of the pixels whose centre lies inside the (x, y) polygon (see module docstring)."""
    return polygon2mask(shape, points[:, ::-1])


def _region(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    mask = rasterise(read_contour(path), shape)
    if not mask.any():
        raise DataError("contour encloses no pixel centre of the image", path)
    return mask


def _outer_region(path: Path | None, inner: np.ndarray) -> np.ndarray | None:
    """The o-contour's region, or None when absent or when it does not enclose the i-contour.

    An epicardial outline leaving much of the blood pool outside belongs to another slice or
    patient (SC-HF-I-6's o-contour files are copies of SC-HF-I-1's): drawing it would teach wrong
    myocardium, so the slice keeps its blood pool and is marked as having no myocardium.
    """
    if path is None:
        return None
    outer = _region(path, inner.shape)
    outside = float((inner & ~outer).sum() / inner.sum())
    if outside > MAX_INNER_OUTSIDE:
        log.warning(
            "%s: %.0f%% of the i-contour lies outside this o-contour; myocardium not drawn", path, 100 * outside
        )
        return None
    return outer


def _links(path: Path) -> list[tuple[str, str]]:
    with reading(path, "link file"):
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    if not rows or not {"patient_id", "original_id"} <= rows[0].keys():
        raise DataError("expected a header 'patient_id,original_id' and one row per patient", path)
    return [(row["patient_id"].strip(), row["original_id"].strip()) for row in rows]


def _patient_refs(root: Path, scd: str, original: str) -> list[CaseRef]:
    contours = root / "contourfiles" / original
    inner_files = sorted((contours / "i-contours").glob("*-icontour-manual.txt"))
    if not inner_files:
        raise DataError(f"no *-icontour-manual.txt files for {scd}", contours / "i-contours")
    refs = []
    for inner in inner_files:
        match = _ICONTOUR.fullmatch(inner.name)
        if match is None:
            raise DataError("contour file name is not IM-0001-NNNN-icontour-manual.txt", inner)
        number = int(match[1])
        dicom = root / "dicoms" / scd / f"{number}.dcm"
        if not dicom.is_file():
            raise DataError(f"DICOM slice of contour {inner.name} is missing", dicom)
        outer = contours / "o-contours" / inner.name.replace("icontour", "ocontour")
        meta = (("slice", number), ("original_id", original), ("o_contour_path", outer if outer.is_file() else None))
        refs.append(CaseRef(f"{scd}_{number:04d}", scd, dicom, inner, meta=meta))
    return refs
