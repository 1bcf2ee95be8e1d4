"""Atomic output: every file is written to a temporary sibling and renamed into place.

A kill at any moment leaves either the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cardioseg.errors import CardiosegError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise CardiosegError(f"cannot write here: {exc.strerror}", target.parent) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync(tmp)
        # mkstemp makes 0600 files, and writers that replace the file (safetensors) do too: outputs get the
        # permissions of any file the user creates, so set them on what the writer left, just before publishing.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CardiosegError(f"could not write file: {exc.strerror}", target) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_with(target: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def write_text(target: str | Path, text: str) -> Path:
    return write_with(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(target: str | Path, data: bytes) -> Path:
    return write_with(target, lambda tmp: tmp.write_bytes(data))


def write_json(target: str | Path, obj: Any) -> Path:
    return write_text(target, json.dumps(obj, indent=2, default=str) + "\n")


def write_npz(target: str | Path, arrays: dict[str, Any]) -> Path:
    """Compressed .npz, written atomically (through a file handle: numpy renames bare paths)."""

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            import numpy as np

            np.savez_compressed(handle, **arrays)

    return write_with(target, writer)


def _fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` and the folders holding them, so a rename publishes complete data."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file():
            _fsync(path)
    for folder in (*sorted(p for p in root.rglob("*") if p.is_dir()), root):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_leftovers(target: Path) -> None:
    """Temporaries of earlier builds of ``target`` that were killed half-way (only their builder used them)."""
    for pattern in (f".{target.name}.partial*", f".{target.name}.old*"):
        for leftover in target.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Build a directory under a unique temporary name and rename it onto ``target`` when complete.

    Callers hold ``folder_lock(target, ..., replaced_whole=True)``, so leftovers of a killed earlier
    build are removed first; the contents are fsynced before the swap.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as exc:
        raise CardiosegError(f"cannot write here: {exc.strerror or exc}", target.parent) from None
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700 folders
    try:
        yield tmp
        _fsync_tree(tmp)
        # Swap in two renames so the old directory is never deleted before the new one is complete.
        old = tmp.with_name(tmp.name.replace(".partial-", ".old-"))
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CardiosegError(f"could not write: {exc.strerror or exc}", target) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def safe_name(text: str, limit: int = 80) -> str:
    """``text`` as a file name: letters, digits, ``-_.`` kept, anything else ``_`` (never empty)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:limit] or "_"


LOCK_FILE = ".cardioseg.lock"


@contextmanager
def folder_lock(folder: str | Path, what: str, replaced_whole: bool = False) -> Iterator[None]:
    """Hold ``folder`` for one process: a second `what` stops with the holder's PID, host and start time.

    The lock is an ``flock`` on a file inside the folder, or beside it for a folder that is
    replaced as a whole (``atomic_dir``: a prepared dataset), so that it survives the swap. The
    kernel releases an flock when its holder dies however it dies (kill -9 included): a lock left
    by a dead process is simply taken over. The holder's description is written into the file
    only for the message the next one prints.
    """
    import fcntl
    import socket
    import time

    folder = Path(folder)
    lock = folder.with_name(f".{folder.name}.lock") if replaced_whole else folder / LOCK_FILE
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+", encoding="utf-8")
    except OSError as exc:
        raise CardiosegError(f"cannot write here: {exc.strerror}", lock.parent) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise CardiosegError(f"in use by {holder}; wait for it to finish or use another folder", folder) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what} (PID {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


def write_png(target: str | Path, array: Any) -> Path:
    """An image array (H, W) or (H, W, 3) as a PNG, written atomically."""
    import numpy as np
    from PIL import Image

    return write_with(target, lambda tmp: Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG"))
