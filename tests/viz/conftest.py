"""Real-data fixtures shared with the other report tests (see tests/evaluation_folders.py)."""

from evaluation_folders import camus_eval, camus_multiclass, camus_small, msd_eval, msd_small  # noqa: F401
