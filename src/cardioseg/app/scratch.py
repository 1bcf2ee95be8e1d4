"""The server's scratch folder, where uploaded scans live: gone when the server stops, however it stops.

A clean stop (SIGTERM, SIGINT, the end of a test client) removes the folder in the app's
shutdown. A server killed outright (SIGKILL, a crash, power loss) cannot, so the folder carries
its owner's process id and start time, and the next server to start removes every
``cardioseg-serve-*`` folder whose owner is gone. A folder whose owner runs, cannot be told
(no owner file, another user's) or may be a reused process id is left alone: patient data of a
live server is never removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "cardioseg-serve-"
OWNER_FILE = "owner"


def create_scratch() -> tempfile.TemporaryDirectory[str]:
    """A new scratch folder with its owner recorded, after removing those of dead servers."""
    remove_stale(Path(tempfile.gettempdir()))
    scratch = tempfile.TemporaryDirectory(prefix=PREFIX)
    pid = os.getpid()
    (Path(scratch.name) / OWNER_FILE).write_text(f"{pid} {_start_time(pid) or ''}\n", encoding="ascii")
    return scratch


def remove_stale(parent: Path) -> list[Path]:
    """Remove this user's scratch folders under ``parent`` whose owning process has ended; those removed."""
    removed = []
    for folder in parent.glob(f"{PREFIX}*"):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            owner = _read_owner(folder / OWNER_FILE)
        except OSError:
            continue
        if owner is not None and not _alive(*owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _read_owner(path: Path) -> tuple[int, str | None] | None:
    """(pid, start time) from an owner file; None when absent or unreadable (the owner cannot be told)."""
    try:
        fields = path.read_text(encoding="ascii").split()
        return int(fields[0]), (fields[1] if len(fields) > 1 else None)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process holds the pid: only its start time can tell it from our owner
    current = _start_time(pid)
    return started is None or current is None or current == started
