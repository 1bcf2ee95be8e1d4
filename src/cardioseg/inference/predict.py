"""`cardioseg predict`: segment image files, DICOM files and volumes with one model or an ensemble.

Inputs are files or folders (searched recursively). 2D images (PNG/JPEG/TIFF/BMP, colour
converted to grey; DICOM, with the modality LUT applied) give a PNG label map of the input's size
and layout (values 0..K). Volumes (NIfTI, MetaImage/NRRD) are segmented plane by plane along the
models' slice axis and written as NIfTI on the input's grid (header and affine kept). Outputs
mirror the inputs' names: ``<stem>_mask.png`` / ``<stem>_mask.nii.gz``, and on request
``<stem>_visible.png`` (2D: labels spread over 0..255), ``<stem>_overlay.png`` (for a volume: its
plane with the most foreground), ``<stem>_prob.npy`` / ``<stem>_prob.nii.gz`` (float32: the
foreground probability for one-channel models, else every class, channel first for .npy and
last for NIfTI). ``predictions.csv`` lists them and ``config.yaml`` records the run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from rich.progress import Progress

from cardioseg.config import Config, PostprocessConfig
from cardioseg.data.readers.base import RASTER_SUFFIXES, check_image, read_dicom, read_raster, strip_suffix
from cardioseg.errors import DataError
from cardioseg.fileio import write_text, write_with
from cardioseg.inference.engine import to_labels
from cardioseg.inference.members import load_member
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.volumes import VOLUME_SUFFIXES, VolumeFile
from cardioseg.postprocess import postprocess, postprocess_labels
from cardioseg.viz.overlays import overlay

DICOM_SUFFIXES = (".dcm", ".dicom")
DEFAULT_MEMORY_BUDGET = 2 << 30


@dataclass(frozen=True)
class InputFile:
    path: Path
    kind: str  # "raster", "dicom" or "volume"
    stem: Path  # output name without suffix, relative to the output folder


@dataclass
class PredictResult:
    out_dir: Path
    outputs: pd.DataFrame
    backends: list[str]
    n_planes: int
    seconds: float
    ms_per_image: float
    skipped: list[Path] = field(default_factory=list)


def file_kind(path: Path) -> str | None:
    """'raster', 'dicom' or 'volume' by suffix (or a DICOM preamble when there is none), else None."""
    name = path.name.lower()
    if name.endswith(RASTER_SUFFIXES):
        return "raster"
    if name.endswith(VOLUME_SUFFIXES):
        return "volume"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    if "." not in name:
        try:
            with open(path, "rb") as handle:
                return "dicom" if handle.read(132)[128:] == b"DICM" else None
        except OSError:
            return None
    return None


def _stem(path: Path) -> str:
    return strip_suffix(path.name, (*RASTER_SUFFIXES, *VOLUME_SUFFIXES, *DICOM_SUFFIXES)) or path.name


def find_inputs(inputs: Sequence[Path], out_dir: Path | None = None) -> tuple[list[InputFile], list[Path]]:
    """(files to segment, files skipped in folders). Named files must be supported; folders are searched
    recursively, leaving out hidden files and anything inside ``out_dir``."""
    found: list[InputFile] = []
    skipped: list[Path] = []
    out_dir = out_dir.resolve() if out_dir is not None else None
    for given in map(Path, inputs):
        if given.is_dir():
            files = sorted(p for p in given.rglob("*") if p.is_file() and not p.name.startswith("."))
            usable = 0
            for path in files:
                if out_dir is not None and path.resolve().is_relative_to(out_dir):
                    continue
                kind = file_kind(path)
                if kind is None:
                    skipped.append(path)
                    continue
                usable += 1
                found.append(InputFile(path, kind, path.relative_to(given).with_name(_stem(path))))
            if not usable:
                raise DataError("no image, DICOM or volume files in this folder", given)
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


def _check_unique(found: list[InputFile]) -> None:
    seen: dict[Path, Path] = {}
    for item in found:
        if item.stem in seen:
            raise DataError(f"{seen[item.stem]} and this file would write the same outputs ({item.stem}_mask...); "
                            "rename one or predict them separately", item.path)
        seen[item.stem] = item.path


def read_image(item: InputFile) -> np.ndarray:
    """A 2D input as a grey array (RGB converted to grey, DICOM rescaled), checked."""
    image = read_dicom(item.path)[0] if item.kind == "dicom" else read_raster(item.path)
    return check_image(image, item.path)


def finish_labels(raw: np.ndarray, binary: bool, cfg: PostprocessConfig, slice_axis: int) -> np.ndarray:
    """The post-processing chain on a label map from ``to_labels`` (2D or 3D) -> uint8 labels."""
    if binary:
        return postprocess(raw.astype(bool), cfg, slice_axis).astype(np.uint8)
    return postprocess_labels(raw, cfg, slice_axis).astype(np.uint8)


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


def default_memory_budget() -> int:
    """Half the memory the system reports available (``MemAvailable``), else 2 GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return DEFAULT_MEMORY_BUDGET


class _Writer:
    """Writes the outputs of one run and keeps the table of what it wrote."""

    def __init__(self, out_dir: Path, cfg: Config, segmenter: Segmenter, visible_masks: bool) -> None:
        self.out_dir, self.cfg, self.segmenter, self.visible_masks = out_dir, cfg.predict, segmenter, visible_masks
        self.rows: list[dict[str, Any]] = []

    def image(self, item: InputFile, image: np.ndarray, prob: np.ndarray) -> None:
        seg = self.segmenter
        labels = finish_labels(to_labels(prob, self.cfg.postprocess.threshold), seg.binary, self.cfg.postprocess,
                               seg.slice_axis)
        base = self.out_dir / item.stem
        row = {"source": str(item.path), "kind": item.kind, "mask": str(write_png(_named(base, "_mask.png"), labels))}
        if self.visible_masks:
            row["visible"] = str(write_png(_named(base, "_visible.png"), visible(labels, seg.classes)))
        if self.cfg.overlays:
            row["overlay"] = str(write_png(_named(base, "_overlay.png"), overlay(image, labels, None)))
        if self.cfg.probabilities:
            row["probabilities"] = str(write_npy(_named(base, "_prob.npy"), prob[0] if seg.binary else prob))
        self.rows.append({**row, "shape": "x".join(map(str, labels.shape)),
                          "foreground_pixels": int(np.count_nonzero(labels))})

    def volume(self, item: InputFile, volume: VolumeFile, memory_budget: int) -> int:
        """Segment and write one volume; returns the number of planes."""
        seg, axis = self.segmenter, self.segmenter.slice_axis
        base = self.out_dir / item.stem
        labels = np.zeros(volume.shape, np.uint8)
        prob_shape = volume.shape if seg.binary else (*volume.shape, seg.classes)
        scratch = base.with_name(f".{base.name}_prob.partial.npy")
        store = _prob_store(scratch, prob_shape) if self.cfg.probabilities else None
        try:
            for k, prob in seg.volume(volume, memory_budget, self.cfg.batch_size):
                where = tuple(k if a == axis else slice(None) for a in range(3))
                labels[where] = to_labels(prob, self.cfg.postprocess.threshold)
                if store is not None:
                    store[where] = prob[0] if seg.binary else np.moveaxis(prob, 0, -1)
            labels = finish_labels(labels, seg.binary, self.cfg.postprocess, axis)
            row = {"source": str(item.path), "kind": item.kind,
                   "mask": str(volume.write_like(_named(base, "_mask.nii.gz"), labels))}
            if store is not None:
                store.flush()
                row["probabilities"] = str(volume.write_like(_named(base, "_prob.nii.gz"), np.asarray(store)))
        finally:
            del store
            scratch.unlink(missing_ok=True)
        if self.cfg.overlays:
            best = int(np.argmax(np.count_nonzero(np.moveaxis(labels, axis, 0).reshape(labels.shape[axis], -1), axis=1)))
            picture = overlay(volume.plane(axis, best), np.moveaxis(labels, axis, 0)[best], None)
            row["overlay"] = str(write_png(_named(base, "_overlay.png"), picture))
        self.rows.append({**row, "shape": "x".join(map(str, labels.shape)),
                          "foreground_pixels": int(np.count_nonzero(labels))})
        return labels.shape[axis]


def _named(base: Path, suffix: str) -> Path:
    return base.with_name(base.name + suffix)


def _prob_store(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A float32 array on disk for a volume's probabilities, filled plane by plane."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)


def predict_files(
    inputs: Sequence[Path],
    models: Sequence[Path],
    cfg: Config,
    *,
    visible_masks: bool = False,
    memory_budget_mb: float | None = None,
    progress: bool = False,
) -> PredictResult:
    """Segment every input with the ensemble of ``models`` and write the outputs to ``cfg.predict.out_dir``."""
    if not models:
        raise DataError("no model given (--model)")
    out_dir = Path(cfg.predict.out_dir)
    found, skipped = find_inputs(inputs, out_dir)
    budget = int(memory_budget_mb * 2**20) if memory_budget_mb is not None else default_memory_budget()
    started = time.perf_counter()
    n_planes = 0
    with tempfile.TemporaryDirectory(prefix="cardioseg-export-") as scratch:
        members = [load_member(Path(m), cfg.predict, Path(scratch), i) for i, m in enumerate(models)]
        segmenter = Segmenter(members, tta=cfg.predict.tta)
        writer = _Writer(out_dir, cfg, segmenter, visible_masks)
        images = [item for item in found if item.kind != "volume"]
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("predicting", total=len(found))
            for start in range(0, len(images), cfg.predict.batch_size):
                group = images[start : start + cfg.predict.batch_size]
                arrays = [read_image(item) for item in group]
                for item, image, prob in zip(group, arrays, segmenter.images(arrays)):
                    writer.image(item, image, prob)
                n_planes += len(group)
                bar.advance(task, len(group))
            for item in (item for item in found if item.kind == "volume"):
                n_planes += writer.volume(item, VolumeFile(item.path), budget)
                bar.advance(task)
    seconds = time.perf_counter() - started
    outputs = pd.DataFrame(writer.rows)
    write_with(out_dir / "predictions.csv", lambda tmp: outputs.to_csv(tmp, index=False))
    write_text(out_dir / "config.yaml", cfg.to_yaml())
    network_ms = 1000.0 * sum(m.backend.seconds for m in members) / max(1, n_planes)
    return PredictResult(out_dir, outputs, [f"{m.source.name}: {m.backend_name}" for m in members], n_planes,
                         seconds, network_ms, skipped)
