"""`cardioseg inspect` on real prepared data: counts, the overlay grid and the preprocessing-steps figure."""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.data.prepared import PreparedDataset


def test_echo_and_volume_datasets(camus_small: PreparedDataset, msd_small: PreparedDataset, tmp_path: Path) -> None:
    for prepared in (camus_small, msd_small):
        root = Path(shutil.copytree(prepared.root, tmp_path / prepared.root.parent.name))
        run = CliRunner().invoke(app, ["inspect", str(root)])
        assert run.exit_code == 0, run.output
        assert "preprocessing steps" in run.output
        steps = np.asarray(Image.open(root / "inspect_preprocessing.png").convert("L"))
        assert steps.std() > 10  # images, not a blank page
        assert (root / "inspect_overlays.png").is_file()
    assert "test" in run.output and "patients" in run.output
