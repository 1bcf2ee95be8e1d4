"""Real-data fixtures (see tests/evaluation_folders.py) and reports built once for several tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cardioseg.config import load_config
from cardioseg.report.html import build_report
from evaluation_folders import camus_eval, camus_multiclass, camus_small, msd_eval, msd_small  # noqa: F401


@pytest.fixture(scope="session")
def echo_report(camus_eval: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811 (the fixture)
    """The report of a copy of the echo evaluation (4 real patients), with every video."""
    evaluation = Path(shutil.copytree(camus_eval, tmp_path_factory.mktemp("echo_report") / "evaluation"))
    return build_report(evaluation, load_config())


@pytest.fixture(scope="session")
def mri_report(msd_eval: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811 (the fixture)
    """The report of a copy of the MRI evaluation (2 real LA volumes): volumes and the 3D view."""
    evaluation = Path(shutil.copytree(msd_eval, tmp_path_factory.mktemp("mri_report") / "evaluation"))
    return build_report(evaluation, load_config(overrides={"report.max_videos": 1}))
