"""The main job of README (`cardioseg demo` on the bundled sample) runs end to end, cut to one epoch.

CI installs with the constraints file (``constraints.txt``), so this is also the check that the
pinned environment runs the demo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cardioseg.artifacts import EvaluationFiles, RunFiles

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "cardioseg")


@pytest.mark.slow
def test_demo_runs_from_the_bundled_sample(tmp_path: Path) -> None:
    run, evaluation = RunFiles(tmp_path / "run"), EvaluationFiles(tmp_path / "evaluation")
    command = [CLI, "demo", "-q", "--set", f"data.prepared={tmp_path / 'prepared'}", "--set", f"train.run_dir={run.root}",
               "--set", f"evaluate.out_dir={evaluation.root}", "--set", "train.epochs=1"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(evaluation.summary.read_text())
    assert summary["n_cases"] == 16 and summary["split"] == "test"  # 4 held-out patients x 4 images
    assert run.model.is_file() and run.report.stat().st_size > 10_000
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "already trained" in again.stdout, again.stdout + again.stderr


def test_the_environment_matches_the_constraints_file() -> None:
    """Every dependency installed for cardioseg is the version constraints.txt pins."""
    from importlib.metadata import PackageNotFoundError, version

    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = pinned.strip()
    assert {"torch", "torchvision", "segmentation-models-pytorch", "lightning", "numpy"} <= set(pins)
    mismatched = {}
    for name, pinned in pins.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # an optional extra (ray, ...) not installed here
        if installed.split("+")[0] != pinned.split("+")[0]:
            mismatched[name] = (installed, pinned)
    assert not mismatched, f"installed vs constraints.txt: {mismatched}"
