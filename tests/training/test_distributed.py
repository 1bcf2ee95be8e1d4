"""Two CPU processes with Gloo (Lightning DDP) train as well as one, and count validation once."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardioseg.config import load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from tests.conftest import copy_camus_patients

CLI = str(Path(sys.executable).parent / "cardioseg")


def _train(prepared: Path, run_dir: Path, seed: int, devices: int, batch_size: int) -> pd.DataFrame:
    subprocess.run(
        [CLI, "train", "-d", str(prepared), "-r", str(run_dir), "--epochs", "4", "--batch-size", str(batch_size),
         "--seed", str(seed), "--devices", str(devices), "--lr", "0.003", "-q", "--no-plan",
         "--set", "train.num_workers=0", "--set", f"train.threads={2 // devices}"],
        check=True, timeout=600, capture_output=True,
    )
    return pd.read_csv(run_dir / "logs" / "metrics.csv")


@pytest.mark.slow
def test_two_gloo_processes_match_single_process_spread(camus224: Path, tmp_path: Path) -> None:
    source = copy_camus_patients(camus224, tmp_path / "raw", [f"patient{i:04d}" for i in range(1, 61)])
    prepared = tmp_path / "prepared"
    prepare_dataset(load_config(overrides={"data.source": source, "data.prepared": prepared, "data.labels": {1: 1},
                                           "preprocess.size": [48, 48]}), progress=False)
    n_val = len(PreparedDataset(prepared).indices("val"))
    single = [_train(prepared, tmp_path / f"single{seed}", seed, 1, 8)["val_dice"].max() for seed in (0, 1)]
    # the same global batch (2 processes x 4) and number of optimiser steps as the single-process runs
    ddp_log = _train(prepared, tmp_path / "ddp", 0, 2, 4)
    assert (ddp_log["val_samples"].dropna() == n_val).all(), "validation samples double-counted or lost"
    ddp = ddp_log["val_dice"].max()
    spread = max(np.ptp(single), 0.02)
    assert min(single) - spread <= ddp <= max(single) + spread, (ddp, single)
    assert (tmp_path / "ddp" / "model.safetensors").is_file()
