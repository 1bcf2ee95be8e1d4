"""Medical Segmentation Decathlon: ``dataset.json``, ``imagesTr/`` and ``labelsTr/`` NIfTI volumes.

Volumes come back in nibabel's array order (X, Y, Z) with the NIfTI affine and its zooms as
spacing. Cases are the "training" entries of dataset.json whose image exists (a trimmed copy of
a task may list more than it ships), or every imagesTr volume when there is no dataset.json.
Byte-identical image files are one scan, so they share a patient id and can never be split
between train and test (la_005 and la_026 of Task02_Heart are such a pair).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.base import (
    NIFTI_SUFFIXES,
    case_from_ref,
    check_image,
    check_label,
    read_volume,
    reading,
    require_cases,
    strip_suffix,
)
from cardioseg.errors import DataError

name = "msd"
label_names: dict[int, str] = {}  # read per case from dataset.json (meta['label_names'])
orientation_fix = "none"

log = logging.getLogger(__name__)


def looks_like(root: Path) -> bool:
    return (root / "dataset.json").is_file() or (root / "imagesTr").is_dir()


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    descriptor = _read_descriptor(root / "dataset.json")
    pairs = _listed_pairs(root, descriptor) if descriptor is not None else _globbed_pairs(root)
    declared = tuple((int(k), str(v)) for k, v in (descriptor or {}).get("labels", {}).items())
    refs = []
    for image, label in pairs:
        case_id = strip_suffix(image.name, NIFTI_SUFFIXES) or image.name
        # Byte-identical volumes (la_005, la_026) are grouped by content hash in prepare.
        meta: tuple[tuple[str, Any], ...] = (("label_names", declared),) if declared else ()
        refs.append(CaseRef(case_id, case_id, image, label, meta=meta))
    return require_cases(refs, root, name)


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    image, spacing, affine = read_volume(ref.image_path)
    check_image(image, ref.image_path)
    if image.ndim != 3:
        raise DataError(f"expected a 3D volume, got an array of shape {image.shape}", ref.image_path)
    label = None
    if ref.label_path is not None:
        raw, _, label_affine = read_volume(ref.label_path)
        allowed = {value for value, _ in dict(ref.meta).get("label_names", ())} or None
        label = check_label(raw, ref.label_path, image.shape, allowed)
        if affine is not None and label_affine is not None and not np.allclose(affine, label_affine, atol=1e-3):
            raise DataError("label affine differs from the image's: they are not on the same grid", ref.label_path)
    return case_from_ref(ref, image, label, spacing, affine)


def official_splits(root: Path) -> dict[str, str] | None:
    return None  # MSD's imagesTs has no labels, so there is no labelled official test split


def _read_descriptor(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with reading(path, "dataset.json"):
        descriptor = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("training", []), list):
        raise DataError('expected an object with a "training" list', path)
    return descriptor


def _listed_pairs(root: Path, descriptor: dict[str, Any]) -> list[tuple[Path, Path]]:
    pairs, absent = [], []
    for entry in descriptor.get("training", []):
        if not isinstance(entry, dict) or not {"image", "label"} <= entry.keys():
            raise DataError(f'a "training" entry lacks "image" or "label": {entry!r}', root / "dataset.json")
        image, label = root / entry["image"], root / entry["label"]
        if not image.is_file():
            absent.append(image.name)
            continue
        if not label.is_file():
            raise DataError(f"label file of {image.name} listed in dataset.json is missing", label)
        pairs.append((image, label))
    if absent:
        log.warning("dataset.json lists %d training images that are absent, skipped: %s", len(absent), absent)
    return sorted(pairs)


def _globbed_pairs(root: Path) -> list[tuple[Path, Path]]:
    """Every imagesTr volume, skipping hidden files such as the ``._la_003.nii.gz`` macOS leftovers."""
    images = sorted(
        p
        for p in (root / "imagesTr").glob("*")
        if not p.name.startswith(".") and strip_suffix(p.name, NIFTI_SUFFIXES) is not None
    )
    for image in images:
        if not (root / "labelsTr" / image.name).is_file():
            raise DataError(f"image has no label labelsTr/{image.name}", image)
    return [(image, root / "labelsTr" / image.name) for image in images]
