"""`cardioseg predict`: segment image files, DICOM files and volumes with one model or an ensemble.

2D inputs (PNG/JPEG/TIFF/BMP, colour converted to grey; DICOM with its modality LUT) give PNG
label maps of the input's size and layout, computed in batches across files. Volumes (NIfTI,
MetaImage/NRRD) are segmented plane by plane along the models' slice axis and written as NIfTI
on the input's grid (``outputs``); one whose in-memory chain would need more than the memory
budget (default: half the available memory) is streamed from disk plane by plane
(``volume_prep``). ``predictions.csv`` lists the outputs and ``config.yaml`` records the run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from rich.progress import Progress

from cardioseg.artifacts import PredictionFiles
from cardioseg.config import Config
from cardioseg.data.preprocess import ArrayPlanes, Pipeline
from cardioseg.errors import DataError
from cardioseg.fileio import write_text, write_with
from cardioseg.inference.autotune import measure, measure_if_worthwhile
from cardioseg.inference.backend_cache import Choice
from cardioseg.inference.cine import CineResult, biplane_pairs, segment_dicom_cine, write_biplane, write_cine
from cardioseg.inference.inputs import InputFile, find_inputs, open_volume, read_frames, read_image
from cardioseg.inference.members import RunOptions, load_member, model_plan
from cardioseg.inference.outputs import OutputWriter, check_output_format
from cardioseg.inference.overlap import Overlap
from cardioseg.inference.pipeline import Segmenter
from cardioseg.postprocess import with_planned_postprocess

DEFAULT_MEMORY_BUDGET = 2 << 30
SAMPLE_IMAGES = 16
"""Images ``--backend auto`` measures the backends on (and checks their masks against fp32's)."""
T = TypeVar("T")
Spacing = tuple[float, float] | None
ReadGroup = list[tuple[InputFile, tuple[np.ndarray, Spacing]]]
"""Inputs of one batch that could be read, each with its grey image and pixel spacing."""


@dataclass
class PredictResult:
    out_dir: Path
    outputs: pd.DataFrame
    backends: list[str]
    n_planes: int
    seconds: float
    ms_per_image: float
    """Network time per 2D plane, all models and TTA flips included."""
    skipped: list[Path] = field(default_factory=list)
    """Files in the given folders that are not images, DICOM or volumes."""
    bad: list[tuple[str, str]] = field(default_factory=list)
    """Inputs that could not be read or segmented (``predict.skip_bad``): (file, problem)."""
    why: list[str] = field(default_factory=list)
    """Per model, why ``--backend auto`` ran the backend it ran (empty when the backend was named)."""


def default_memory_budget() -> int:
    """Half the memory the system reports available (``MemAvailable``), else 2 GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return DEFAULT_MEMORY_BUDGET


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
    found, skipped = find_inputs(inputs, out_dir, series=cfg.predict.series)
    check_output_format(found, cfg.predict.format)
    budget = int(memory_budget_mb * 2**20) if memory_budget_mb is not None else default_memory_budget()
    started = time.perf_counter()
    n_planes = 0
    images, volumes = _by_kind(found)
    with tempfile.TemporaryDirectory(prefix="cardioseg-export-") as scratch:
        options = RunOptions(cfg.predict.backend, cfg.predict.precision, cfg.predict.batch_size,
                             cfg.predict.min_mask_dice)
        planes = _planes_to_segment(images, volumes, Path(models[0]))
        for model in models:
            measure_if_worthwhile(Path(model), options, planes, lambda m=Path(model): _sample(m, images, volumes),
                                  Path(scratch))
        members = [load_member(Path(m), options, Path(scratch), i) for i, m in enumerate(models)]
        segmenter = Segmenter(members, tta=cfg.predict.tta)
        cfg = with_planned_postprocess(cfg, segmenter.plan)
        writer = OutputWriter(out_dir, cfg.predict, segmenter, visible_masks)
        bad: list[tuple[str, str]] = []

        def read_group(group: list[InputFile]) -> ReadGroup:
            return [(item, pair) for item in group if (pair := _guarded(cfg, bad, item, lambda i=item: read_image(i)))]

        def write_group(read: ReadGroup, probs: list[np.ndarray], scores: list[float | None]) -> None:
            for (item, (image, spacing)), prob, score in zip(read, probs, scores):
                writer.image(item, image, prob, spacing, score)

        groups = [images[start : start + cfg.predict.batch_size] for start in range(0, len(images), cfg.predict.batch_size)]
        with Progress(disable=not progress, transient=True) as bar, Overlap(cfg.predict.pipeline) as overlap:
            task = bar.add_task("predicting", total=len(found))
            # group k+1 is read and group k-1 written while the network segments group k
            for read, group in overlap.prefetch(read_group, groups):
                probs, scores = segmenter.images_with_uncertainty(
                    [image for _, (image, _) in read], cfg.predict.postprocess.threshold) if read else ([], [])
                overlap.write(write_group, read, probs, scores)
                n_planes += len(read)
                bar.advance(task, len(group))
            overlap.drain()
            cines: dict[str, tuple[CineResult, Spacing]] = {}
            for item in volumes:
                if item.kind == "cine":
                    n_planes += _guarded(cfg, bad, item, lambda i=item: _cine(i, segmenter, writer, cfg, cines)) or 0
                else:
                    n_planes += _guarded(cfg, bad, item, lambda i=item: writer.volume(i, open_volume(i), budget)) or 0
                bar.advance(task)
            for patient, two, four in biplane_pairs(cines):
                (r2, s2), (r4, s4) = cines[two], cines[four]
                writer.rows.append(write_biplane(out_dir, patient, r2, r4, segmenter, s2, s4))
    seconds = time.perf_counter() - started
    outputs = pd.DataFrame(writer.rows)
    files = PredictionFiles(out_dir)
    write_with(files.table, lambda tmp: outputs.to_csv(tmp, index=False))
    write_text(files.config, cfg.to_yaml())
    if bad:
        write_with(files.bad_files, lambda tmp: pd.DataFrame(bad, columns=["file", "problem"]).to_csv(tmp, index=False))
    else:
        files.bad_files.unlink(missing_ok=True)  # a list from an earlier run would describe other inputs
    network_ms = 1000.0 * segmenter.network_seconds / max(1, n_planes)
    return PredictResult(out_dir, outputs, [m.description for m in members], n_planes, seconds, network_ms,
                         skipped, bad, [m.why for m in members])


def _cine(item: InputFile, segmenter: Segmenter, writer: OutputWriter, cfg: Config,
          kept: dict[str, tuple[CineResult, Spacing]]) -> int:
    """Segment every frame of a cine; write its masks, area curve (ED, ES, EF) and video; keep it for biplane pairs."""
    cine = read_frames(item)
    result = segment_dicom_cine(cine, segmenter, postprocess=cfg.predict.postprocess, batch_size=cfg.predict.batch_size)
    writer.rows.append(write_cine(writer.out_dir, item.path, item.stem, cine.frames, result, segmenter, cine.spacing,
                                  cine.frame_times_ms))
    kept[str(item.stem)] = (result, cine.spacing)
    return len(cine.frames)


def tune_backends(inputs: Sequence[Path], model: Path, cfg: Config) -> Choice:
    """`cardioseg tune`: measure every backend for ``model`` on the first planes of ``inputs`` and cache the fastest."""
    model = Path(model)
    found, _ = find_inputs(inputs, Path(cfg.predict.out_dir), series=cfg.predict.series)
    sample = _sample(model, *_by_kind(found))
    if sample is None:
        raise DataError("no readable image or volume to measure the backends on", Path(inputs[0]) if inputs else None)
    options = RunOptions("auto", cfg.predict.precision, cfg.predict.batch_size, cfg.predict.min_mask_dice)
    with tempfile.TemporaryDirectory(prefix="cardioseg-tune-") as scratch:
        return measure(model, options, sample, Path(scratch))


def _by_kind(found: list[InputFile]) -> tuple[list[InputFile], list[InputFile]]:
    """(2D images, inputs segmented plane by plane: volumes, DICOM series and cines)."""
    return ([item for item in found if item.kind in ("raster", "dicom")],
            [item for item in found if item.kind in ("volume", "series", "cine")])


def _planes_to_segment(images: list[InputFile], volumes: list[InputFile], model: Path) -> int:
    """2D images plus the planes of every volume along the model's slice axis (from the headers)."""
    axis = model_plan(model).slice_axis
    planes = len(images)
    for item in volumes:
        try:
            planes += open_volume(item).shape[axis]
        except DataError:
            pass  # reported when the volume is segmented
    return planes


def _sample(model: Path, images: list[InputFile], volumes: list[InputFile], count: int = SAMPLE_IMAGES) -> np.ndarray | None:
    """Up to ``count`` inputs as ``model``'s network sees them: the first readable 2D images, else planes of a volume."""
    plan = model_plan(model)
    pipeline = Pipeline.from_plan(plan)
    sample: list[np.ndarray] = []
    for item in images:
        try:
            sample.append(pipeline.image(read_image(item)[0])[0])
        except DataError:
            continue
        if len(sample) == count:
            break
    if sample:
        return np.stack(sample)
    for item in volumes:
        try:
            fitted = pipeline.fit(ArrayPlanes(open_volume(item).read(), plan.slice_axis))
        except DataError:
            continue
        return np.stack([fitted.image(int(k))[0] for k in np.linspace(0, fitted.count - 1, min(count, fitted.count))])
    return None


def _guarded(cfg: Config, bad: list[tuple[str, str]], item: InputFile, work: Callable[[], T]) -> T | None:
    """``work()``; with ``predict.skip_bad`` a DataError is listed in ``bad`` and None returned instead."""
    try:
        return work()
    except DataError as exc:
        if not cfg.predict.skip_bad:
            raise DataError(f"{exc.problem} (use --skip-bad to segment the other inputs and list the bad ones)",
                            exc.path or item.path) from None
        bad.append((str(exc.path or item.path), exc.problem))
        return None
