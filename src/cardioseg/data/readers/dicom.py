"""The ``dicom`` layout: DICOM images as a hospital exports them, with label files beside them or DICOM SEG.

In the data folder (its top level only):
- a sub-folder holding one DICOM series (``dicom_series``; one phase, not a cine) is a 3D case,
  read as (column, row, slice) with the series' spacing and RAS affine;
- a single-frame DICOM file is a 2D case, in grey (``dicom_pixels``), with its pixel size;
- a multi-frame file (a cine) gives one 2D case per labelled frame.
Labels: ``<name>_mask`` or ``<name>_gt`` (.png/.tif/.bmp for 2D, .nii/.nii.gz for a series, in its
(column, row, slice) order) beside the file or folder ``<name>``; for a frame of a cine,
``<name>_frame<N>_mask.png`` with N counted from 1 as DICOM counts frames. Or a DICOM SEG file
(Modality SEG, read with highdicom) at the top level that references the series' or the file's
SOP instances: segment numbers are the class ids and the segment labels their names.
Masks follow the folders layout's rules (0/255 or class ids). Every image needs a label; a series
folder, a 2D file and a cine may not be mixed with volumes (one plan serves one kind of data).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.base import (
    NIFTI_SUFFIXES,
    case_from_ref,
    check_image,
    read_dicom,
    read_dicom_header,
    read_raster,
    read_volume,
    reading,
    require_cases,
    strip_suffix,
)
from cardioseg.data.readers.dicom_frames import read_dicom_frames
from cardioseg.data.readers.dicom_io import dicom_geometry
from cardioseg.data.readers.dicom_series import DicomSeries, find_series
from cardioseg.data.readers.dicom_series import read_volume as read_series
from cardioseg.data.readers.folders import compile_pattern, mask_to_labels, patient_id
from cardioseg.data.sniff import Content, identify_file
from cardioseg.errors import DataError

name = "dicom"
label_names: dict[int, str] = {}
orientation_fix = "none"

MASK_SUFFIXES = (*NIFTI_SUFFIXES, ".png", ".tif", ".tiff", ".bmp")
_MASK_TAGS = ("_mask", "_gt")
_FRAME = re.compile(r"^(?P<stem>.+)_frame(?P<number>\d+)$")
_PEEK = 64
"""Top-level DICOM files whose header ``looks_like`` reads in search of a SEG."""


def looks_like(root: Path) -> bool:
    """A DICOM file or series folder with a ``_mask``/``_gt`` partner, or a DICOM SEG, at the top level."""
    if not root.is_dir():
        return False
    try:
        entries = {p.name: p for p in root.iterdir() if not p.name.startswith(".")}
        for stem in _masks(root):
            frame = _FRAME.match(stem)
            image = frame.group("stem") if frame else stem
            for candidate in (entries.get(f"{image}.dcm"), entries.get(image)):
                if candidate is None:
                    continue
                inside = sorted(candidate.iterdir())[:_PEEK] if candidate.is_dir() else [candidate]
                if any(p.is_file() and _is_dicom(p) for p in inside):
                    return True
        named = [p for p in entries.values() if p.is_file() and p.suffix.lower() in (".dcm", ".dicom", "")]
        return any(_is_dicom(p) and _is_seg(p) for p in sorted(named)[:_PEEK])
    except DataError:
        return False  # a broken file decides no layout; discover names it


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    if not root.is_dir():
        raise DataError("data folder not found", root)
    masks = _masks(root)
    files = _dicom_files(root)
    segs = [p for p in files if _is_seg(p)]
    references = {uid: seg for seg in segs for uid in _referenced_instances(seg)}
    pattern = compile_pattern(cfg.patient_pattern)
    refs: list[CaseRef] = []
    lonely: list[Path] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        series = _one_series(folder)
        if series is None:
            continue
        label, source = _label_for(folder.name, masks, references, _instance_uids(series))
        if label is None:
            lonely.append(folder)
            continue
        refs.append(CaseRef(folder.name, patient_id(folder.name, pattern), folder, label,
                            meta=(("label_source", source),)))
    for path in (p for p in files if p not in segs):
        stem = strip_suffix(path.name, (".dcm", ".dicom")) or path.name
        frames = dicom_geometry(read_dicom_header(path), path).frames
        if frames > 1:
            numbered = sorted((int(_FRAME.match(s).group("number")), s) for s in masks  # type: ignore[union-attr]
                              if _FRAME.match(s) and _FRAME.match(s).group("stem") == stem)  # type: ignore[union-attr]
            if not numbered:
                lonely.append(path)
            for number, case_stem in numbered:
                if not 1 <= number <= frames:
                    raise DataError(f"labels frame {number}, but {path.name} has frames 1..{frames}", masks[case_stem])
                refs.append(CaseRef(case_stem, patient_id(stem, pattern), path, masks[case_stem],
                                    meta=(("frame", number - 1), ("label_source", "file"))))
            continue
        label, source = _label_for(stem, masks, references, [str(read_dicom_header(path).get("SOPInstanceUID", ""))])
        if label is None:
            lonely.append(path)
            continue
        refs.append(CaseRef(stem, patient_id(stem, pattern), path, label, meta=(("label_source", source),)))
    if lonely:
        names = ", ".join(p.name for p in lonely[:10]) + (f" and {len(lonely) - 10} more" if len(lonely) > 10 else "")
        raise DataError(f"{len(lonely)} DICOM image(s) or series without a label (<name>_mask.png/.nii.gz, "
                        f"<name>_frame<N>_mask.png, or a DICOM SEG referencing them): {names}", root)
    kinds = {ref.image_path.is_dir() for ref in refs}
    if len(kinds) > 1:
        raise DataError("this folder mixes DICOM series (3D) and DICOM images (2D); prepare them from separate "
                        "folders", root)
    return require_cases(refs, root, name)


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    meta = dict(ref.meta)
    affine = None
    if ref.image_path.is_dir():
        series = _one_series(ref.image_path)
        if series is None:
            raise DataError("no DICOM series in this folder any more", ref.image_path)
        image = read_series(series)
        spacing: tuple[float, ...] | None = series.spacing
        affine = series.affine
    elif "frame" in meta:
        frames = read_dicom_frames(ref.image_path)
        image, spacing = frames.frames[int(meta["frame"])], frames.spacing
    else:
        image, spacing, _ = read_dicom(ref.image_path)
    check_image(image, ref.image_path)
    extra: dict[str, Any] = {}
    assert ref.label_path is not None  # discover pairs every case
    if meta.get("label_source") == "seg":
        raw, names = _seg_labels(ref.label_path, ref, image.shape)
        extra["label_names"] = tuple(sorted(names.items()))
    elif strip_suffix(ref.label_path.name, NIFTI_SUFFIXES) is not None:
        raw = read_volume(ref.label_path)[0]
    else:
        raw = read_raster(ref.label_path, label=True)
    label = mask_to_labels(raw, ref.label_path, image.shape, set(cfg.labels or ()))
    return case_from_ref(ref, image, label, spacing, affine, **extra)


def official_splits(root: Path) -> dict[str, str] | None:
    return None


def _masks(root: Path) -> dict[str, Path]:
    """Top-level label files by the stem of the image they label (tag removed)."""
    found: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        stem = strip_suffix(path.name, MASK_SUFFIXES)
        if stem is None or path.name.startswith(".") or not path.is_file():
            continue
        for tag in _MASK_TAGS:
            if stem.endswith(tag):
                key = stem.removesuffix(tag)
                if key in found:
                    raise DataError(f"both {found[key].name} and {path.name} label {key!r}", path)
                found[key] = path
    return found


def _is_dicom(path: Path) -> bool:
    try:
        return identify_file(path) in (Content.DICOM, Content.DICOM_NO_PREAMBLE)
    except OSError:
        return False


def _dicom_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")
            and strip_suffix(p.name, MASK_SUFFIXES) is None and _is_dicom(p)]


def _is_seg(path: Path) -> bool:
    return str(read_dicom_header(path).get("Modality", "")) == "SEG"


def _one_series(folder: Path) -> DicomSeries | None:
    """The one single-phase series of ``folder``, None when it holds no DICOM series; DataError otherwise."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".") and _is_dicom(p)]
    if not files:
        return None
    series, _ = find_series(files)
    if len(series) != 1:
        found = "; ".join(s.describe() for s in series) or "none, only single images"
        raise DataError(f"a case folder must hold exactly one DICOM series; found: {found}", folder)
    if series[0].is_cine:
        raise DataError(f"a cine series ({series[0].describe()}): the dicom layout takes one phase per folder", folder)
    return series[0]


def _instance_uids(series: DicomSeries) -> list[str]:
    return [str(read_dicom_header(files[0]).SOPInstanceUID) for files in series.files]


def _referenced_instances(seg: Path) -> list[str]:
    header = read_dicom_header(seg)
    uids = [str(item.ReferencedSOPInstanceUID) for series in header.get("ReferencedSeriesSequence", [])
            for item in series.get("ReferencedInstanceSequence", [])]
    if not uids:
        raise DataError("DICOM SEG without ReferencedSeriesSequence/ReferencedInstanceSequence: which images does it "
                        "label?", seg)
    return uids


def _label_for(stem: str, masks: dict[str, Path], references: dict[str, Path],
               instances: list[str]) -> tuple[Path | None, str]:
    """The label file of an image (its mask beside it first, else the SEG referencing its instances)."""
    if stem in masks:
        return masks[stem], "file"
    segs = {references[uid] for uid in instances if uid in references}
    if len(segs) > 1:
        raise DataError(f"several DICOM SEG files reference {stem}: {', '.join(sorted(p.name for p in segs))}",
                        sorted(segs)[0])
    return (segs.pop(), "seg") if segs else (None, "")


def _seg_labels(path: Path, ref: CaseRef, shape: tuple[int, ...]) -> tuple[np.ndarray, dict[int, str]]:
    """A DICOM SEG's segments as one label map on the image's grid (segment number = class id)."""
    import highdicom as hd

    if ref.image_path.is_dir():
        series = _one_series(ref.image_path)
        instances = _instance_uids(series) if series is not None else []
    else:
        instances = [str(read_dicom_header(ref.image_path).SOPInstanceUID)]
    with reading(path, "DICOM SEG"):
        seg = hd.seg.segread(path)
        planes = seg.get_pixels_by_source_instance(instances, combine_segments=True, assert_missing_frames_are_empty=True,
                                                   dtype=np.uint8)
        names = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    labels = planes.transpose(2, 1, 0) if ref.image_path.is_dir() else planes[0]
    if labels.shape != shape:
        raise DataError(f"the SEG's label map of shape {labels.shape} does not match the image's {shape}", path)
    return labels, names
