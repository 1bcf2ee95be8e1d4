"""The backend `--backend auto` measured fastest, remembered per machine and model.

One JSON file in the cache folder (``runtime.cache_dir``) maps a key to the choice and the
measurements behind it. The key holds everything a measurement depends on: the machine
fingerprint (CPU model, vector flags, threads, library versions), the digests of the checkpoint
and of its int8 export, the input size and the batch size. Changing any of them makes the entry
unreachable, so a stale choice is never applied; `cardioseg tune` measures again on request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cardioseg.fileio import write_json
from cardioseg.runtime import cache_dir, machine_fingerprint

CACHE_FILE = "backend-choices.json"


@dataclass(frozen=True)
class Trial:
    """One candidate as measured: its speed, and its masks against fp32 PyTorch's on the sample."""

    backend: str
    precision: str
    images_per_s: float
    min_dice: float
    accepted: bool
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"


@dataclass(frozen=True)
class Choice:
    """What auto runs, and why (for ``predict -v``)."""

    backend: str
    precision: str
    reason: str
    trials: tuple[Trial, ...] = field(default_factory=tuple)


def cache_key(model_digests: list[str], size: tuple[int, int], batch_size: int) -> str:
    payload = {"machine": machine_fingerprint(), "models": model_digests, "size": list(size), "batch": batch_size}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def _entries() -> dict[str, Any]:
    try:
        entries = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}  # no cache yet, or one damaged by hand: measuring again is always safe
    return entries if isinstance(entries, dict) else {}


def cached_choice(key: str) -> Choice | None:
    entry = _entries().get(key)
    if not isinstance(entry, dict):
        return None
    try:
        trials = tuple(Trial(**t) for t in entry.get("trials", []))
        return Choice(entry["backend"], entry["precision"], entry["reason"], trials)
    except (KeyError, TypeError):
        return None


def remember(key: str, choice: Choice) -> None:
    """Add ``choice`` to the cache file (written atomically; a concurrent writer's entry may be lost, never corrupted)."""
    entries = _entries()
    entries[key] = {**asdict(choice), "machine": machine_fingerprint()}
    write_json(_cache_path(), entries)
