"""CAMUS as PNG pairs (camus224): ``<root>[/<split>]/<stem>.png`` + ``<stem>_gt.png``.

Stems are ``patientNNNN_{2CH,4CH}_{ED,ES}``; the official split lists are the CAMUS ones in the
root. The arrays are stored transposed (apex to the left): this reader returns them as stored
and declares ``orientation_fix = "transpose"`` for the prepare step. The images were resized to
224x224 without keeping the aspect ratio, so the physical pixel size is lost: spacing is None.

The label maps were resized by interpolating class ids, which left stray pixels of the class in
between on the border of two others (label 1 where myocardium 2 meets background 0, label 2 where
1 meets 3): about 50 one-pixel islands of "LV" per image, far from the ventricle. They do not
change Dice but dominate Hausdorff distances. With ``data.repair_label_artefacts`` (default on)
every island of a class smaller than ``ARTEFACT_MAX_PIXELS`` that is not its largest component is
given the label of the nearest pixel outside the islands; the count is kept in ``meta``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.base import (
    case_from_ref,
    check_image,
    check_label,
    read_raster,
    require_cases,
)
from cardioseg.data.readers.camus import LABELS, read_split_files
from cardioseg.errors import DataError

name = "camus_png"
label_names: dict[int, str] = {1: "LV endocardium", 2: "LV myocardium", 3: "left atrium"}
orientation_fix = "transpose"

ARTEFACT_MAX_PIXELS = 20
_STEM = re.compile(r"(patient\d{4})_([24]CH)_(ED|ES)")
_GLOB = "patient*_[24]CH_E[DS].png"


def looks_like(root: Path) -> bool:
    return next(root.glob(_GLOB), None) is not None or next(root.glob(f"*/{_GLOB}"), None) is not None


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    if not root.is_dir():
        raise DataError("data folder not found", root)
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    refs: dict[str, CaseRef] = {}
    for ref in (ref for folder in folders for ref in _folder_refs(folder, root)):
        if ref.case_id in refs:
            raise DataError(f"{ref.case_id} is also at {refs[ref.case_id].image_path}", ref.image_path)
        refs[ref.case_id] = ref
    return require_cases(list(refs.values()), root, name)


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    image = check_image(read_raster(ref.image_path), ref.image_path)
    label = None
    if ref.label_path is not None:
        label = check_label(read_raster(ref.label_path, label=True), ref.label_path, image.shape, LABELS)
        if cfg.repair_label_artefacts:
            label, repaired = repair_resize_artefacts(label)
            ref = replace(ref, meta=(*ref.meta, ("repaired_artefact_pixels", repaired)))
    return case_from_ref(ref, image, label, spacing=None)


def artefact_islands(label: np.ndarray, max_pixels: int = ARTEFACT_MAX_PIXELS) -> np.ndarray:
    """Pixels in small components of a class that are not that class's largest component."""
    islands = np.zeros(label.shape, bool)
    for class_id in np.unique(label):
        components, count = ndimage.label(label == class_id)
        if count < 2:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        small = (sizes < max_pixels) & (np.arange(len(sizes)) != sizes.argmax())
        islands |= small[components] & (components > 0)
    return islands


def repair_resize_artefacts(label: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel artefact islands with the label of the nearest pixel that is not one."""
    islands = artefact_islands(label)
    if not islands.any():
        return label, 0
    _, (rows, cols) = ndimage.distance_transform_edt(islands, return_indices=True)
    return label[rows, cols], int(islands.sum())


def official_splits(root: Path) -> dict[str, str] | None:
    return read_split_files([root])


def _folder_refs(folder: Path, root: Path) -> list[CaseRef]:
    """Pair the CAMUS-named PNGs of one folder; either half of a pair missing is an error."""
    names = {p.name for p in folder.glob("*.png")}
    refs = []
    for file_name in sorted(names):
        stem = file_name.removesuffix(".png")
        if stem.endswith("_gt"):
            if _STEM.fullmatch(stem.removesuffix("_gt")) and f"{stem.removesuffix('_gt')}.png" not in names:
                raise DataError(f"label has no image {stem.removesuffix('_gt')}.png", folder / file_name)
            continue
        match = _STEM.fullmatch(stem)
        if match is None:
            continue
        if f"{stem}_gt.png" not in names:
            raise DataError(f"image has no label {stem}_gt.png", folder / file_name)
        meta = (("folder", folder.name),) if folder != root else ()
        refs.append(CaseRef(stem, match[1], folder / file_name, folder / f"{stem}_gt.png", match[2], match[3], meta))
    return refs
