"""One sweep run: train, score on the held-out split, write the run's record atomically.

The record (``record.json`` in the run folder) is written once the run is over, whether it
succeeded or failed; a run is finished when its record says ``ok``. A run killed mid-training
has no record and resumes from its own checkpoint (``train``'s resume) when the sweep restarts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

from cardioseg.artifacts import RunFiles
from cardioseg.config import Config
from cardioseg.evaluation.evaluate import EvaluationResult, evaluate_model
from cardioseg.fileio import write_json
from cardioseg.sweep.grid import GridPoint, run_config
from cardioseg.training.run import TrainResult, train

RECORD_FILE = "record.json"


def run_dir_for(out_dir: Path, point: GridPoint) -> Path:
    return Path(out_dir) / "runs" / point.run_id


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RECORD_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_records(out_dir: Path) -> list[dict[str, Any]]:
    """Every run record in a sweep folder, finished or failed, in run-id order."""
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(Path(out_dir).glob(f"runs/*/{RECORD_FILE}"))]


def is_finished(out_dir: Path, point: GridPoint) -> bool:
    record = read_record(run_dir_for(out_dir, point))
    return record is not None and record["status"] == "ok"


def execute_run(cfg: Config, point: GridPoint, threads: int | None = None) -> dict[str, Any]:
    """Train and evaluate one grid point; any error is recorded, never raised, so the sweep goes on."""
    run_dir = run_dir_for(cfg.sweep.out_dir, point)
    base = {**point.to_dict(), "run_dir": str(run_dir), "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.time()}
    try:
        run_cfg = run_config(cfg, point, run_dir)
        if threads and not run_cfg.train.threads:
            run_cfg.train.threads = threads
        run_cfg.evaluate.overwrite = True  # a trial without its record is unfinished: its evaluation is a leftover
        trained = train(run_cfg, progress=False)
        evaluation = evaluate_model(trained.model_path, run_cfg.data.prepared, run_cfg, progress=False)
        record = {**base, "status": "ok", **results(trained, evaluation)}
        if not cfg.sweep.keep_checkpoints:  # a finished run never resumes; a grid of them would fill the disk
            shutil.rmtree(RunFiles(run_dir).checkpoints, ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 - a crashed run is data for the sweep, not the end of it
        record = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(limit=-6)}
    return finish_record(run_dir, record)


def failed_record(cfg: Config, point: GridPoint, error: str, started: float) -> dict[str, Any]:
    """The record of a run whose worker died before it could write its own."""
    run_dir = run_dir_for(cfg.sweep.out_dir, point)
    record = {**point.to_dict(), "run_dir": str(run_dir), "started": started, "status": "failed", "error": error}
    return finish_record(run_dir, record)


def finish_record(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    record["finished"] = time.time()
    write_json(run_dir / RECORD_FILE, record)
    return record


def results(trained: TrainResult, evaluation: EvaluationResult) -> dict[str, Any]:
    """What the tables need from one run: metrics averaged over cases (and classes), costs."""
    summary = evaluation.summary
    metrics: dict[str, list[float]] = {}
    undefined: dict[str, int] = {}
    for row in summary["metrics"]["raw"]:  # network output, without post-processing
        if row["mean"] is not None:
            metrics.setdefault(row["metric"], []).append(row["mean"])
        undefined[row["metric"]] = undefined.get(row["metric"], 0) + row["n_undefined"]
    return {
        "metrics": {name: sum(values) / len(values) for name, values in metrics.items()},
        "undefined": undefined,
        "distance_unit": summary["distance_unit"],
        "split": summary["split"],
        "n_cases": summary["n_cases"],
        "parameters": summary["parameters"],
        "model_file_mb": summary["model_file_mb"],
        "inference_ms_per_image": summary["inference_ms_per_image"],
        "train_seconds": logged_train_seconds(trained.run_dir) or trained.train_seconds,
        "epochs_run": trained.epochs_run,
        "best_val_dice": trained.best_val_dice,
        "precision": trained.precision,
    }


def logged_train_seconds(run_dir: Path) -> float | None:
    """Training time summed over every resume (Lightning's Timer is restored from checkpoints)."""
    log = RunFiles(run_dir).metrics
    if not log.is_file():
        return None
    frame = pd.read_csv(log)
    return float(frame["train_seconds"].max()) if "train_seconds" in frame and frame["train_seconds"].notna().any() else None
