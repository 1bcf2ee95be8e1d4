"""What the polygon-annotation layouts (LabelMe, COCO, CVAT) share: class ids, case identity, image files.

Label names become class ids once per dataset, at discovery, so every case of a dataset paints
the same name with the same id: ids follow ``data.class_names`` when given (a name not in that
list is an error naming the file), else the sorted names found (1..K). The names travel in each
case's ``meta['label_names']``, from which prepare names the classes and gives them their roles.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cardioseg.anatomy import parse_view
from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.base import case_from_ref, check_image, check_label
from cardioseg.data.readers.folders import compile_pattern, patient_id
from cardioseg.data.readers.polygons import Shape, rasterise
from cardioseg.errors import DataError

MAX_CLASSES = 255


def class_ids(names_by_file: dict[Path, set[str]], cfg: DataConfig, root: Path) -> dict[str, int]:
    """Label name -> class id for the whole dataset (see the module docstring)."""
    if cfg.class_names:
        ids = {name: n + 1 for n, name in enumerate(cfg.class_names)}
        for path, names in names_by_file.items():
            unknown = sorted(names - ids.keys())
            if unknown:
                raise DataError(f"label(s) {', '.join(map(repr, unknown))} not in data.class_names "
                                f"{cfg.class_names}", path)
        return ids
    found = sorted(set().union(*names_by_file.values()))
    if len(found) > MAX_CLASSES:
        raise DataError(f"{len(found)} label names, more than the {MAX_CLASSES} classes a label map holds", root)
    return {name: n + 1 for n, name in enumerate(found)}


def case_ref(stem: str, image: Path, annotation: Path, cfg: DataConfig, ids: dict[str, int],
             *extra: tuple[str, Any]) -> CaseRef:
    """A case named by its image's stem: patient from ``data.patient_pattern``, view/phase from the name."""
    _, view, phase = parse_view(stem)
    meta = (("label_names", tuple((i, n) for n, i in sorted(ids.items(), key=lambda item: item[1]))), *extra)
    return CaseRef(stem, patient_id(stem, compile_pattern(cfg.patient_pattern)), image, annotation, view, phase, meta)


def require_unique(refs: list[CaseRef]) -> list[CaseRef]:
    """Two images of one stem (in different folders) would be one case id twice."""
    seen: dict[str, Path] = {}
    for ref in refs:
        if ref.case_id in seen:
            raise DataError(f"case {ref.case_id!r} is also {seen[ref.case_id]}", ref.image_path)
        seen[ref.case_id] = ref.image_path
    return refs


def find_image(name: str, folders: list[Path], root: Path, annotation: Path) -> Path | None:
    """The file ``name`` (an annotation's relative image path) in the first of ``folders`` holding it.

    Windows separators are accepted; an absolute name, or one that leads out of the data folder,
    is refused: an annotation file must not make cardioseg read files elsewhere.
    """
    relative = PurePosixPath(name.replace("\\", "/"))
    if not name or relative.is_absolute():
        raise DataError(f"image path {name!r} must be relative to the annotation's folder", annotation)
    top = root.resolve()
    for folder in folders:
        candidate = (folder / relative).resolve()
        if not candidate.is_relative_to(top):
            raise DataError(f"image path {name!r} leads outside the data folder {root}", annotation)
        if candidate.is_file():
            return candidate
    return None


def int_field(entry: dict[str, Any], key: str, path: Path, where: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise DataError(f"{where}: {key} must be a positive integer, got {value!r}", path)
    return value


def painted_case(ref: CaseRef, image: np.ndarray, declared: tuple[int, ...] | None, shapes: list[Shape]) -> Case:
    """The case of an image and its shapes; the size the annotation file declares must be the image's."""
    annotation = ref.label_path
    assert annotation is not None  # these layouts always pair an image with its annotation file
    check_image(image, ref.image_path)
    if declared is not None and declared != image.shape:
        raise DataError(f"annotation declares an image of {declared[0]}x{declared[1]} (height x width) but "
                        f"{ref.image_path.name} is {image.shape[0]}x{image.shape[1]}", annotation)
    ids = {name: class_id for class_id, name in dict(ref.meta)["label_names"]}
    unknown = sorted({s.label for s in shapes} - ids.keys())
    if unknown:
        raise DataError(f"label(s) {', '.join(map(repr, unknown))} were not there when the dataset was listed", annotation)
    label = rasterise(shapes, (image.shape[0], image.shape[1]), ids, annotation)
    return case_from_ref(ref, image, check_label(label, annotation, image.shape), spacing=None)
