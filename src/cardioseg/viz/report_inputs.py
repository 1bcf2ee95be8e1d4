"""Where a report's inputs are and what they hold.

Sources, all optional except one of the first two:

* the evaluation folder (``summary.json``, ``per_case.csv``, ``predictions.npz``, clinical
  tables): given, the folder itself, ``RUN_DIR/evaluation``, or ``cfg.evaluate.out_dir`` when
  that evaluation is of this run's model;
* the training run folder (``model.safetensors``, ``training_curves.png``, ``config.yaml``):
  the folder itself, or the folder of the evaluated model;
* the prepared dataset named in ``summary.json`` (images and reference masks for pictures,
  videos and clinical indices), a path relative to where the evaluation ran.

Whatever is missing becomes a note in the report, not a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
    found = next((Path(p) for p in (evaluation, run_dir, run_dir / "evaluation") if p and _is_evaluation(Path(p))), None)
    if found is None and cfg.evaluate.out_dir and _is_evaluation(cfg.evaluate.out_dir):
        model = _summary_model(cfg.evaluate.out_dir)
        if run is not None and model is not None and model.resolve().parent == run.resolve():
            found = Path(cfg.evaluate.out_dir)
    if evaluation is not None and found != Path(evaluation):
        raise DataError("not an evaluation folder (no summary.json)", evaluation)
    if run is None and found is not None:
        model = _summary_model(found)
        run = model.parent if model is not None and _is_run(model.parent) else None
    if run is None and found is None:
        raise DataError("neither a training run (model.safetensors) nor an evaluation (summary.json)", run_dir)
    return Sources(found, run)


def _is_run(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() or (folder / "training_curves.png").is_file()


def _is_evaluation(folder: Path) -> bool:
    return (Path(folder) / "summary.json").is_file()


def _summary_model(folder: Path) -> Path | None:
    model = _read_summary(folder).get("model")
    return Path(model) if model else None


def _read_summary(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"unreadable evaluation summary: {exc}", path) from None


def load_evaluation(folder: Path) -> Evaluation:
    """Summary, per-case table, predictions and prepared dataset of an evaluation, noting what is absent."""
    summary = _read_summary(folder)
    notes: list[str] = []
    per_case = pd.DataFrame()
    if (folder / "per_case.csv").is_file():
        per_case = pd.read_csv(folder / "per_case.csv", keep_default_na=True,
                               dtype={"case_id": str, "patient_id": str, "view": str, "phase": str})
    else:
        notes.append(f"{folder / 'per_case.csv'} is missing: no per-case table")
    predictions: dict[str, np.ndarray] = {}
    if (folder / "predictions.npz").is_file():
        with np.load(folder / "predictions.npz") as store:
            predictions = {key: store[key] for key in store.files}
    if not predictions:
        notes.append("this evaluation has no predictions (predictions.npz missing or empty): "
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
    return next((c for c in candidates if (c / "dataset.json").is_file()), None)
