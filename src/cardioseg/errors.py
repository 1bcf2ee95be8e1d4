"""The project's own errors: each names the file (when there is one) and the problem.

The CLI turns any ``CardiosegError`` into a one-line message and a non-zero exit, so a
user never sees a bare traceback for bad input.
"""

from __future__ import annotations

from pathlib import Path


class CardiosegError(Exception):
    """Base class for every error cardioseg reports to a user."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class DataError(CardiosegError):
    """A data file is missing, unreadable, corrupt or inconsistent with its partner."""


class ConfigError(CardiosegError):
    """A configuration value, file or flag is invalid."""


class CheckpointError(CardiosegError):
    """A checkpoint is missing, corrupt or from an incompatible version."""
