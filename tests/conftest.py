"""Shared fixtures: where the real data lives, and a clear skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("CARDIOSEG_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name} not found at {path} (set CARDIOSEG_DATA to the folder holding it)")
    return path


@pytest.fixture(scope="session")
def camus224() -> Path:
    return _dataset("camus224")


@pytest.fixture(scope="session")
def msd_heart_la() -> Path:
    return _dataset("msd_heart_la")


@pytest.fixture(scope="session")
def sunnybrook5() -> Path:
    return _dataset("sunnybrook5")
