"""CAMUS in its original layout: one folder per patient, NIfTI (2023 release) or MetaImage (2019).

``<root>[/<subfolder>]/patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES}[_gt].{nii.gz,mhd}``, with
``Info_{2CH,4CH}.cfg`` (ED, ES, NbFrame, Sex, Age, ImageQuality, EF, FrameRate, ...) and the
sequence files (``_half_sequence`` in 2023, ``_sequence`` in 2019), which are exposed as meta
paths, not as cases. The official split lists (``subgroup_{training,validation,testing}.txt``)
sit in the root or in ``database_split/`` next to it; the 2019 release has ``training/`` and
``testing/`` folders instead.

Orientation: the files' index order is (i = lateral, j = depth). nibabel returns it as stored,
which shows the apex on the left (that is how camus224 came to be transposed). This reader
returns frames as (j, i) -- rows along depth, apex up, the array SimpleITK gives for these files --
with ``spacing = (row_mm, col_mm)`` from the header, so ``orientation_fix`` is "none".
"""

from __future__ import annotations

import configparser
import re
from itertools import chain
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

name = "camus"
label_names: dict[int, str] = {1: "LV endocardium", 2: "LV myocardium", 3: "left atrium"}
orientation_fix = "none"

LABELS = {0, 1, 2, 3}  # background, LV endocardium (blood pool), LV myocardium, left atrium
VIEWS = ("2CH", "4CH")
PHASES = ("ED", "ES")
SPLIT_FILES = {"subgroup_training.txt": "train", "subgroup_validation.txt": "val", "subgroup_testing.txt": "test"}
_FOLDER_SPLITS = {"training": "train", "testing": "test"}
_SUFFIXES = (*NIFTI_SUFFIXES, ".mhd")
_ANY_SUFFIX = "/".join(_SUFFIXES)
_PATIENT = re.compile(r"patient\d{4}")


def looks_like(root: Path) -> bool:
    frames = chain(root.glob("patient*/patient*_[24]CH_E[DS]*"), root.glob("*/patient*/patient*_[24]CH_E[DS]*"))
    return any(strip_suffix(path.name, _SUFFIXES) is not None for path in frames)


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    refs = [ref for folder in _patient_dirs(root) for ref in _patient_refs(folder)]
    return require_cases(refs, root, name)


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    image, spacing = read_frame(ref.image_path)
    check_image(image, ref.image_path)
    label = None
    if ref.label_path is not None:
        label = check_label(read_frame(ref.label_path)[0], ref.label_path, image.shape, LABELS)
    return case_from_ref(ref, image, label, spacing)


def official_splits(root: Path) -> dict[str, str] | None:
    return read_split_files([root, root / "database_split", root.parent / "database_split"]) or _folder_splits(root)


def read_frame(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """One 2D frame as (depth, lateral) = apex up, with (row_mm, col_mm); singleton axes are dropped."""
    array, spacing, _ = read_volume(path)
    axes = [axis for axis, size in enumerate(array.shape) if size > 1]
    if len(axes) != 2:
        raise DataError(f"expected a single 2D frame, got an array of shape {array.shape}", path)
    frame = array.reshape([array.shape[axis] for axis in axes])
    return frame.T, (spacing[axes[1]], spacing[axes[0]])


def read_split_files(folders: list[Path]) -> dict[str, str] | None:
    """patient_id -> split from the CAMUS subgroup lists in the first folder that has any."""
    for folder in folders:
        files = [(folder / fname, split) for fname, split in SPLIT_FILES.items() if (folder / fname).is_file()]
        if files:
            return _parse_split_files(files)
    return None


def _parse_split_files(files: list[tuple[Path, str]]) -> dict[str, str]:
    splits: dict[str, str] = {}
    for path, split in files:
        with reading(path, "split file"):
            patients = path.read_text(encoding="utf-8").split()
        for patient in patients:
            if splits.setdefault(patient, split) != split:
                raise DataError(f"{patient} is listed in both the {splits[patient]} and {split} lists", path)
    return splits


def _folder_splits(root: Path) -> dict[str, str] | None:
    """The 2019 release's training/ and testing/ folders, when there are no split lists."""
    splits = {d.name: _FOLDER_SPLITS[d.parent.name] for d in _patient_dirs(root) if d.parent.name in _FOLDER_SPLITS}
    return splits or None


def _patient_dirs(root: Path) -> list[Path]:
    """patientNNNN folders directly in ``root`` or one level down (training/, testing/, ...)."""
    if not root.is_dir():
        raise DataError("data folder not found", root)
    children = sorted(p for p in root.iterdir() if p.is_dir())
    parents = [root, *(p for p in children if not _PATIENT.fullmatch(p.name))]
    found: dict[str, Path] = {}
    for parent in parents:
        for folder in sorted(parent.iterdir()):
            if folder.is_dir() and _PATIENT.fullmatch(folder.name):
                if folder.name in found:
                    raise DataError(f"patient folder also found at {found[folder.name]}", folder)
                found[folder.name] = folder
    return list(found.values())


def _patient_refs(folder: Path) -> list[CaseRef]:
    """The ED/ES frames of both views; a patient without any _gt file is unlabelled (2019 test set)."""
    patient = folder.name
    names = {p.name for p in folder.iterdir()}
    frames = {
        (view, phase): (
            _find(folder, names, f"{patient}_{view}_{phase}"),
            _find(folder, names, f"{patient}_{view}_{phase}_gt"),
        )
        for view in VIEWS
        for phase in PHASES
    }
    labelled = any(label is not None for _, label in frames.values())
    metas = {view: _view_meta(folder, names, view) for view in VIEWS}
    refs = []
    for (view, phase), (image, label) in frames.items():
        if image is None and label is not None:
            raise DataError(f"label has no image {patient}_{view}_{phase}{_ANY_SUFFIX}", label)
        if image is not None and label is None and labelled:
            raise DataError(f"image has no label {patient}_{view}_{phase}_gt{_ANY_SUFFIX}", image)
        if image is not None:
            refs.append(CaseRef(f"{patient}_{view}_{phase}", patient, image, label, view, phase, metas[view]))
    if not refs:
        raise DataError(f"patient folder holds no frame such as {patient}_2CH_ED.nii.gz or .mhd", folder)
    return refs


def _view_meta(folder: Path, names: set[str], view: str) -> tuple[tuple[str, Any], ...]:
    """Info_<view>.cfg values plus the sequence files of this view, when present."""
    stem = f"{folder.name}_{view}"
    paths = {
        "sequence_path": _find(folder, names, f"{stem}_half_sequence") or _find(folder, names, f"{stem}_sequence"),
        "sequence_label_path": _find(folder, names, f"{stem}_half_sequence_gt")
        or _find(folder, names, f"{stem}_sequence_gt"),
    }
    info = read_info(folder / f"Info_{view}.cfg") if f"Info_{view}.cfg" in names else {}
    return (*info.items(), *((key, path) for key, path in paths.items() if path is not None))


def read_info(path: Path) -> dict[str, int | float | str]:
    """A CAMUS Info_*.cfg ("Key: value" lines) with numbers parsed to int or float."""
    parser = configparser.ConfigParser(delimiters=(":", "="), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keep key case: ED, NbFrame
    with reading(path, "CAMUS info file"):
        parser.read_string("[info]\n" + path.read_text(encoding="utf-8"))
    return {key: _number_or_text(value) for key, value in parser["info"].items()}


def _number_or_text(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _find(folder: Path, names: set[str], stem: str) -> Path | None:
    return next((folder / (stem + suffix) for suffix in _SUFFIXES if stem + suffix in names), None)
