"""Offline augmentation enlarges only the training split, reproducibly."""

from pathlib import Path

import numpy as np

from cardioseg.config import load_config
from cardioseg.data.offline_augment import augment_offline
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from tests.conftest import copy_camus_patients


def prepared_patients(camus224: Path, tmp_path: Path, count: int) -> Path:
    """The first ``count`` camus224 patients prepared at 32x32 (LV only)."""
    source = copy_camus_patients(camus224, tmp_path / "raw", [f"patient{i:04d}" for i in range(1, count + 1)])
    prepared = tmp_path / "prepared"
    prepare_dataset(load_config(overrides={"data.source": source, "data.prepared": prepared, "data.labels": {1: 1},
                                           "preprocess.size": [32, 32]}), progress=False)
    return prepared


def test_training_split_grows_tenfold_and_others_stay(camus224: Path, tmp_path: Path) -> None:
    prepared = prepared_patients(camus224, tmp_path, 10)
    base = PreparedDataset(prepared)
    out = PreparedDataset(augment_offline(prepared, tmp_path / "x10", copies=10, seed=3))
    n_train = len(base.indices("train"))
    assert len(out.indices("train")) == 11 * n_train
    assert len(out.indices("val")) == len(base.indices("val")) and len(out.indices("test")) == len(base.indices("test"))
    assert out.manifest.sample_id.is_unique
    np.testing.assert_array_equal(out.images[: len(base.images)], base.images)  # originals kept as they were
    copies = out.images[len(base.images):]
    assert not np.allclose(copies[:n_train], base.images[base.indices("train")])  # copies really differ
    assert set(np.unique(out.labels)) <= {0, 1}
    again = PreparedDataset(augment_offline(prepared, tmp_path / "again", copies=10, seed=3))
    np.testing.assert_array_equal(again.images, out.images)  # same seed, same copies


def test_cli_writes_the_augmented_dataset_and_names_a_missing_source(camus224: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cardioseg.cli import app

    prepared = prepared_patients(camus224, tmp_path, 5)
    n_train = len(PreparedDataset(prepared).indices("train"))
    result = CliRunner().invoke(app, ["augment", str(prepared), "-o", str(tmp_path / "x2"), "--copies", "2"])
    assert result.exit_code == 0, result.output
    assert len(PreparedDataset(tmp_path / "x2").indices("train")) == 3 * n_train
    missing = CliRunner().invoke(app, ["augment", str(tmp_path / "nowhere"), "-o", str(tmp_path / "y")])
    assert missing.exit_code == 1
    assert "nowhere" in missing.output and "Traceback" not in missing.output
