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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.progress import Progress

from cardioseg.artifacts import PredictionFiles
from cardioseg.config import Config
from cardioseg.errors import DataError
from cardioseg.fileio import write_text, write_with
from cardioseg.inference.inputs import find_inputs, read_image
from cardioseg.inference.members import RunOptions, load_member
from cardioseg.inference.outputs import OutputWriter
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.volumes import VolumeFile

DEFAULT_MEMORY_BUDGET = 2 << 30


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
    files = PredictionFiles(out_dir)
    write_with(files.table, lambda tmp: outputs.to_csv(tmp, index=False))
    write_text(files.config, cfg.to_yaml())
    network_ms = 1000.0 * segmenter.network_seconds / max(1, n_planes)
    return PredictResult(out_dir, outputs, [f"{m.source}: {m.backend_name}" for m in members], n_planes,
                         seconds, network_ms, skipped)
