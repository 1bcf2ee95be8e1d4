"""Reading, the network and writing at the same time: `predict` on a folder runs at the network's speed.

Decoding the next batch of files and encoding the previous batch's masks release the GIL (PIL,
OpenCV, zlib), so one reader thread and one writer thread overlap them with the network's own
threads. Batches are read, segmented and written in order, one writer at a time, so the outputs
(and their rows in predictions.csv) are exactly those of the sequential path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

G = TypeVar("G")
R = TypeVar("R")


class Overlap:
    """Prefetch the next group and write the previous one in background threads; ``enabled=False`` runs inline."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="cardioseg-read") if enabled else None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="cardioseg-write") if enabled else None
        self._pending: Future[None] | None = None

    def prefetch(self, read: Callable[[G], R], groups: Sequence[G]) -> Iterator[tuple[R, G]]:
        """(read(group), group) in order; group k+1 is being read while the caller works on group k."""
        if self._reader is None:
            yield from ((read(group), group) for group in groups)
            return
        upcoming = self._reader.submit(read, groups[0]) if groups else None
        for k, group in enumerate(groups):
            assert upcoming is not None
            current = upcoming.result()
            upcoming = self._reader.submit(read, groups[k + 1]) if k + 1 < len(groups) else None
            yield current, group

    def write(self, write: Callable[..., None], *args: Any) -> None:
        """Run ``write(*args)`` after the previous write (in the writer thread); its errors surface here or in ``drain``."""
        if self._writer is None:
            write(*args)
            return
        self.drain()
        self._pending = self._writer.submit(write, *args)

    def drain(self) -> None:
        """Wait for the pending write (re-raising its error)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __enter__(self) -> Overlap:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for pool in (self._reader, self._writer):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
