"""Upload sessions: the probabilities of one scan, its post-processing and the clinician's edits.

The mask shown is ``edits`` where the clinician painted or erased, else the post-processed model
output (``auto``). Keeping the two apart lets the threshold and post-processing change without
losing corrections and without running the network again. Edits are made on the displayed slice
through a view of the (i, j, k) arrays, so they land in file order whatever the display turned.

The store keeps the most recently used sessions within a count and a memory budget and drops
idle ones; each session's folder (its uploaded file) goes with it. The budget counts everything a
session holds, its undo steps (a copy of a slice each) included; over it, the oldest undo steps go
first, least recently used sessions first, and whole sessions only after that: an undo step is
cheaper to lose than a clinician's corrections. One asyncio lock per session serialises the
requests that change it.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import Field

from cardioseg.app.segment import Scan, ServedModel
from cardioseg.app.strokes import Stroke, rasterize
from cardioseg.config import PostprocessConfig
from cardioseg.errors import DataError
from cardioseg.postprocess import finish_labels, to_labels
from cardioseg.viz.slices import display_spacing, volume_slice

UNTOUCHED = -1
UNDO_DEPTH = 50
MAX_SESSIONS = 32
MEMORY_BUDGET = 4 << 30
IDLE_SECONDS = 4 * 3600
MAX_CLOSING_RADIUS = 20


class Settings(PostprocessConfig):
    """Post-processing as the page sets it; a bounded closing radius keeps each request cheap."""

    closing_radius: int = Field(0, ge=0, le=MAX_CLOSING_RADIUS)

    @classmethod
    def initial(cls, cfg: PostprocessConfig) -> Settings:
        """The configured post-processing, its closing radius brought within the page's bound."""
        values = cfg.model_dump()
        return cls.model_validate({**values, "closing_radius": min(values["closing_radius"], MAX_CLOSING_RADIUS)})


@dataclass
class Session:
    """One uploaded scan and everything the page changes about it."""

    id: str
    name: str
    scan: Scan
    model: ServedModel
    settings: Settings
    folder: Path
    patient: str | None = None
    view: str | None = None
    phase: str | None = None
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    auto: np.ndarray = field(init=False)
    edits: np.ndarray = field(init=False)
    initial_slice: int = field(init=False)
    history: deque[tuple[int, np.ndarray]] = field(default_factory=lambda: deque(maxlen=UNDO_DEPTH))
    phases: tuple[int, int] | None = None
    """ED and ES frames of a cine as the user moved them (None: tagged in the file, or detected)."""

    def __post_init__(self) -> None:
        self.edits = np.full(self.scan.image.shape, UNTOUCHED, np.int8)
        self.auto = self._postprocessed()
        per_slice = np.moveaxis(self.auto, self.slice_axis, 0).reshape(self.depth, -1)
        self.initial_slice = int(np.argmax(np.count_nonzero(per_slice, axis=1)))  # the most foreground

    @property
    def slice_axis(self) -> int:
        return self.model.segmenter.slice_axis if self.depth > 1 and self.scan.cine is None else 2

    @property
    def depth(self) -> int:
        """Number of slices (or a cine's frames) the page can show: 1 for a 2D image."""
        if self.scan.cine is not None:
            return self.scan.image.shape[2]
        return self.scan.image.shape[self.model.segmenter.slice_axis] if self.scan.volume else 1

    @property
    def n_bytes(self) -> int:
        return self.scan.n_bytes + self.edits.nbytes + self.auto.nbytes + self.history_bytes

    @property
    def history_bytes(self) -> int:
        return sum(before.nbytes for _, before in self.history)

    def _postprocessed(self) -> np.ndarray:
        raw = to_labels(self.scan.prob, self.settings.threshold)
        binary = self.model.segmenter.binary
        if self.depth == 1 or self.scan.cine is not None:  # 2D images: the chain's 2D behaviour, frame by frame
            return np.stack([finish_labels(raw[..., k], binary, self.settings, 2) for k in range(raw.shape[2])], -1)
        return finish_labels(raw, binary, self.settings, self.slice_axis)

    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.auto = self._postprocessed()

    def plane(self, array: np.ndarray, index: int) -> np.ndarray:
        """Slice ``index`` of an (i, j, k) array as displayed: a view, so writes reach the array."""
        if not 0 <= index < self.depth:
            raise DataError(f"slice {index} does not exist: this scan has {self.depth}")
        return volume_slice(array, index, self.slice_axis, self.scan.affine)

    def final(self) -> np.ndarray:
        """The corrected label map, (i, j, k) uint8."""
        return np.where(self.edits != UNTOUCHED, self.edits, self.auto).astype(np.uint8)

    def mask(self, index: int) -> np.ndarray:
        edits = self.plane(self.edits, index)
        return np.where(edits != UNTOUCHED, edits, self.plane(self.auto, index)).astype(np.uint8)

    def plane_spacing(self) -> tuple[float, float] | None:
        """(row_mm, col_mm) of a displayed slice."""
        return display_spacing(self.scan.spacing, self.slice_axis, self.scan.affine)

    def paint(self, index: int, stroke: Stroke) -> None:
        if stroke.mode == "brush" and stroke.label not in self.model.labels:
            raise DataError(f"label {stroke.label} is not a class of this model (classes {self.model.labels})")
        edits = self.plane(self.edits, index)
        self.history.append((index, edits.copy()))
        edits[rasterize(stroke, edits.shape)] = stroke.label if stroke.mode == "brush" else 0

    def undo(self) -> int | None:
        """Revert the last stroke; the slice it was on, or None when there is nothing to undo."""
        if not self.history:
            return None
        index, before = self.history.pop()
        self.plane(self.edits, index)[...] = before
        return index

    def clear_edits(self) -> None:
        self.edits.fill(UNTOUCHED)
        self.history.clear()


def new_id() -> str:
    return secrets.token_hex(16)


class SessionStore:
    """Sessions by id under one scratch folder, least recently used dropped first."""

    def __init__(self, root: Path, max_sessions: int = MAX_SESSIONS, memory_budget: int = MEMORY_BUDGET,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self.root, self.max_sessions, self.memory_budget, self.idle_seconds = root, max_sessions, memory_budget, idle_seconds
        self.sessions: OrderedDict[str, Session] = OrderedDict()

    def new_folder(self) -> Path:
        folder = self.root / new_id()
        folder.mkdir(parents=True)
        return folder

    @property
    def n_bytes(self) -> int:
        return sum(s.n_bytes for s in self.sessions.values())

    def add(self, session: Session) -> None:
        self.sessions[session.id] = session
        self.fit(keep=session.id)

    def get(self, session_id: str) -> Session:
        """The session, marked as used; KeyError when it never existed or was dropped."""
        session = self.sessions[session_id]
        session.last_used = time.monotonic()
        self.sessions.move_to_end(session_id)
        return session

    def fit(self, keep: str) -> None:
        """Back within the count and the memory budget: idle sessions dropped, then the oldest undo
        steps, then the least recently used sessions. ``keep`` (the one just used) loses only undo
        steps; a session busy in a worker thread is left untouched."""
        now = time.monotonic()
        for session in self._free():
            if session.id != keep and now - session.last_used > self.idle_seconds:
                self.drop(session.id)
        free = self._free()
        for session in free:
            while session.history and self.n_bytes > self.memory_budget:
                session.history.popleft()
        for session in free:
            if len(self.sessions) <= self.max_sessions and self.n_bytes <= self.memory_budget:
                break
            if session.id != keep:
                self.drop(session.id)

    def _free(self) -> list[Session]:
        """The sessions no request is working on, least recently used first."""
        return [s for s in self.sessions.values() if not s.lock.locked()]

    def drop(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            shutil.rmtree(session.folder, ignore_errors=True)
