"""What `cardioseg predict` writes for one input: label map, and on request visible mask, overlay, probabilities.

2D inputs: ``<stem>_mask.png`` (labels 0..K), ``<stem>_visible.png`` (labels spread over 0..255),
``<stem>_overlay.png``, ``<stem>_prob.npy`` (float32; the foreground probability (H, W) of a
one-channel model, else (C, H, W)). Volumes: ``<stem>_mask.nii.gz`` and ``<stem>_prob.nii.gz``
on the input's grid (classes on the last axis), ``<stem>_overlay.png`` of the plane with the
most foreground. A volume's labels are held in memory (one byte a voxel, needed for 3D
post-processing); its probabilities go to a scratch file on disk plane by plane.

``predict.format`` picks the label map's file instead: ``png`` (2D inputs), ``nifti`` (volumes,
and 2D inputs as a one-plane NIfTI with the pixel spacing), ``dicom-seg`` (``<stem>_seg.dcm``)
or ``rtstruct`` (``<stem>_rtstruct.dcm``), which reference the DICOM images segmented
(``dicom_out``, ``dicom_out_rtstruct``) and so need DICOM inputs: a 2D file, a multi-frame cine,
or a series. ``check_output_format`` refuses a format an input cannot have before anything runs.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom

from cardioseg.artifacts import PredictionFiles
from cardioseg.clinical.qc import assess_for_plan
from cardioseg.clinical.volumes import mask_volume
from cardioseg.config import PredictConfig
from cardioseg.data.readers.base import read_dicom_header
from cardioseg.errors import DataError
from cardioseg.fileio import atomic_path, write_png, write_with
from cardioseg.inference.dicom_out import DICOM_FORMATS, OutputSeries, Structure, structures, write_dicom_seg
from cardioseg.inference.dicom_out_rtstruct import write_rtstruct
from cardioseg.inference.inputs import InputFile
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.volumes import VolumeFile
from cardioseg.postprocess import finish_labels, probabilities_to_labels, to_labels
from cardioseg.viz.overlays import overlay


def visible(labels: np.ndarray, classes: int) -> np.ndarray:
    """Labels 0..K spread over 0..255 so a mask can be seen in an image viewer (binary: 0/255)."""
    highest = max(1, classes - 1)  # K: one channel is binary (K = 1), else K + 1 channels
    return (labels * (255 // highest)).astype(np.uint8)


DICOM_KINDS = ("dicom", "cine", "series")
"""Input kinds whose source headers a DICOM SEG or RTSTRUCT can reference."""
def mask_format(fmt: str, item: InputFile) -> str:
    """The label map format of one input: ``fmt``, with auto meaning png for 2D inputs and nifti for volumes."""
    two_d = item.kind in ("raster", "dicom")
    if fmt == "auto":
        return "png" if two_d else "nifti"
    if fmt in DICOM_FORMATS and item.kind not in DICOM_KINDS:
        raise DataError(f"--format {fmt} writes DICOM objects that reference their source images; this input is "
                        f"a {item.kind} file, not DICOM (use png or nifti)", item.path)
    if fmt == "png" and not two_d:
        raise DataError(f"--format png writes 2D masks; this input is a {item.kind} (use nifti or a DICOM format)",
                        item.path)
    return fmt


def check_output_format(found: Sequence[InputFile], fmt: str) -> None:
    """Refuse, before any input is segmented, a format one of the inputs cannot have."""
    for item in found:
        mask_format(fmt, item)


def dicom_sources(item: InputFile, labels: np.ndarray) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """The headers of the DICOM images behind ``labels`` and the labels as (frames, rows, columns), frame k on image k.

    ``labels`` are as predict holds them: (rows, columns) for a 2D file; for a series the volume
    (column, row, slice) of ``dicom_series``; for a cine the stack (rows, columns, frame) of
    ``volumes.frames_volume``.
    """
    if item.kind == "dicom":
        return [read_dicom_header(item.path)], labels[None]
    if item.kind == "series" and item.series is not None:
        return [read_dicom_header(files[0]) for files in item.series.files], np.transpose(labels, (2, 1, 0))
    if item.kind == "cine":
        paths = item.series.files[item.position] if item.series is not None and item.position is not None else (item.path,)
        return [read_dicom_header(p) for p in paths], np.moveaxis(labels, -1, 0)
    raise DataError(f"a {item.kind} input has no DICOM images to reference", item.path)


def write_dicom_labels(fmt: str, target: Path, item: InputFile, labels: np.ndarray, classes: Sequence[Structure],
                       series: OutputSeries) -> Path:
    """A DICOM SEG or RTSTRUCT of ``labels`` (see ``dicom_sources``) referencing ``item``'s images."""
    sources, frames = dicom_sources(item, labels)
    writer = write_dicom_seg if fmt == "dicom-seg" else write_rtstruct
    return writer(target, sources, np.ascontiguousarray(frames, np.uint8), classes, item.path, series)


def write_nifti_2d(target: Path, labels: np.ndarray, spacing: tuple[float, float] | None) -> Path:
    """A 2D label map as a one-plane NIfTI (i, j) = (row, column), its voxel size the pixel spacing (1 mm when unknown)."""
    row_mm, col_mm = spacing or (1.0, 1.0)
    image = nib.Nifti1Image(labels[..., None], np.diag([row_mm, col_mm, 1.0, 1.0]))
    with atomic_path(target) as tmp:
        tmp.write_bytes(gzip.compress(image.to_bytes(), mtime=0))
    return target




def write_npy(target: Path, array: np.ndarray) -> Path:
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array)

    return write_with(target, writer)


class OutputWriter:
    """Writes the outputs of one run and keeps the table of what it wrote."""

    def __init__(self, out_dir: Path, cfg: PredictConfig, segmenter: Segmenter, visible_masks: bool) -> None:
        self.out_dir, self.cfg, self.segmenter, self.visible_masks = out_dir, cfg, segmenter, visible_masks
        self.files = PredictionFiles(out_dir)
        self.rows: list[dict[str, Any]] = []
        plan = segmenter.plan
        specs = (plan.foreground[0],) if plan.binary else plan.foreground
        values = [1] if plan.binary else [spec.id for spec in specs]  # a one-channel model's labels are 0/1
        self.structures = structures({v: s.name for v, s in zip(values, specs)},
                                     {v: s.role for v, s in zip(values, specs)})
        self.dicom_series = {fmt: OutputSeries() for fmt in DICOM_FORMATS}

    def _label_file(self, item: InputFile, labels: np.ndarray, spacing: tuple[float, float] | None = None,
                    volume: VolumeFile | None = None) -> Path:
        """Write the label map in the run's format: of a 2D input (with its pixel spacing) or of ``volume``."""
        fmt, stem = mask_format(self.cfg.format, item), item.stem
        if fmt in DICOM_FORMATS:
            return write_dicom_labels(fmt, self.files.dicom_mask(stem, fmt), item, labels,
                                      self.structures, self.dicom_series[fmt])
        if volume is not None:
            return volume.write_like(self.files.mask(stem, volume=True), labels)
        if fmt == "nifti":
            return write_nifti_2d(self.files.mask(stem, volume=True), labels, spacing)
        return write_png(self.files.mask(stem), labels)

    def _measures(self, labels: np.ndarray, spacing: tuple[float, ...] | None) -> dict[str, Any]:
        """Per class: pixels, and area in mm² (2D) or volume in mL (3D) when the input's spacing is known."""
        plan = self.segmenter.plan
        names = {1: plan.foreground[0].name} if plan.binary else plan.class_names
        row: dict[str, Any] = {}
        slugs: set[str] = set()
        for class_id, name in names.items():
            slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_") or f"class{class_id}"
            slug = slug if slug not in slugs else f"{slug}_{class_id}"  # two names that read alike keep two columns
            slugs.add(slug)
            count = int(np.count_nonzero(labels == class_id))
            row[f"{slug}_pixels"] = count
            if spacing is not None and labels.ndim == 2:
                row[f"{slug}_area_mm2"] = round(count * float(np.prod(spacing)), 2)
            elif spacing is not None:
                row[f"{slug}_volume_ml"] = round(mask_volume(labels == class_id, spacing).ml or 0.0, 3)
        return row

    def image(self, item: InputFile, image: np.ndarray, prob: np.ndarray, spacing: tuple[float, float] | None,
              uncertainty: float | None = None) -> None:
        seg = self.segmenter
        labels = probabilities_to_labels(prob, self.cfg.postprocess, seg.slice_axis)
        files, stem = self.files, item.stem
        row = {"source": str(item.path), "kind": item.kind, "mask": str(self._label_file(item, labels, spacing))}
        if self.visible_masks:
            row["visible"] = str(write_png(files.visible(stem), visible(labels, seg.classes)))
        if self.cfg.overlays:
            row["overlay"] = str(write_png(files.overlay(stem), overlay(image, labels, None)))
        if self.cfg.probabilities:
            row["probabilities"] = str(write_npy(files.probabilities(stem), prob[0] if seg.binary else prob))
        self.rows.append({**row, "shape": "x".join(map(str, labels.shape)), "spacing_mm": _spacing_text(spacing),
                          "foreground_pixels": int(np.count_nonzero(labels)), **self._measures(labels, spacing),
                          **assess_for_plan(labels, seg.plan, spacing, uncertainty, item.path.name).as_row()})

    def volume(self, item: InputFile, volume: VolumeFile, memory_budget: int) -> int:
        """Segment and write one volume; returns the number of planes."""
        seg, axis = self.segmenter, self.segmenter.slice_axis
        files, stem = self.files, item.stem
        labels = np.zeros(volume.shape, np.uint8)
        prob_shape = volume.shape if seg.binary else (*volume.shape, seg.classes)
        scratch = files.probability_scratch(stem)
        store = _prob_store(scratch, prob_shape) if self.cfg.probabilities else None
        agreement = seg.new_agreement()
        try:
            for k, prob in seg.volume(volume, memory_budget, self.cfg.batch_size, agreement,
                                      self.cfg.postprocess.threshold):
                where = tuple(k if a == axis else slice(None) for a in range(3))
                labels[where] = to_labels(prob, self.cfg.postprocess.threshold)
                if store is not None:
                    store[where] = prob[0] if seg.binary else np.moveaxis(prob, 0, -1)
            labels = finish_labels(labels, seg.binary, self.cfg.postprocess, axis)
            row = {"source": str(item.path), "kind": item.kind,
                   "mask": str(self._label_file(item, labels, volume=volume))}
            if store is not None:
                store.flush()
                row["probabilities"] = str(volume.write_like(files.probabilities(stem, volume=True), np.asarray(store)))
        finally:
            del store
            scratch.unlink(missing_ok=True)
        if self.cfg.overlays:
            best = int(np.argmax(np.count_nonzero(np.moveaxis(labels, axis, 0).reshape(labels.shape[axis], -1), axis=1)))
            picture = overlay(volume.plane(axis, best), np.moveaxis(labels, axis, 0)[best], None)
            row["overlay"] = str(write_png(files.overlay(stem), picture))
        spacing = volume.spacing
        uncertainty = agreement.uncertainty if agreement is not None else None
        self.rows.append({**row, "shape": "x".join(map(str, labels.shape)), "spacing_mm": _spacing_text(spacing),
                          "foreground_pixels": int(np.count_nonzero(labels)), **self._measures(labels, spacing),
                          **assess_for_plan(labels, seg.plan, spacing, uncertainty, item.path.name).as_row()})
        return labels.shape[axis]


def _spacing_text(spacing: tuple[float, ...] | None) -> str:
    return "x".join(f"{s:g}" for s in spacing) if spacing is not None else "unknown"


def _prob_store(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A float32 array on disk for a volume's probabilities, filled plane by plane."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
