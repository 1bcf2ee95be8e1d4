"""One reader per source layout, all producing the same ``Case``; and which layout a folder has.

``READERS`` is the explicit table of layouts. Its order is the detection order: the layouts with
the most specific landmarks (dataset.json, link.csv, patient folders) come before the generic one.
"""

from __future__ import annotations

from pathlib import Path

from cardioseg.data.readers import camus, camus_png, folders, msd, sunnybrook
from cardioseg.data.readers.base import Reader
from cardioseg.errors import ConfigError, DataError

READERS: dict[str, Reader] = {
    "msd": msd,
    "sunnybrook": sunnybrook,
    "camus": camus,
    "camus_png": camus_png,
    "folders": folders,
}

_LANDMARKS = {
    "msd": "dataset.json or imagesTr/",
    "sunnybrook": "link.csv, dicoms/ and contourfiles/",
    "camus": "patientNNNN/ folders of .nii.gz or .mhd frames",
    "camus_png": "patientNNNN_2CH_ED.png files (in the folder or its subfolders)",
    "folders": "images/ + masks/ (or image/ + mask/)",
}


def detect_layout(root: Path) -> str:
    """The first layout of ``READERS`` whose landmarks ``root`` has."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("data folder not found", root)
    for layout, reader in READERS.items():
        if reader.looks_like(root):
            return layout
    expected = "; ".join(f"{layout}: {landmark}" for layout, landmark in _LANDMARKS.items())
    raise DataError(f"cannot tell the data layout; expected one of -- {expected}", root)


def get_reader(layout: str) -> Reader:
    if layout not in READERS:
        raise ConfigError(f"unknown data layout {layout!r}; known: {', '.join(READERS)}")
    return READERS[layout]


__all__ = ["READERS", "Reader", "detect_layout", "get_reader"]
