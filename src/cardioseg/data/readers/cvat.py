"""CVAT "for images 1.1": ``annotations.xml`` with the images beside it or in ``images/``.

Each ``<image name=... width=... height=...>`` holds ``<polygon label=... points="x,y;x,y;...">``
and ``<box label=... xtl= ytl= xbr= ybr=>`` shapes. They are painted in ``z_order`` (then file
order), so the shape CVAT shows on top wins where two overlap. Image-level ``<tag>`` elements
are not regions and are passed over; any other shape (polyline, points, ellipse, mask...) is an
error naming the image and the shape. The file may not declare a DOCTYPE (CVAT never writes one;
entity declarations are how XML files blow up their parser).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from functools import lru_cache
from pathlib import Path

from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.annotated import case_ref, class_ids, find_image, painted_case, require_unique
from cardioseg.data.readers.base import read_raster, reading, require_cases
from cardioseg.data.readers.polygons import Shape, make_shape
from cardioseg.errors import DataError

name = "cvat"
label_names: dict[int, str] = {}  # the dataset's own label names, per case in meta['label_names']
orientation_fix = "none"

ANNOTATIONS = "annotations.xml"
_NOT_REGIONS = ("tag",)


def looks_like(root: Path) -> bool:
    return (root / ANNOTATIONS).is_file()


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    path = root / ANNOTATIONS
    images = _images(path)
    names = {path: {label for element in images for child in element
                    if child.tag not in _NOT_REGIONS and (label := child.get("label"))}}
    ids = class_ids(names, cfg, root)
    refs = []
    for n, element in enumerate(images):
        image_name = element.get("name") or ""
        image = find_image(image_name, [root / "images", root], root, path)
        if image is None:
            raise DataError(f"image {image_name!r} not found beside {ANNOTATIONS} or in images/", path)
        refs.append(case_ref(image.stem, image, path, cfg, ids, ("cvat_image_index", n)))
    return require_unique(require_cases(refs, root, name))


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    path = ref.label_path
    assert path is not None  # discover pairs every case with annotations.xml
    images = _images(path)
    n = dict(ref.meta)["cvat_image_index"]
    if n >= len(images):
        raise DataError(f"image {n} is no longer in the file", path)
    element = images[n]
    where = f"image {element.get('name')!r}"
    declared = (_size(element, "height", path, where), _size(element, "width", path, where))
    children = sorted((c for c in element if c.tag not in _NOT_REGIONS), key=lambda c: _z_order(c, path, where))
    shapes = [_shape(child, path, f"{where} shape {k}") for k, child in enumerate(children)]
    return painted_case(ref, read_raster(ref.image_path), declared, shapes)


def official_splits(root: Path) -> dict[str, str] | None:
    return None


def _shape(element: ElementTree.Element, path: Path, where: str) -> Shape:
    label = element.get("label")
    if element.tag == "polygon":
        pairs = [pair.split(",") for pair in (element.get("points") or "").split(";") if pair.strip()]
        return make_shape(label, "polygon", [[_number(v, path, where) for v in pair] for pair in pairs], path, where)
    if element.tag == "box":
        corners = [[_number(element.get(f"{axis}{end}"), path, where) for axis in ("x", "y")] for end in ("tl", "br")]
        return make_shape(label, "rectangle", corners, path, where)
    raise DataError(f"{where}: unknown shape type <{element.tag}> (expected <polygon> or <box>)", path)


def _number(text: str | None, path: Path, where: str) -> float:
    try:
        return float(text or "")
    except ValueError:
        raise DataError(f"{where}: coordinate {text!r} is not a number", path) from None


def _size(element: ElementTree.Element, key: str, path: Path, where: str) -> int:
    text = element.get(key) or ""
    if not text.isdigit() or int(text) == 0:
        raise DataError(f"{where}: {key} must be a positive integer, got {text!r}", path)
    return int(text)


def _z_order(element: ElementTree.Element, path: Path, where: str) -> int:
    text = element.get("z_order") or "0"
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{where}: z_order {text!r} is not an integer", path) from None


def _images(path: Path) -> list[ElementTree.Element]:
    stat = path.stat() if path.is_file() else None
    return _cached_images(path, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


@lru_cache(maxsize=2)
def _cached_images(path: Path, mtime_ns: int, size: int) -> list[ElementTree.Element]:
    """The ``<image>`` elements, parsed once per file version rather than once per case."""
    with reading(path, "CVAT annotation file"):
        data = path.read_bytes()
        if b"<!DOCTYPE" in data:
            raise DataError("declares a DOCTYPE, which a CVAT export never does: refused", path)
        root = ElementTree.fromstring(data)
    if root.tag != "annotations":
        raise DataError(f"not a CVAT for images file: the root element is <{root.tag}>, not <annotations>", path)
    return root.findall("image")
