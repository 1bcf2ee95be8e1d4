"""What `cardioseg predict` reads: image, DICOM and volume files, given by name or found in folders.

Named files must be of a supported type (else a DataError naming the file). Folders are
searched recursively; other files there are listed as skipped, hidden files and anything inside
the output folder are left out (earlier outputs are not inputs). Each input gets an output stem:
its name without suffix, under its path relative to the folder it was found in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardioseg.data.readers.base import (
    RASTER_CONTENT,
    RASTER_SUFFIXES,
    check_image,
    read_dicom,
    read_raster,
    strip_suffix,
)
from cardioseg.data.sniff import Content, identify_file
from cardioseg.errors import DataError
from cardioseg.inference.volumes import VOLUME_SUFFIXES

DICOM_SUFFIXES = (".dcm", ".dicom")


@dataclass(frozen=True)
class InputFile:
    path: Path
    kind: str  # "raster", "dicom" or "volume"
    stem: Path  # output name without suffix, relative to the output folder


def file_kind(path: Path) -> str | None:
    """'raster', 'dicom' or 'volume' by suffix (by content when there is none, as ``data.sniff`` judges it), else None."""
    name = path.name.lower()
    if name.endswith(RASTER_SUFFIXES):
        return "raster"
    if name.endswith(VOLUME_SUFFIXES):
        return "volume"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    if "." not in name:  # DICOM files often have no suffix (nor do some exported images): judge the bytes
        try:
            content = identify_file(path)
        except OSError:
            return None
        dicom = content in (Content.DICOM, Content.DICOM_NO_PREAMBLE)
        return "dicom" if dicom else "raster" if content in RASTER_CONTENT else None
    return None


def _stem(path: Path) -> str:
    return strip_suffix(path.name, (*RASTER_SUFFIXES, *VOLUME_SUFFIXES, *DICOM_SUFFIXES)) or path.name


def find_inputs(inputs: Sequence[Path], out_dir: Path | None = None) -> tuple[list[InputFile], list[Path]]:
    """(files to segment, files of other types skipped in folders), in a stable order."""
    found: list[InputFile] = []
    skipped: list[Path] = []
    for given in map(Path, inputs):
        if given.is_dir():
            found_here, skipped_here = _scan_folder(given, out_dir)
            found += found_here
            skipped += skipped_here
        elif given.is_file():
            kind = file_kind(given)
            if kind is None:
                raise DataError(
                    "unsupported file type: expected PNG/JPEG/TIFF/BMP images, DICOM, NIfTI (.nii, .nii.gz) "
                    "or MetaImage/NRRD (.mhd, .mha, .nrrd) volumes", given)
            found.append(InputFile(given, kind, Path(_stem(given))))
        else:
            raise DataError("input not found", given)
    _check_unique(found)
    return found, skipped


def _scan_folder(folder: Path, out_dir: Path | None) -> tuple[list[InputFile], list[Path]]:
    excluded = out_dir.resolve() if out_dir is not None else None
    found: list[InputFile] = []
    skipped: list[Path] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if excluded is not None and path.resolve().is_relative_to(excluded):
            continue
        kind = file_kind(path)
        if kind is None:
            skipped.append(path)
        else:
            found.append(InputFile(path, kind, path.relative_to(folder).with_name(_stem(path))))
    if not found:
        raise DataError("no image, DICOM or volume files in this folder", folder)
    return found, skipped


def _check_unique(found: list[InputFile]) -> None:
    seen: dict[Path, Path] = {}
    for item in found:
        if item.stem in seen:
            raise DataError(f"{seen[item.stem]} and this file would write the same outputs ({item.stem}_mask...); "
                            "rename one or predict them separately", item.path)
        seen[item.stem] = item.path


def read_image(item: InputFile) -> tuple[np.ndarray, tuple[float, float] | None]:
    """A 2D input as a grey array (RGB converted to grey, DICOM rescaled), checked, with its pixel spacing
    in mm (DICOM PixelSpacing; None for raster files, which carry none a scanner vouches for)."""
    if item.kind == "dicom":
        image, spacing, _ = read_dicom(item.path)
        return check_image(image, item.path), spacing
    return check_image(read_raster(item.path), item.path), None
