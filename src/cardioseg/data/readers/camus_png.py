"""CAMUS as PNG pairs (camus224): ``<root>[/<split>]/<stem>.png`` + ``<stem>_gt.png``.

Stems are ``patientNNNN_{2CH,4CH}_{ED,ES}``; the official split lists are the CAMUS ones in the
root. The arrays are stored transposed (apex to the left): this reader returns them as stored
and declares ``orientation_fix = "transpose"`` for the prepare step. The images were resized to
224x224 without keeping the aspect ratio, so the physical pixel size is lost: spacing is None.
"""

from __future__ import annotations

import re
from pathlib import Path

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
orientation_fix = "transpose"

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
    return case_from_ref(ref, image, label, spacing=None)


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
