"""`cardioseg sweep`: check the whole grid, run what is not finished, add seeds to the best, report.

Started again, a sweep skips the runs whose record says ``ok``, retries failed ones and resumes
interrupted ones from their checkpoints. A sweep folder belongs to one set of shared settings
(data, preprocessing, training budget, evaluation): restarting it with different ones is refused,
since the runs would no longer be comparable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardioseg.artifacts import CONFIG_FILE
from cardioseg.config import Config
from cardioseg.errors import ConfigError
from cardioseg.fileio import folder_lock, write_json, write_text
from cardioseg.sweep.backends import run_points
from cardioseg.sweep.grid import GridPoint, extra_seeds, validate_sweep, with_seeds
from cardioseg.sweep.trial import is_finished, read_record, run_dir_for
from cardioseg.sweep.writeup import write_report

SETTINGS_FILE = "shared_settings.json"
# Per-run choices (set from the grid) and settings that change speed, not results.
_NOT_SHARED = (
    "model.arch", "model.encoder", "model.encoder_weights", "train.run_dir", "train.seed", "train.loss",
    "train.augment.preset", "train.num_workers", "train.threads", "train.checkpoint_every_n_steps",
    "evaluate.out_dir", "evaluate.batch_size",
)

OnRecord = Callable[[dict[str, Any], int, int], None]


@dataclass
class SweepResult:
    out_dir: Path
    records: list[dict[str, Any]]
    ran: int
    skipped: int
    written: dict[str, Path]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok"]


def absolute_paths(cfg: Config) -> Config:
    """Paths a Ray worker in another folder (or on another node) can open too."""
    cfg = cfg.absolute_paths()
    cfg.sweep.encoder_weights = [w if w in (None, "imagenet") else str(Path(w).resolve()) for w in cfg.sweep.encoder_weights]
    return cfg


def shared_settings(cfg: Config) -> dict[str, Any]:
    tree = cfg.model_dump(mode="json", include={"data", "preprocess", "model", "train", "evaluate"})
    for dotted in _NOT_SHARED:
        *parents, key = dotted.split(".")
        node = tree
        for parent in parents:
            node = node[parent]
        node.pop(key)
    return tree


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key} was {a!r}, now {b!r}")
    return found


def check_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    path = out_dir / SETTINGS_FILE
    if path.is_file():
        changed = _differences(json.loads(path.read_text(encoding="utf-8")), settings)
        if changed:
            raise ConfigError(
                f"this sweep folder holds runs made with other shared settings ({'; '.join(changed[:4])}); "
                "their results would not be comparable: use a new --out",
                out_dir,
            )
    else:
        write_json(path, settings)


def best_points(points: list[GridPoint], out_dir: Path, n: int) -> list[GridPoint]:
    """The n configurations with the highest held-out Dice among the finished grid runs."""
    scored = []
    for point in points:
        record = read_record(run_dir_for(out_dir, point))
        if record is not None and record["status"] == "ok":
            scored.append((record["metrics"]["dice"], point))
    scored.sort(key=lambda item: (-item[0], item[1].run_id))
    return [point for _, point in scored[:n]]


def _run(cfg: Config, points: list[GridPoint], on_record: OnRecord | None) -> tuple[int, int]:
    pending = [p for p in points if not is_finished(cfg.sweep.out_dir, p)]
    for done, record in enumerate(run_points(cfg, pending), start=1):
        if on_record:
            on_record(record, done, len(pending))
    return len(pending), len(points) - len(pending)


def run_sweep(cfg: Config, on_record: OnRecord | None = None) -> SweepResult:
    """Validate everything, run the grid, then the extra seeds for the best, then write tables and plots."""
    cfg = absolute_paths(cfg)
    points = validate_sweep(cfg)
    out_dir = cfg.sweep.out_dir
    with folder_lock(out_dir, "cardioseg sweep"):
        check_settings(out_dir, shared_settings(cfg))
        write_text(out_dir / CONFIG_FILE, cfg.to_yaml())
        ran, skipped = _run(cfg, points, on_record)
        if cfg.sweep.extra_seeds_for_best:
            best = best_points(points, out_dir, cfg.sweep.extra_seeds_for_best)
            extras = [p for p in with_seeds(best, extra_seeds(cfg.sweep)) if p not in points]
            more_ran, more_skipped = _run(cfg, extras, on_record)
            points, ran, skipped = points + extras, ran + more_ran, skipped + more_skipped
        records = [r for p in points if (r := read_record(run_dir_for(out_dir, p))) is not None]
        return SweepResult(out_dir, records, ran, skipped, write_report(out_dir, cfg, records))
