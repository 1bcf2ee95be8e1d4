"""Generic paired folders: ``images/`` + ``masks/`` (or ``image/`` + ``mask/``) with matching stems.

A mask pairs with the image of the same stem, optionally followed by ``_mask`` or ``_gt``, in any
supported format: 2D images (PNG, JPEG, TIFF, BMP, DICOM, NPY) or 3D volumes (NIfTI, MetaImage,
NRRD, read with their spacing and affine as the MSD layout reads them). One folder holds either
images or volumes: a mix would make one plan serve two kinds of data, and is refused. Masks are either binary 0/255 (255 becomes
class 1) or label maps of class ids 0..31. Anything else -- grey 0/128/255 masks, many grey levels,
fractional values -- is rejected: guessing would silently train on wrong classes.
The patient id is the first group of ``cfg.patient_pattern`` matched against the stem (the whole
match when it has no group, the whole stem when it does not match). A stem naming an apical view
and phase in the CAMUS style (``patient0001_2CH_ED``, ``P12-4ch-es``) sets the case's view and
phase, as the camus_png reader does, so a lab's own echo images get EF downstream.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cardioseg.anatomy import parse_view
from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.base import (
    NIFTI_SUFFIXES,
    RASTER_SUFFIXES,
    case_from_ref,
    check_image,
    check_label,
    preview,
    read_dicom,
    read_npy,
    read_raster,
    read_volume,
    require_cases,
    strip_suffix,
)
from cardioseg.data.sniff import Content, identify_file
from cardioseg.errors import ConfigError, DataError

name = "folders"
label_names: dict[int, str] = {}
orientation_fix = "none"

VOLUME_SUFFIXES = (*NIFTI_SUFFIXES, ".mhd", ".mha", ".nrrd")
SUFFIXES = (*RASTER_SUFFIXES, ".dcm", ".npy", *VOLUME_SUFFIXES)
MAX_CLASS_ID = 31
_FOLDER_PAIRS = (("images", "masks"), ("image", "mask"))
_MASK_TAGS = ("_mask", "_gt")
_LISTED = 10  # file names shown in an error message before "and N more"


def looks_like(root: Path) -> bool:
    return _folders(root) is not None


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    folders = _folders(root)
    if folders is None:
        raise DataError("expected images/ and masks/ (or image/ and mask/) folders", root)
    images, masks = _by_stem(folders[0], ()), _by_stem(folders[1], _MASK_TAGS)
    _require_partners(images, masks, folders)
    _require_one_kind(images, folders[0])
    pattern = compile_pattern(cfg.patient_pattern)
    refs = [CaseRef(stem, patient_id(stem, pattern), path, masks[stem], *parse_view(stem)[1:])
            for stem, path in sorted(images.items())]
    return require_cases(refs, root, name)


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    image, spacing, affine = _read(ref.image_path, label=False)
    check_image(image, ref.image_path)
    label = None
    if ref.label_path is not None:
        label = mask_to_labels(_read(ref.label_path, label=True)[0], ref.label_path, image.shape, set(cfg.labels or ()))
    return case_from_ref(ref, image, label, spacing, affine)


def official_splits(root: Path) -> dict[str, str] | None:
    return None


def patient_id(stem: str, pattern: re.Pattern[str]) -> str:
    match = pattern.search(stem)
    if match is None:
        return stem
    return (match.group(1) if pattern.groups else match.group(0)) or stem


def mask_to_labels(mask: np.ndarray, path: Path, shape: tuple[int, ...], mapped: set[int] | None = None) -> np.ndarray:
    """0/255 -> 0/1 unless ``data.labels`` maps the values as they are (``{255: 1}``); small class ids kept;
    anything else is a DataError naming the mask."""
    values = np.unique(mask)
    mapped = mapped or set()
    if set(values.tolist()) <= {0, *mapped}:
        pass  # the label map speaks of the values in the files
    elif 255 in values and set(values.tolist()) <= {0, 255}:
        mask = mask == 255
    elif values.min() < 0 or values.max() > MAX_CLASS_ID:
        hint = (
            " (JPEG compression alters mask values: save masks as PNG)"
            if path.suffix.lower() in {".jpg", ".jpeg"} or (path.is_file() and identify_file(path) is Content.JPEG)
            else ""
        )
        raise DataError(
            f"mask values {preview(values)} are neither binary 0/255 nor class ids 0..{MAX_CLASS_ID}{hint}", path
        )
    return check_label(mask, path, shape)


def _read(path: Path, *, label: bool) -> tuple[np.ndarray, tuple[float, ...] | None, np.ndarray | None]:
    """Any supported file as an array (2D, or 3D for a volume), its spacing in mm when the format records it
    (DICOM, volumes), and a NIfTI volume's affine."""
    if _is_volume(path):
        array, spacing, affine = read_volume(path)
        if array.ndim != 3:
            raise DataError(f"expected a 3D volume, got shape {array.shape}", path)
        return array, spacing, affine
    suffix = path.suffix.lower()
    if suffix == ".dcm":
        array, plane_spacing, _ = read_dicom(path)
        return array, plane_spacing, None
    if suffix == ".npy":
        return read_npy(path), None, None
    return read_raster(path, label=label), None, None


def _is_volume(path: Path) -> bool:
    return strip_suffix(path.name, VOLUME_SUFFIXES) is not None


def _require_one_kind(images: dict[str, Path], folder: Path) -> None:
    volumes = [p for p in images.values() if _is_volume(p)]
    if volumes and len(volumes) != len(images):
        flat = next(p for p in images.values() if not _is_volume(p))
        raise DataError(f"this folder mixes 3D volumes ({volumes[0].name}, ...) and 2D images ({flat.name}, ...); "
                        "prepare them from separate folders", folder)


def _folders(root: Path) -> tuple[Path, Path] | None:
    for images, masks in _FOLDER_PAIRS:
        if (root / images).is_dir() and (root / masks).is_dir():
            return root / images, root / masks
    return None


def _by_stem(folder: Path, tags: tuple[str, ...]) -> dict[str, Path]:
    """Supported files of ``folder`` by stem, with a mask tag (``_mask``/``_gt``) removed."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem = strip_suffix(path.name, SUFFIXES)
        if stem is None or path.name.startswith(".") or not path.is_file():
            continue
        key = next((stem.removesuffix(tag) for tag in tags if stem.endswith(tag)), stem)
        if key in files:
            raise DataError(f"both {files[key].name} and {path.name} claim the stem {key!r}", path)
        files[key] = path
    return files


def _require_partners(images: dict[str, Path], masks: dict[str, Path], folders: tuple[Path, Path]) -> None:
    """Every image needs a mask and every mask an image; the message lists the lonely files."""
    lonely = [images[s] for s in sorted(images.keys() - masks.keys())]
    lonely += [masks[s] for s in sorted(masks.keys() - images.keys())]
    if not lonely:
        return
    names = ", ".join(f"{p.parent.name}/{p.name}" for p in lonely[:_LISTED])
    more = f" and {len(lonely) - _LISTED} more" if len(lonely) > _LISTED else ""
    where = lonely[0] if len(lonely) == 1 else folders[0].parent
    raise DataError(f"{len(lonely)} file(s) without a partner image or mask: {names}{more}", where)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"data.patient_pattern {pattern!r} is not a valid regular expression: {exc}") from None
