"""One reader per source layout, all producing the same ``Case``; and which layout a folder has.

``READERS`` is the explicit table of layouts; ``detect_layout`` says which one a folder has.
"""

from __future__ import annotations

from pathlib import Path

from cardioseg.data.readers import camus, camus_png, coco, cvat, dicom, dicom_png, folders, labelme, msd, sunnybrook
from cardioseg.data.readers.base import Reader
from cardioseg.errors import ConfigError, DataError

READERS: dict[str, Reader] = {
    "msd": msd,
    "sunnybrook": sunnybrook,
    "camus": camus,
    "camus_png": camus_png,
    "folders": folders,
    "labelme": labelme,
    "coco": coco,
    "cvat": cvat,
    "dicom": dicom,
    "dicom_png": dicom_png,
}

_LANDMARKS = {
    "msd": "dataset.json or imagesTr/",
    "sunnybrook": "link.csv, dicoms/ and contourfiles/",
    "camus": "patientNNNN/ folders of .nii.gz or .mhd frames",
    "camus_png": "patientNNNN_2CH_ED.png files (in the folder or its subfolders)",
    "folders": "images/ + masks/ (or image/ + mask/)",
    "labelme": "LabelMe .json files (with 'shapes') beside their images",
    "coco": "annotations/*.json (or a *.json with 'images', 'annotations', 'categories') + images/",
    "cvat": "annotations.xml (CVAT for images 1.1) + its images",
    "dicom": "DICOM files or series folders with <name>_mask.png/.nii.gz beside them, or DICOM SEG files",
    "dicom_png": "<stem>.dcm with <stem>.png beside it or in GT/ (train/, val/, test/ folders)",
}


ANNOTATION_LAYOUTS = ("labelme", "coco", "cvat")


def detect_layout(root: Path) -> str:
    """The layout whose landmarks ``root`` has; an ``images/`` + ``masks/`` pair is always the folders layout.

    When several layouts match, the error names them and ``--layout``; file names alone (a lab's
    ``patient0001_...`` images in ``images/``) never decide it against an explicit folder pair.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("data folder not found", root)
    matches = [layout for layout, reader in READERS.items() if reader.looks_like(root)]
    if "folders" in matches:
        return "folders"
    annotated = [m for m in matches if m in ANNOTATION_LAYOUTS]
    if len(annotated) == 1 and set(matches) <= {annotated[0], "camus_png"}:
        return annotated[0]  # an annotation file decides it against CAMUS-style file names, as a folder pair does
    if len(matches) == 1:
        return matches[0]
    if matches:
        candidates = "; ".join(f"{layout} ({_LANDMARKS[layout]})" for layout in matches)
        raise DataError(f"this folder looks like several layouts: {candidates}; choose one with --layout "
                        "(or data.layout)", root)
    expected = "; ".join(f"{layout}: {landmark}" for layout, landmark in _LANDMARKS.items())
    raise DataError(f"cannot tell the data layout; expected one of -- {expected}", root)


def get_reader(layout: str) -> Reader:
    if layout not in READERS:
        raise ConfigError(f"unknown data layout {layout!r}; known: {', '.join(READERS)}")
    return READERS[layout]


__all__ = ["READERS", "Reader", "detect_layout", "get_reader"]
