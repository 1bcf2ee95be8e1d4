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


class TrainingError(CardiosegError):
    """Training cannot go on as configured (the weights diverged)."""


class CheckpointError(CardiosegError):
    """A checkpoint is missing, corrupt or from an incompatible version."""


MAX_LISTED = 10
"""Problems shown in a message; the rest go to a file the message names."""


def problem_list(summary: str, problems: list[tuple[str, str]], full_list: Path) -> str:
    """``problem_summary`` after writing every "file: problem" line to ``full_list``."""
    full_list = Path(full_list)
    full_list.parent.mkdir(parents=True, exist_ok=True)
    full_list.write_text("".join(f"{where}: {why}\n" for where, why in problems), encoding="utf-8")
    return problem_summary(summary, problems, full_list)


def problem_summary(summary: str, problems: list[tuple[str, str]], full_list: Path) -> str:
    """``summary``, then the first ``MAX_LISTED`` "file: problem" lines, then the count and where all are listed.

    A run with hundreds of bad files would otherwise print one unreadable line of many kilobytes.
    """
    shown = "\n".join(f"  {where}: {why}" for where, why in problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return f"{summary}\n{shown}{more}\n{len(problems)} in all, listed in {full_list}"
