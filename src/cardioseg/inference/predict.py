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

import pandas as pd
from rich.progress import Progress

from cardioseg.artifacts import PredictionFiles
from cardioseg.config import Config
from cardioseg.errors import DataError
from cardioseg.fileio import write_text, write_with
from cardioseg.inference.inputs import InputFile, find_inputs, read_image
from cardioseg.inference.members import RunOptions, load_member
from cardioseg.inference.outputs import OutputWriter
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.volumes import VolumeFile

DEFAULT_MEMORY_BUDGET = 2 << 30
T = TypeVar("T")


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
    found, skipped = find_inputs(inputs, out_dir)
    budget = int(memory_budget_mb * 2**20) if memory_budget_mb is not None else default_memory_budget()
    started = time.perf_counter()
    n_planes = 0
    with tempfile.TemporaryDirectory(prefix="cardioseg-export-") as scratch:
        options = RunOptions(cfg.predict.backend, cfg.predict.precision, cfg.predict.batch_size)
        members = [load_member(Path(m), options, Path(scratch), i) for i, m in enumerate(models)]
        segmenter = Segmenter(members, tta=cfg.predict.tta)
        writer = OutputWriter(out_dir, cfg.predict, segmenter, visible_masks)
        bad: list[tuple[str, str]] = []
        images = [item for item in found if item.kind != "volume"]
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("predicting", total=len(found))
            for start in range(0, len(images), cfg.predict.batch_size):
                group = images[start : start + cfg.predict.batch_size]
                read = [(item, pair) for item in group if (pair := _guarded(cfg, bad, item, lambda i=item: read_image(i)))]
                probs = segmenter.images([image for _, (image, _) in read]) if read else []
                for (item, (image, spacing)), prob in zip(read, probs):
                    writer.image(item, image, prob, spacing)
                n_planes += len(read)
                bar.advance(task, len(group))
            for item in (item for item in found if item.kind == "volume"):
                n_planes += _guarded(cfg, bad, item, lambda i=item: writer.volume(i, VolumeFile(i.path), budget)) or 0
                bar.advance(task)
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
                         skipped, bad)


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
