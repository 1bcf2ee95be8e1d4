"""A real sweep killed with SIGKILL at arbitrary moments, several times, then resumed: every finished trial
is kept exactly once (never re-run, never lost), and the resumed sweep completes the rest."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cardioseg.sweep.trial import RECORD_FILE

CLI = str(Path(sys.executable).parent / "cardioseg")
TRIALS = 6  # 1 architecture x 2 augmentations x 3 seeds


def _records(out: Path) -> dict[str, dict]:
    """Every record on disk; each must be complete JSON (a kill never leaves half a record)."""
    return {path.parent.name: json.loads(path.read_text()) for path in sorted(out.glob(f"runs/*/{RECORD_FILE}"))}


@pytest.mark.slow
def test_sweep_killed_at_random_moments_loses_and_repeats_nothing(prepared32: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"prepared": str(prepared32)},
        "model": {"options": {"base": 8, "depth": 3}},
        "train": {"epochs": 1, "batch_size": 16, "num_workers": 0, "checkpoint_every_n_steps": 2},
        "evaluate": {"split": "test"},
        "sweep": {"out_dir": str(out), "architectures": ["plain_unet"], "encoders": [None],
                  "augmentations": ["none", "echo"], "seeds": [0, 1, 2]},
    }))
    command = [CLI, "sweep", "-c", str(config)]
    kill_after = random.Random(18)
    kept: dict[str, float] = {}
    for finished_before_kill in (0, 2, 4):  # during start-up or the first trial, then just after a 2nd and a 4th trial
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 300
        while len(_records(out)) < finished_before_kill and time.time() < deadline and process.poll() is None:
            time.sleep(0.1)
        time.sleep(kill_after.uniform(0.0, 1.5))  # anywhere in the next trial: training, evaluation, the record write
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        records = _records(out)
        assert all(r["status"] == "ok" for r in records.values()), records
        for run_id, finished in kept.items():  # what was finished before this kill was not redone
            assert records[run_id]["finished"] == finished
        kept = {run_id: r["finished"] for run_id, r in records.items()}
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    said = " ".join(resumed.stdout.split())
    assert f"{TRIALS - len(kept)} run(s) done, {len(kept)} already finished, 0 failed" in said, said
    records = _records(out)
    assert len(records) == TRIALS and all(r["status"] == "ok" for r in records.values())
    assert all(records[run_id]["finished"] == finished for run_id, finished in kept.items())
    table = (out / "records.csv").read_text().splitlines()
    assert len(table) == TRIALS + 1  # one row per trial: none twice
