"""`cardioseg compare`: the same random cases across models, each segmented through its own plan."""

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.config import ModelConfig, load_config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.compare import compare_models, pick_cases
from cardioseg.models.checkpoint import ModelBundle, load_bundle, save_bundle
from cardioseg.models.factory import build_model


def threshold_model(trained: Path, out: Path) -> Path:
    """A threshold baseline with the trained model's plan: a second, much worse, column."""
    plan = load_bundle(trained).plan
    cfg = ModelConfig(arch="threshold", encoder=None, options={"structure": "dark", "threshold": 0.2})
    return save_bundle(ModelBundle(build_model(cfg), cfg, plan), out)


def test_the_trained_network_beats_the_threshold_on_the_same_cases(trained_run, camus64: Path, tmp_path: Path) -> None:
    _, result = trained_run
    baseline = threshold_model(result.model_path, tmp_path / "baseline" / "model.safetensors")
    cfg = load_config(overrides={"evaluate.split": "val"})
    compared = compare_models([result.model_path, baseline], camus64, cfg, tmp_path / "c.png", n_cases=4, seed=3,
                              names=["U-Net", "threshold"])
    assert list(compared.dice.columns) == ["U-Net", "threshold"]
    assert list(compared.dice.index) == pick_cases(PreparedDataset(camus64), "val", 4, 3)  # seeded: the same cases
    assert (compared.dice["U-Net"] > compared.dice["threshold"]).all()
    assert compared.dice["U-Net"].mean() > 0.6
    grid = np.asarray(Image.open(compared.figure).convert("RGB"))
    assert grid.std() > 10  # images, not a blank page


def test_cli_prints_the_table_and_refuses_to_overwrite(trained_run, camus64: Path, tmp_path: Path) -> None:
    _, result = trained_run
    baseline = threshold_model(result.model_path, tmp_path / "baseline" / "model.safetensors")
    out = tmp_path / "figure.png"
    args = ["compare", "-m", str(result.model_path), "-m", str(baseline), "-d", str(camus64), "--cases", "2",
            "--split", "val", "-o", str(out)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    assert "baseline" in run.output and "mean" in run.output and out.is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "--overwrite" in again.output
