"""What `cardioseg predict` writes for one input: label map, and on request visible mask, overlay, probabilities.

2D inputs: ``<stem>_mask.png`` (labels 0..K), ``<stem>_visible.png`` (labels spread over 0..255),
``<stem>_overlay.png``, ``<stem>_prob.npy`` (float32; the foreground probability (H, W) of a
one-channel model, else (C, H, W)). Volumes: ``<stem>_mask.nii.gz`` and ``<stem>_prob.nii.gz``
on the input's grid (classes on the last axis), ``<stem>_overlay.png`` of the plane with the
most foreground. A volume's labels are held in memory (one byte a voxel, needed for 3D
post-processing); its probabilities go to a scratch file on disk plane by plane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cardioseg.artifacts import PredictionFiles
from cardioseg.clinical.volumes import mask_volume
from cardioseg.config import PredictConfig
from cardioseg.fileio import write_with
from cardioseg.inference.inputs import InputFile
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.volumes import VolumeFile
from cardioseg.postprocess import finish_labels, probabilities_to_labels, to_labels
from cardioseg.viz.overlays import overlay


def visible(labels: np.ndarray, classes: int) -> np.ndarray:
    """Labels 0..K spread over 0..255 so a mask can be seen in an image viewer (binary: 0/255)."""
    highest = max(1, classes - 1)  # K: one channel is binary (K = 1), else K + 1 channels
    return (labels * (255 // highest)).astype(np.uint8)


def write_png(target: Path, array: np.ndarray) -> Path:
    return write_with(target, lambda tmp: Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG"))


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

    def image(self, item: InputFile, image: np.ndarray, prob: np.ndarray, spacing: tuple[float, float] | None) -> None:
        seg = self.segmenter
        labels = probabilities_to_labels(prob, self.cfg.postprocess, seg.slice_axis)
        files, stem = self.files, item.stem
        row = {"source": str(item.path), "kind": item.kind, "mask": str(write_png(files.mask(stem), labels))}
        if self.visible_masks:
            row["visible"] = str(write_png(files.visible(stem), visible(labels, seg.classes)))
        if self.cfg.overlays:
            row["overlay"] = str(write_png(files.overlay(stem), overlay(image, labels, None)))
        if self.cfg.probabilities:
            row["probabilities"] = str(write_npy(files.probabilities(stem), prob[0] if seg.binary else prob))
        self.rows.append({**row, "shape": "x".join(map(str, labels.shape)), "spacing_mm": _spacing_text(spacing),
                          "foreground_pixels": int(np.count_nonzero(labels)), **self._measures(labels, spacing)})

    def volume(self, item: InputFile, volume: VolumeFile, memory_budget: int) -> int:
        """Segment and write one volume; returns the number of planes."""
        seg, axis = self.segmenter, self.segmenter.slice_axis
        files, stem = self.files, item.stem
        labels = np.zeros(volume.shape, np.uint8)
        prob_shape = volume.shape if seg.binary else (*volume.shape, seg.classes)
        scratch = files.probability_scratch(stem)
        store = _prob_store(scratch, prob_shape) if self.cfg.probabilities else None
        try:
            for k, prob in seg.volume(volume, memory_budget, self.cfg.batch_size):
                where = tuple(k if a == axis else slice(None) for a in range(3))
                labels[where] = to_labels(prob, self.cfg.postprocess.threshold)
                if store is not None:
                    store[where] = prob[0] if seg.binary else np.moveaxis(prob, 0, -1)
            labels = finish_labels(labels, seg.binary, self.cfg.postprocess, axis)
            row = {"source": str(item.path), "kind": item.kind,
                   "mask": str(volume.write_like(files.mask(stem, volume=True), labels))}
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
        self.rows.append({**row, "shape": "x".join(map(str, labels.shape)), "spacing_mm": _spacing_text(spacing),
                          "foreground_pixels": int(np.count_nonzero(labels)), **self._measures(labels, spacing)})
        return labels.shape[axis]


def _spacing_text(spacing: tuple[float, ...] | None) -> str:
    return "x".join(f"{s:g}" for s in spacing) if spacing is not None else "unknown"


def _prob_store(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A float32 array on disk for a volume's probabilities, filled plane by plane."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
