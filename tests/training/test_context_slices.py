"""2.5D input: a volume's plane with its neighbours as channels, the same in training and prediction."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.config import PreprocessConfig, load_config
from cardioseg.data.dataset import SliceDataset, WindowDataset
from cardioseg.data.prepared import PreparedDataset, context_rows
from cardioseg.data.preprocess import ArrayPlanes, Pipeline
from cardioseg.errors import ConfigError
from cardioseg.inference.pipeline import with_context
from cardioseg.models.checkpoint import load_bundle
from cardioseg.training.run import train, training_config


def test_neighbours_stay_in_their_volume_and_repeat_its_end_planes() -> None:
    manifest = pd.DataFrame({"case_id": ["a"] * 4 + ["b"] + ["c"] * 2, "slice_index": [0, 1, 2, 3, -1, 0, 1]})
    rows = np.arange(7)
    assert context_rows(manifest, rows, 1).tolist() == [
        [0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3],  # volume a: its ends repeat
        [4, 4, 4],  # a 2D image is its own neighbour
        [5, 5, 6], [5, 6, 6],  # volume c never borrows a plane of a or b
    ]
    assert context_rows(manifest, np.array([1]), 2).tolist() == [[0, 0, 1, 2, 3]]
    assert context_rows(manifest, rows, 0).tolist() == [[r] for r in rows]


def test_prediction_stacks_a_volume_as_training_does() -> None:
    """Plane k of a volume holds the value k; min-max over the volume maps it to k / 3."""
    volume = np.broadcast_to(np.arange(4, dtype=np.float32), (8, 8, 4)).copy()
    fitted = Pipeline(PreprocessConfig(size=(8, 8))).fit(ArrayPlanes(volume, 2))
    indices = range(0, 4)
    stacked = with_context(fitted, indices, 4, 1, [fitted.image(k) for k in indices])
    assert stacked.shape == (4, 3, 8, 8)
    means = stacked.mean(axis=(2, 3)) * 3
    assert np.allclose(means, [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]], atol=1e-5)
    # planes of a later batch still see their neighbours from the batch before
    tail = with_context(fitted, range(3, 4), 4, 1, [fitted.image(3)])
    assert np.allclose(tail.mean(axis=(2, 3)) * 3, [[2, 3, 3]], atol=1e-5)


def test_a_2d_dataset_refuses_neighbouring_planes(camus64: Path) -> None:
    cfg = load_config(overrides={"data.prepared": camus64, "model.context_slices": 1})
    with pytest.raises(ConfigError, match="2D images"):
        training_config(cfg, PreparedDataset(camus64))


def test_a_2_5d_model_trains_and_segments_a_real_volume_on_its_grid(msd_prepared: Path, tmp_path: Path) -> None:
    prepared = PreparedDataset(msd_prepared)
    dataset = SliceDataset(prepared, "train", binary=True, context=1)
    image, _ = dataset[5]
    rows = dataset.rows
    assert image.shape == (3, 64, 64)
    # the middle channel is the plane itself, the others its neighbours in the same volume
    assert np.array_equal(image[1].numpy(), prepared.images[rows[5]])
    assert np.array_equal(image[0].numpy(), prepared.images[rows[4]])
    assert np.array_equal(image[2].numpy(), prepared.images[rows[6]])

    cfg = load_config(overrides={"data.prepared": msd_prepared, "train.run_dir": tmp_path / "run",
                                 "model.context_slices": 1, "train.epochs": 1, "train.batches_per_epoch": 3,
                                 "train.num_workers": 0, "train.precision": "32", "train.epoch_images": 2})
    run = train(cfg, progress=False)
    bundle = load_bundle(run.model_path)
    assert bundle.plan.context_slices == 1 and bundle.plan.in_channels == 3
    first_conv = next(p for p in bundle.model.parameters() if p.ndim == 4)
    assert first_conv.shape[1] == 3
    assert (tmp_path / "run" / "epochs" / "epoch_000.png").is_file()

    source = msd_prepared.parent / "raw" / "imagesTr" / "la_016.nii.gz"
    for backend in ("torch", "onnx"):
        out = tmp_path / f"pred_{backend}"
        result = CliRunner().invoke(app, ["predict", "-m", str(run.model_path), str(source), "-o", str(out), "-q",
                                          "--backend", backend])
        assert result.exit_code == 0, result.output
        mask = nib.load(out / "la_016_mask.nii.gz")
        original = nib.load(source)
        assert mask.shape == original.shape and np.allclose(mask.affine, original.affine)


def test_a_3d_network_trains_on_windows_and_segments_a_real_volume_on_its_grid(msd_prepared: Path,
                                                                                tmp_path: Path) -> None:
    prepared = PreparedDataset(msd_prepared)
    windows = WindowDataset(prepared, "val", binary=True, planes=32, random=False)
    volume_rows = windows.volumes[0]
    # fixed windows tile the volume from its first plane, the last one flush with its end
    starts = [start for v, start in windows.windows if v == 0]
    assert starts[0] == 0 and starts[-1] == len(volume_rows) - 32 and len(starts) == -(-len(volume_rows) // 32)
    image, label = windows[len(starts) - 1]
    assert image.shape == (1, 32, 64, 64) and label.shape == (1, 32, 64, 64)
    assert np.array_equal(image[0, -1].numpy(), prepared.images[volume_rows[-1]])

    cfg = load_config(overrides={"data.prepared": msd_prepared, "train.run_dir": tmp_path / "run", "model.arch": "unet3d",
                                 "train.epochs": 1, "train.batches_per_epoch": 2, "train.batch_size": 2,
                                 "train.num_workers": 0, "train.precision": "32"})
    run = train(cfg, progress=False)
    bundle = load_bundle(run.model_path)
    assert bundle.plan.spatial_dims == 3 and bundle.plan.window_planes == 32
    source = msd_prepared.parent / "raw" / "imagesTr" / "la_016.nii.gz"
    out = tmp_path / "pred"
    result = CliRunner().invoke(app, ["predict", "-m", str(run.model_path), str(source), "-o", str(out), "-q",
                                      "--tta"])
    assert result.exit_code == 0, result.output
    mask, original = nib.load(out / "la_016_mask.nii.gz"), nib.load(source)
    assert mask.shape == original.shape and np.allclose(mask.affine, original.affine)
    # what a 3D network cannot do is refused with the reason
    refused = CliRunner().invoke(app, ["predict", "-m", str(run.model_path), str(source), "-o", str(tmp_path / "o"),
                                       "--backend", "onnx"])
    assert refused.exit_code != 0 and "PyTorch only" in refused.output
    with pytest.raises(ConfigError, match="augmentations are 2D"):
        training_config(cfg.model_copy(update={"train": cfg.train.model_copy(
            update={"augment": cfg.train.augment.model_copy(update={"preset": "light"})})}), prepared)
