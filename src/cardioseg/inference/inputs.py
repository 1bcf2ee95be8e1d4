"""What `cardioseg predict` reads: image, DICOM and volume files, given by name or found in folders.

Named files must be of a supported type (else a DataError naming the file). Folders are
searched recursively; other files there are listed as skipped, hidden files and anything inside
the output folder are left out (earlier outputs are not inputs). Each input gets an output stem:
its name without suffix, under its path relative to the folder it was found in.

Kinds: "raster" and "dicom" (one 2D image), "cine" (a multi-frame DICOM file, or one slice
position of a cine series), "series" (the DICOM files of one folder sharing a SeriesInstanceUID
and placed by ImagePositionPatient: a volume, ``data.readers.dicom_series``), "volume" (NIfTI,
MetaImage, NRRD). A series' stem is its folder's path (plus ``_series-<UID>`` when the folder
holds several); a cine series gives one "cine" per position, ``..._pos01``, ``..._pos02`` from
the first position along the slice normal. ``series`` (``--series``) keeps one series and leaves
the folders' other DICOM files out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cardioseg.data.readers.base import (
    RASTER_CONTENT,
    RASTER_SUFFIXES,
    check_image,
    read_dicom,
    read_dicom_header,
    read_raster,
    strip_suffix,
)
from cardioseg.data.readers.dicom_frames import DicomFrames, read_dicom_frames
from cardioseg.data.readers.dicom_io import dicom_geometry
from cardioseg.data.readers.dicom_series import DicomSeries, choose_series, find_series, position_frames
from cardioseg.data.sniff import Content, identify_file
from cardioseg.errors import DataError
from cardioseg.inference.volumes import VOLUME_SUFFIXES, GridVolume, VolumeFile, frames_volume, series_volume

DICOM_SUFFIXES = (".dcm", ".dicom")


@dataclass(frozen=True)
class InputFile:
    path: Path  # the file, or a series' folder
    kind: str  # "raster", "dicom", "cine", "series" or "volume"
    stem: Path  # output name without suffix, relative to the output folder
    series: DicomSeries | None = field(default=None, compare=False)  # "series", and a cine series' position
    position: int | None = None  # which slice position of a cine series


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


def find_inputs(
    inputs: Sequence[Path], out_dir: Path | None = None, series: str | None = None
) -> tuple[list[InputFile], list[Path]]:
    """(inputs to segment, files of other types skipped in folders), in a stable order.

    ``series`` keeps only the DICOM series of that SeriesInstanceUID (a DataError listing the
    series found when none has it); the folders' other DICOM files are then skipped.
    """
    found: list[InputFile] = []
    skipped: list[Path] = []
    all_series: list[DicomSeries] = []
    for given in map(Path, inputs):
        if given.is_dir():
            found_here, skipped_here, series_here = _scan_folder(given, out_dir)
            found += found_here
            skipped += skipped_here
            all_series += series_here
        elif given.is_file():
            kind = file_kind(given)
            if kind is None:
                raise DataError(
                    "unsupported file type: expected PNG/JPEG/TIFF/BMP images, DICOM, NIfTI (.nii, .nii.gz) "
                    "or MetaImage/NRRD (.mhd, .mha, .nrrd) volumes", given)
            found.append(InputFile(given, _dicom_kind(given) if kind == "dicom" else kind, Path(_stem(given))))
        else:
            raise DataError("input not found", given)
    if series is not None:
        chosen = {s.uid for s in choose_series(all_series, series, Path(inputs[0]))}
        dropped = [item for item in found if item.series is None or item.series.uid not in chosen]
        skipped += list(dict.fromkeys(item.path for item in dropped))
        found = [item for item in found if item not in dropped]
    _check_unique(found)
    return found, skipped


def _dicom_kind(path: Path) -> str:
    """'cine' for a DICOM file of several frames, else 'dicom' (the header is read, the pixels are not).

    An unreadable header is 'dicom': reading it names the problem, where ``--skip-bad`` can list it.
    """
    try:
        return "cine" if dicom_geometry(read_dicom_header(path), path).frames > 1 else "dicom"
    except DataError:
        return "dicom"


def _scan_folder(folder: Path, out_dir: Path | None) -> tuple[list[InputFile], list[Path], list[DicomSeries]]:
    excluded = out_dir.resolve() if out_dir is not None else None
    found: list[InputFile] = []
    skipped: list[Path] = []
    dicoms: dict[Path, list[Path]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if excluded is not None and path.resolve().is_relative_to(excluded):
            continue
        kind = file_kind(path)
        if kind is None:
            skipped.append(path)
        elif kind == "dicom":
            dicoms.setdefault(path.parent, []).append(path)
        else:
            found.append(InputFile(path, kind, path.relative_to(folder).with_name(_stem(path))))
    all_series: list[DicomSeries] = []
    for parent, paths in dicoms.items():
        series, single = find_series(paths)
        all_series += series
        found += [InputFile(p, _dicom_kind(p), p.relative_to(folder).with_name(_stem(p))) for p in single]
        base = parent.relative_to(folder) if parent != folder else Path(folder.resolve().name)
        for one in series:
            stem = Path(f"{base}_series-{one.uid}") if len(series) > 1 else base
            if one.is_cine:
                found += [InputFile(parent, "cine", Path(f"{stem}_pos{p + 1:02d}"), one, p) for p in range(one.positions)]
            else:
                found.append(InputFile(parent, "series", stem, one))
    if not found:
        raise DataError("no image, DICOM or volume files in this folder", folder)
    found.sort(key=lambda item: (str(item.stem), str(item.path)))
    return found, skipped, all_series


def _check_unique(found: list[InputFile]) -> None:
    seen: dict[Path, Path] = {}
    for item in found:
        if item.stem in seen:
            raise DataError(f"{seen[item.stem]} and this file would write the same outputs ({item.stem}_mask...); "
                            "rename one or predict them separately", item.path)
        seen[item.stem] = item.path


def read_image(item: InputFile) -> tuple[np.ndarray, tuple[float, float] | None]:
    """A 2D input as a grey array (colour converted to grey, DICOM rescaled), checked, with its pixel spacing
    in mm (DICOM's ultrasound regions or PixelSpacing; None for raster files, which carry none a scanner vouches for)."""
    if item.kind == "dicom":
        image, spacing, _ = read_dicom(item.path)
        return check_image(image, item.path), spacing
    if item.kind != "raster":
        raise DataError(f"a {item.kind} input is no single 2D image (open it with open_volume or read_frames)",
                        item.path)
    return check_image(read_raster(item.path), item.path), None


def read_frames(item: InputFile) -> DicomFrames:
    """A "cine" input's frames: a multi-frame file's, or the phases at one position of a cine series."""
    if item.kind != "cine":
        raise DataError(f"a {item.kind} input is no cine", item.path)
    if item.series is not None and item.position is not None:
        return position_frames(item.series, item.position)
    return read_dicom_frames(item.path)


def open_volume(item: InputFile) -> VolumeFile | GridVolume:
    """A "volume", "series" or "cine" input as a volume predict can segment plane by plane and write as NIfTI.

    A cine is a stack of its frames along axis 2 (``volumes.frames_volume``) until whole-sequence
    segmentation takes over.
    """
    if item.kind == "volume":
        return VolumeFile(item.path)
    if item.kind == "series" and item.series is not None:
        return series_volume(item.series)
    if item.kind == "cine":
        return frames_volume(read_frames(item))
    raise DataError(f"a {item.kind} input is no volume", item.path)
