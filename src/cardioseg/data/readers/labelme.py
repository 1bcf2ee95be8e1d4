"""LabelMe: a folder (and its subfolders) of images, each with the LabelMe ``.json`` written beside it.

A LabelMe file holds ``shapes`` (``label``, ``points``, ``shape_type`` polygon / rectangle /
circle; no type means polygon), ``imagePath``, ``imageHeight``, ``imageWidth`` and optionally the
image itself base64-encoded in ``imageData``. The image is ``imagePath`` relative to the json (or
the file of that name beside it); the embedded copy is used only when no such file exists, and the
case's ``image_path`` is then the json itself. Images without a json are not annotated and are no
cases; json files without ``shapes`` are not LabelMe files and are passed over.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.annotated import case_ref, class_ids, find_image, int_field, painted_case, require_unique
from cardioseg.data.readers.base import read_raster, reading, require_2d, require_cases
from cardioseg.data.readers.polygons import Shape, make_shape
from cardioseg.errors import DataError

name = "labelme"
label_names: dict[int, str] = {}  # the dataset's own names, per case in meta['label_names']
orientation_fix = "none"

_HEAD_BYTES = 4096  # LabelMe writes "shapes" among its first keys


def looks_like(root: Path) -> bool:
    for path in (p for pattern in ("*.json", "*/*.json") for p in root.glob(pattern) if p.is_file()):
        with path.open("rb") as file:
            if b'"shapes"' in file.read(_HEAD_BYTES):
                return True
    return False


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    files = {path: document for path in sorted(root.rglob("*.json"))
             if not path.name.startswith(".") and (document := _read(path)) is not None}
    names = {path: {label for shape in _shape_entries(document, path) if isinstance(label := shape.get("label"), str)}
             for path, document in files.items()}  # a missing or non-text label is refused at load
    ids = class_ids(names, cfg, root)
    refs = []
    for path, document in files.items():
        image = _image_file(document, path, root)
        if image is None and not document.get("imageData"):
            raise DataError(f"image {document.get('imagePath')!r} not found and no image embedded (imageData)", path)
        stem = (image or path).stem
        refs.append(case_ref(stem, image or path, path, cfg, ids))
    return require_unique(require_cases(refs, root, name))


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    annotation = ref.label_path
    assert annotation is not None  # discover pairs every case with its json
    document = _read(annotation)
    if document is None:
        raise DataError("no longer a LabelMe file (no 'shapes')", annotation)
    shapes = _shapes(document, annotation)
    image = _embedded_image(document, annotation) if ref.image_path == annotation else read_raster(ref.image_path)
    declared = (int_field(document, "imageHeight", annotation, "file"), int_field(document, "imageWidth", annotation, "file"))
    return painted_case(ref, image, declared, shapes)


def official_splits(root: Path) -> dict[str, str] | None:
    return None


def _read(path: Path) -> dict[str, Any] | None:
    """The parsed LabelMe document, or None for a json that is not one."""
    with reading(path, "LabelMe file"):
        document = json.loads(path.read_text(encoding="utf-8"))
    return document if isinstance(document, dict) and "shapes" in document else None


def _shape_entries(document: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    entries = document["shapes"]
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise DataError("'shapes' must be a list of shape objects", path)
    return entries


def _shapes(document: dict[str, Any], path: Path) -> list[Shape]:
    return [make_shape(entry.get("label"), entry.get("shape_type") or "polygon", entry.get("points"), path, f"shape {n}")
            for n, entry in enumerate(_shape_entries(document, path))]


def _image_file(document: dict[str, Any], path: Path, root: Path) -> Path | None:
    image_path = document.get("imagePath")
    if not isinstance(image_path, str) or not image_path:
        return None
    found = find_image(image_path, [path.parent], root, path)
    if found is None:  # LabelMe keeps the path as annotated, which may be from another folder
        found = find_image(Path(image_path.replace("\\", "/")).name, [path.parent], root, path)
    return found


def _embedded_image(document: dict[str, Any], path: Path) -> np.ndarray:
    with reading(path, "LabelMe file"):
        data = base64.b64decode(document.get("imageData") or "", validate=True)
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            array = np.asarray(opened if opened.mode in ("L", "I", "I;16", "F") else opened.convert("L"))
    return require_2d(array, path)
