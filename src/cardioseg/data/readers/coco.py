"""COCO: ``annotations/*.json`` (or a ``*.json`` in the folder) with ``images``, ``annotations``, ``categories``.

Each image's ``file_name`` is looked up in ``images/``, then beside the json, then in the data
folder. An annotation's ``segmentation`` is a list of polygons ``[x1, y1, x2, y2, ...]`` (one
object may have several parts) or a run-length mask (``{"counts": [...] or "...", "size": [h, w]}``);
its label is the name of its ``category_id``. Annotations are painted in file order, so a later
one wins where two overlap. An image without annotations is all background.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.annotated import case_ref, class_ids, find_image, int_field, painted_case, require_unique
from cardioseg.data.readers.base import read_raster, reading, require_cases
from cardioseg.data.readers.polygons import Shape, decode_rle, make_shape
from cardioseg.errors import DataError

name = "coco"
label_names: dict[int, str] = {}  # the dataset's own category names, per case in meta['label_names']
orientation_fix = "none"

_KEYS = ("images", "annotations", "categories")
_HEAD_BYTES = 4096


@dataclass
class _Index:
    """A COCO file's images by id, their annotations (with their position in the file), category names."""

    images: dict[int, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    categories: dict[int, str] = field(default_factory=dict)


def looks_like(root: Path) -> bool:
    if (root / "annotations").is_dir() and next((root / "annotations").glob("*.json"), None) is not None:
        return True
    return any(_is_coco_head(path) for path in root.glob("*.json") if path.is_file())


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    folder = root / "annotations"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else [p for p in sorted(root.glob("*.json")) if _is_coco(p)]
    indexes = {path: _index(path) for path in files}
    names = {path: {index.categories[a["category_id"]] for anns in index.annotations.values() for _, a in anns}
             for path, index in indexes.items()}
    ids = class_ids(names, cfg, root)
    refs = []
    for path, index in indexes.items():
        for image_id, entry in index.images.items():
            image = find_image(entry["file_name"], list(dict.fromkeys([root / "images", path.parent, root])), root, path)
            if image is None:
                raise DataError(f"image {entry['file_name']!r} (id {image_id}) not found in images/, beside the "
                                "json or in the data folder", path)
            refs.append(case_ref(image.stem, image, path, cfg, ids, ("coco_image_id", image_id)))
    return require_unique(require_cases(refs, root, name))


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    annotation = ref.label_path
    assert annotation is not None  # discover pairs every case with its json
    index = _index(annotation)
    image_id = dict(ref.meta)["coco_image_id"]
    if image_id not in index.images:
        raise DataError(f"image id {image_id} is no longer in the file", annotation)
    entry = index.images[image_id]
    where = f"image id {image_id}"
    declared = (int_field(entry, "height", annotation, where), int_field(entry, "width", annotation, where))
    shapes = [shape for n, item in index.annotations.get(image_id, [])
              for shape in _shapes(item, index.categories[item["category_id"]], annotation, f"annotation {n}")]
    return painted_case(ref, read_raster(ref.image_path), declared, shapes)


def official_splits(root: Path) -> dict[str, str] | None:
    return None


def _shapes(item: dict[str, Any], label: str, path: Path, where: str) -> list[Shape]:
    """One annotation's shapes: a polygon per part, or its run-length mask."""
    where = f"{where} (id {item.get('id')})"
    segmentation = item.get("segmentation")
    if isinstance(segmentation, dict):
        mask = decode_rle(segmentation.get("counts"), segmentation.get("size"), path, where)
        return [Shape(label, "mask", where, mask=mask)]
    if not isinstance(segmentation, list) or not segmentation:
        raise DataError(f"{where}: 'segmentation' must be a list of polygons or a run-length mask", path)
    shapes = []
    for part in segmentation:
        if not isinstance(part, list) or len(part) % 2:
            raise DataError(f"{where}: a polygon must be a flat list of x, y coordinates (an even count)", path)
        shapes.append(make_shape(label, "polygon", [part[i:i + 2] for i in range(0, len(part), 2)], path, where))
    return shapes


def _index(path: Path) -> _Index:
    stat = path.stat() if path.is_file() else None
    return _cached_index(path, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


@lru_cache(maxsize=4)
def _cached_index(path: Path, mtime_ns: int, size: int) -> _Index:
    """Parsed once per file version, not once per case: a COCO file describes thousands of images."""
    with reading(path, "COCO annotation file"):
        document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not all(isinstance(document.get(key), list) for key in _KEYS):
        raise DataError("not a COCO file: expected lists 'images', 'annotations' and 'categories'", path)
    index = _Index()
    for n, category in enumerate(document["categories"]):
        if not (isinstance(category, dict) and _is_id(category.get("id")) and isinstance(category.get("name"), str)
                and category["name"].strip()):
            raise DataError(f"category {n}: needs an integer 'id' and a 'name'", path)
        index.categories[category.get("id")] = category["name"]
    for n, image in enumerate(document["images"]):
        if not (isinstance(image, dict) and _is_id(image.get("id")) and isinstance(image.get("file_name"), str)):
            raise DataError(f"image {n}: needs an integer 'id' and a 'file_name'", path)
        if image.get("id") in index.images:
            raise DataError(f"image {n}: id {image.get('id')!r} is used twice", path)
        index.images[image["id"]] = image
    for n, item in enumerate(document["annotations"]):
        if not isinstance(item, dict) or not _is_id(item.get("image_id")) or item["image_id"] not in index.images:
            raise DataError(f"annotation {n}: image_id {_get(item, 'image_id')!r} is no listed image", path)
        if not _is_id(item.get("category_id")) or item["category_id"] not in index.categories:
            raise DataError(f"annotation {n}: category_id {item.get('category_id')!r} is no listed category", path)
        index.annotations.setdefault(item["image_id"], []).append((n, item))
    return index


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else None


def _is_coco_head(path: Path) -> bool:
    with path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
    return b'"images"' in head and b'"shapes"' not in head


def _is_coco(path: Path) -> bool:
    """Whether a json of the data folder is a COCO file (other json there is not this reader's)."""
    with reading(path, "json file"):
        document = json.loads(path.read_text(encoding="utf-8"))
    return isinstance(document, dict) and all(key in document for key in _KEYS)
