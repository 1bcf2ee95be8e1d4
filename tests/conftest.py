"""Shared fixtures: where the real data lives, and a clear skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("CARDIOSEG_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Backend measurements and on-the-fly exports go to a folder of this test session, never the user's cache."""
    folder = tmp_path_factory.mktemp("cardioseg-cache")
    os.environ["CARDIOSEG_CACHE_DIR"] = str(folder)
    return folder


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


@pytest.fixture(scope="session")
def msd_prepared(msd_heart_la: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real MSD volumes (4 train, 1 val, 1 test), prepared at 64x64 with percentile normalisation; the raw
    copies are in ``msd_prepared.parent / "raw"``."""
    import shutil

    from cardioseg.config import load_config
    from cardioseg.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("msd")
    for sub in ("imagesTr", "labelsTr"):
        (root / "raw" / sub).mkdir(parents=True)
        for name in ("la_003", "la_004", "la_009", "la_010", "la_011", "la_016"):
            shutil.copy(msd_heart_la / sub / f"{name}.nii.gz", root / "raw" / sub / f"{name}.nii.gz")
    out = root / "prepared"
    prepare_dataset(load_config(overrides={"data.source": root / "raw", "data.prepared": out,
                                           "preprocess.size": [64, 64], "preprocess.normalize": "percentile",
                                           "data.split_ratios": [0.67, 0.17, 0.16]}), progress=False)
    return out


def copy_camus_patients(camus224: Path, dest: Path, patients: list[str]) -> Path:
    """A small CAMUS-PNG folder of real patients (all four views/phases each)."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for patient in patients:
        for split in ("train", "val"):
            for file in (camus224 / split).glob(f"{patient}_*.png"):
                shutil.copy(file, dest / file.name)
    return dest


@pytest.fixture(scope="session")
def camus64(camus224: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """camus224 LV endocardium prepared at 64x64, official split (shared by several tests)."""
    from cardioseg.config import load_config
    from cardioseg.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("prepared") / "camus64"
    cfg = load_config(overrides={"data.source": camus224, "data.prepared": out, "data.labels": {1: 1},
                                 "preprocess.size": [64, 64]})
    prepare_dataset(cfg, progress=False)
    return out


@pytest.fixture(scope="session")
def trained_run(camus64: Path, tmp_path_factory: pytest.TempPathFactory):
    """(config, TrainResult) of U-Net-ResNet18 trained 2 epochs on camus64: a model whose masks are smooth, as real ones are."""
    from cardioseg.config import load_config
    from cardioseg.training.run import train

    run_dir = tmp_path_factory.mktemp("runs") / "unet64"
    cfg = load_config(overrides={
        "data.prepared": camus64, "train.run_dir": run_dir, "model.arch": "unet", "model.encoder": "resnet18",
        "train.epochs": 2, "train.batch_size": 32, "train.lr": 0.003,
        "train.num_workers": 0, "train.checkpoint_every_n_steps": 25, "train.recalibrate_bn_batches": 4,
    })
    return cfg, train(cfg, progress=False)
