"""Where a report's inputs are and what they hold.

Sources (file names from ``cardioseg.artifacts``), all optional except one of the first two:

* the evaluation folder (``EvaluationFiles``: summary, per-case table, predictions, clinical
  tables): given, the folder itself, the run's newest evaluation (``RunFiles.evaluations``:
  ``evaluation/<dataset>-<split>/``, or an older run's ``evaluation/``), or ``cfg.evaluate.out_dir``
  when that evaluation is of this run's model;
* the training run folder (``RunFiles``: model, training curves, configuration): the folder
  itself, or the folder of the evaluated model;
* the prepared dataset named in the evaluation summary (images and reference masks for pictures,
  videos and clinical indices), a path relative to where the evaluation ran.

Whatever is missing becomes a note in the report, not a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardioseg.artifacts import EvaluationFiles, PreparedFiles, RunFiles, read_json
from cardioseg.config import Config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import CardiosegError, DataError


@dataclass(frozen=True)
class Sources:
    """Where the report's inputs are; either folder may be unknown."""

    evaluation: Path | None
    run: Path | None


@dataclass
class Evaluation:
    """What an evaluation folder holds, loaded once; ``notes`` collects what is missing."""

    folder: Path
    summary: dict[str, Any]
    per_case: pd.DataFrame
    prepared: PreparedDataset | None
    predictions: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)


def locate(run_dir: Path, cfg: Config, evaluation: Path | None = None) -> Sources:
    """The evaluation and training-run folders behind ``run_dir`` (module docstring)."""
    if not run_dir.is_dir():
        raise DataError("folder not found: give a training run folder or an evaluation folder", run_dir)
    run = run_dir if _is_run(run_dir) else None
    candidates = (evaluation, run_dir, *RunFiles(run_dir).evaluations())
    found = next((Path(p) for p in candidates if p and _is_evaluation(Path(p))), None)
    if found is None and cfg.evaluate.out_dir and _is_evaluation(cfg.evaluate.out_dir):
        model = _summary_model(cfg.evaluate.out_dir)
        if run is not None and model is not None and model.resolve().parent == run.resolve():
            found = Path(cfg.evaluate.out_dir)
    if evaluation is not None and found != Path(evaluation):
        raise DataError(f"not an evaluation folder (no {EvaluationFiles(Path(evaluation)).summary.name})", evaluation)
    if run is None and found is not None:
        model = _summary_model(found)
        run = model.parent if model is not None and _is_run(model.parent) else None
    if run is None and found is None:
        files, evaluation_files = RunFiles(run_dir), EvaluationFiles(run_dir)
        raise DataError(f"neither a training run ({files.model.name}) nor an evaluation "
                        f"({evaluation_files.summary.name})", run_dir)
    return Sources(found, run)


def _is_run(folder: Path) -> bool:
    """A run folder, or what is left of one: its model or at least its training curves."""
    files = RunFiles(folder)
    return files.model.is_file() or files.curves.is_file()


def _is_evaluation(folder: Path) -> bool:
    """An evaluation folder has a summary; its other files may be missing (each then becomes a note)."""
    return EvaluationFiles(Path(folder)).summary.is_file()


def _summary_model(folder: Path) -> Path | None:
    model = _read_summary(folder).get("model")
    return Path(model) if model else None


def _read_summary(folder: Path) -> dict[str, Any]:
    return read_json(EvaluationFiles(Path(folder)).summary, "evaluation summary")


def load_evaluation(folder: Path) -> Evaluation:
    """Summary, per-case table, predictions and prepared dataset of an evaluation, noting what is absent."""
    summary = _read_summary(folder)
    files = EvaluationFiles(folder)
    notes: list[str] = []
    per_case = pd.DataFrame()
    if files.per_case.is_file():
        per_case = pd.read_csv(files.per_case, keep_default_na=True,
                               dtype={"case_id": str, "patient_id": str, "view": str, "phase": str})
    else:
        notes.append(f"{files.per_case} is missing: no per-case table")
    predictions: dict[str, np.ndarray] = {}
    if files.predictions.is_file():
        with np.load(files.predictions) as store:
            predictions = {key: store[key] for key in store.files}
    if not predictions:
        notes.append(f"this evaluation has no predictions ({files.predictions.name} missing or empty): "
                     "no pictures, videos or clinical indices")
    prepared = None
    data = summary.get("data")
    root = _find_prepared(Path(data), folder) if data else None
    if root is not None:
        try:
            prepared = PreparedDataset(root)
        except CardiosegError as exc:
            notes.append(f"prepared dataset unusable ({exc}): no case pictures or videos")
    elif predictions:
        notes.append(f"prepared dataset {data!r} not found (from {Path.cwd()} or above the evaluation folder): "
                     "it holds the images and reference masks, so there are no case pictures or videos")
    if prepared is not None:
        unknown = sorted(set(predictions) - set(prepared.cases))
        if unknown:
            notes.append(f"{len(unknown)} predicted case(s) are not in the prepared dataset {data} "
                         f"(e.g. {unknown[0]}): left out")
            predictions = {k: v for k, v in predictions.items() if k in prepared.cases}
    return Evaluation(folder, summary, per_case, prepared, predictions, notes)


def _find_prepared(data: Path, evaluation: Path) -> Path | None:
    """The prepared dataset: ``data`` as recorded (relative to where the evaluation ran), else relative to a
    folder above the evaluation, so a report can be made from elsewhere."""
    candidates = [data] if data.is_absolute() else [data, *(p / data for p in evaluation.resolve().parents)]
    return next((c for c in candidates if PreparedFiles.is_prepared(c)), None)
