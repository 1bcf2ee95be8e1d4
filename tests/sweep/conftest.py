"""A tiny real dataset for sweeps: the bundled CAMUS sample at 32x32 (always present, no skip)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cardioseg.config import Config, load_config

DEMO_SAMPLE = Path(__file__).resolve().parents[2] / "demo" / "camus_sample"


@pytest.fixture(scope="session")
def prepared32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 patients, LV only, 32x32: 128 train / 16 val / 16 test images."""
    from cardioseg.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("prepared") / "sample32"
    cfg = load_config(overrides={"data.source": DEMO_SAMPLE, "data.layout": "camus_png", "data.prepared": out,
                                 "data.labels": {1: 1}, "preprocess.size": [32, 32]})
    prepare_dataset(cfg, progress=False)
    return out


SweepFactory = Callable[..., Config]


@pytest.fixture(scope="session")
def sweep_config() -> SweepFactory:
    """``sweep_config(prepared, out, **sweep)``: a Config for a sweep over ``prepared``."""
    return make_sweep_config


def make_sweep_config(prepared: Path, out: Path, **sweep: Any) -> Config:
    """unet and fpn on resnet18, initial and augmented, 1 epoch, scored on the test split."""
    overrides = {"data.prepared": prepared, "train.epochs": 1, "train.batch_size": 16, "train.num_workers": 0,
                 "evaluate.split": "test", "sweep.out_dir": out, "sweep.architectures": ["unet", "fpn"],
                 "sweep.encoders": ["resnet18"], "sweep.augmentations": ["none", "echo"]}
    overrides.update({f"sweep.{k}": v for k, v in sweep.items()})
    return load_config(overrides=overrides)
