"""Exported models against PyTorch on real images: the in-graph normalisation, sidecars, refusals.

(Every registered architecture is exported and compared in tests/models/test_model_contract.py.)

Parity is judged on masks from real camus224 images. The models are randomly initialised with a
fixed seed and their head calibrated (see ``inference_helpers``) so that the masks are neither
empty nor noise; both sides threshold their own probabilities at 0.5. The probabilities are also
compared directly. The full sweep over the registry is marked slow; a handful runs by default.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_helpers import camus_files, make_bundle
from torch import nn
from typer.testing import CliRunner

from cardioseg.artifacts import find_export, read_sidecar, sidecar_path
from cardioseg.cli import app
from cardioseg.config import ExportConfig, ModelConfig, PreprocessConfig, load_config
from cardioseg.data.preprocess import Pipeline, normalize
from cardioseg.data.readers.base import read_raster
from cardioseg.errors import CheckpointError
from cardioseg.inference.export import deployable, export_bundle
from cardioseg.inference.onnx_backend import OnnxBackend, open_session
from cardioseg.inference.predict import predict_files
from cardioseg.inference.torch_backend import TorchBackend
from cardioseg.models.checkpoint import ModelBundle
from cardioseg.models.registry import get_model_entry
from cardioseg.plan import Plan

DEFAULT_ARCHS = ["unet", "pspnet", "pan", "plain_unet"]


def _raw_and_normalised(files: list[Path], pre: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Raw resized intensities (the deployed input) and prepare-normalised images (predict's input)."""
    raw_pipeline = Pipeline(pre.model_copy(update={"normalize": "none"}), "transpose")
    pipeline = Pipeline(pre, "transpose")
    images = [read_raster(f) for f in files]
    return (np.stack([raw_pipeline.image(image)[0] for image in images]),
            np.stack([pipeline.image(image)[0] for image in images]))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def _parity(arch: str, camus224: Path, tmp_path: Path) -> None:
    size = 128 if arch == "pan" else 64  # PAN's pyramid pooling needs 1/16 features of at least 8x8
    pre = PreprocessConfig(size=(size, size))
    raw, normalised = _raw_and_normalised(camus_files(camus224, 8), pre)
    options = {} if get_model_entry(arch).uses_encoder else {"base": 8}
    bundle = make_bundle(arch, torch.from_numpy(normalised)[:, None], pre, **options)
    exported = export_bundle(bundle, tmp_path / f"{arch}.onnx", ExportConfig()).path

    # The deployed artefact: raw intensities in, normalised per image inside the graph.
    with torch.no_grad():
        expected = deployable(bundle)(torch.from_numpy(raw)[:, None]).numpy()[:, 0]
    got = open_session(exported).run(None, {"image": raw[:, None]})[0][:, 0]
    assert 0.2 < (expected > 0.5).mean() < 0.8, "calibrated masks cover about half the image"
    assert np.abs(got - expected).max() < 1e-3
    assert min(_dice(a > 0.5, b > 0.5) for a, b in zip(got, expected)) >= 0.99

    # What `predict --backend onnx` does: prepare-normalised images and identity statistics.
    on_ort = OnnxBackend(exported).probabilities(normalised)
    on_torch = TorchBackend(bundle, precision="32", channels_last=False).probabilities(normalised)
    assert np.abs(on_ort - on_torch).max() < 1e-3
    assert min(_dice(a > 0.5, b > 0.5) for a, b in zip(on_ort[:, 0], on_torch[:, 0])) >= 0.99


@pytest.mark.parametrize("arch", DEFAULT_ARCHS)
def test_onnx_masks_match_pytorch(arch: str, camus224: Path, tmp_path: Path) -> None:
    _parity(arch, camus224, tmp_path)


def _unit_bundle(method: str) -> ModelBundle:
    """A 1x1 convolution with weight 1: the output is sigmoid(normalised image)."""
    conv = nn.Conv2d(1, 1, 1)
    nn.init.ones_(conv.weight)
    nn.init.zeros_(conv.bias)
    pre = PreprocessConfig(normalize=method, percentiles=(2.0, 98.0), size=(64, 64))
    return ModelBundle(conv.eval(), ModelConfig(), Plan(preprocess=pre))


@pytest.mark.parametrize("method", ["minmax", "percentile", "zscore", "none"])
def test_graph_normalisation_is_numpys(method: str, camus224: Path, tmp_path: Path) -> None:
    bundle = _unit_bundle(method)
    raw, _ = _raw_and_normalised(camus_files(camus224, 3), bundle.plan.preprocess.model_copy(update={"normalize": "none"}))
    session = open_session(export_bundle(bundle, tmp_path / "unit.onnx", ExportConfig()).path)
    per_image = session.run(None, {"image": raw[:, None]})[0][:, 0]
    expected = np.stack([normalize(image, method, (2.0, 98.0)) for image in raw])
    np.testing.assert_allclose(per_image, 1 / (1 + np.exp(-expected)), atol=1e-5)
    # Given statistics (a volume's) apply to every image of the batch.
    given = session.run(None, {"image": raw[:, None], "stats": np.array([10.0, 200.0], np.float32)})[0][:, 0]
    if method == "zscore":
        fixed = (raw - 10.0) / 200.0
    elif method == "none":
        fixed = raw
    else:
        fixed = np.clip((raw - 10.0) / 190.0, 0, 1)
    np.testing.assert_allclose(given, 1 / (1 + np.exp(-fixed)), atol=1e-5)


def test_torchscript_export_matches_pytorch(camus224: Path, tmp_path: Path) -> None:
    pre = PreprocessConfig(size=(64, 64), normalize="percentile")
    raw, normalised = _raw_and_normalised(camus_files(camus224, 4), pre)
    bundle = make_bundle("plain_unet", torch.from_numpy(normalised)[:, None], pre, base=8)
    result = export_bundle(bundle, tmp_path / "plain_unet.torchscript.pt", ExportConfig(format="torchscript"))
    assert result.max_abs_diff < 1e-4
    with pytest.warns(FutureWarning):  # TorchScript is deprecated in torch 2.14, still loadable
        loaded = torch.jit.load(str(result.path))
    with torch.no_grad():
        expected = deployable(bundle)(torch.from_numpy(raw)[:, None])
        np.testing.assert_allclose(loaded(torch.from_numpy(raw)[:, None]).numpy(), expected.numpy(), atol=1e-4)
        stats = torch.tensor([0.0, 1.0])
        np.testing.assert_allclose(loaded(torch.from_numpy(normalised)[:, None], stats).numpy(),
                                   deployable(bundle)(torch.from_numpy(normalised)[:, None], stats).numpy(), atol=1e-4)
    assert read_sidecar(result.path)["header"]["model"]["arch"] == "plain_unet"


@pytest.fixture(scope="module")
def exported_checkpoint(camus_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the test checkpoint, exported next to itself by the CLI."""
    folder = tmp_path_factory.mktemp("exported")
    checkpoint = Path(shutil.copy(camus_checkpoint, folder / "model.safetensors"))
    result = CliRunner().invoke(app, ["export", "--model", str(checkpoint)])
    assert result.exit_code == 0, result.output
    return checkpoint, folder / "model.onnx"


def test_cli_export_writes_model_and_sidecar(exported_checkpoint: tuple[Path, Path]) -> None:
    checkpoint, onnx_file = exported_checkpoint
    meta = json.loads(sidecar_path(onnx_file).read_text())
    assert meta["header"]["plan"]["orientation"] == "transpose"
    assert meta["inputs"]["image"]["shape"] == ["batch", 1, 64, 64]
    assert "CLAHE" in meta["outside_graph"]
    assert find_export(checkpoint) == onnx_file


def test_export_that_drifts_from_pytorch_is_refused(camus_checkpoint: Path, tmp_path: Path) -> None:
    """A parity gap above export.max_prob_diff fails the export, and the earlier file is left as it was."""
    target = tmp_path / "model.onnx"
    target.write_bytes(b"an earlier export")
    result = CliRunner().invoke(app, ["export", "-m", str(camus_checkpoint), "-o", str(target),
                                      "--set", "export.max_prob_diff=1e-12"])
    assert result.exit_code == 1 and "differs from PyTorch" in result.output
    assert target.read_bytes() == b"an earlier export" and not sidecar_path(target).exists()


def test_predict_with_onnx_equals_torch(camus224: Path, exported_checkpoint: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, onnx_file = exported_checkpoint
    images = camus_files(camus224, 3)
    runs = {"torch": (checkpoint, "torch"), "auto": (checkpoint, "auto"), "file": (onnx_file, "onnx")}
    probs = {}
    for name, (model, backend) in runs.items():
        cfg = load_config(overrides={"predict.out_dir": tmp_path / name, "predict.backend": backend,
                                     "predict.precision": "32", "predict.probabilities": True})
        result = predict_files(images, [model], cfg)
        engine = "PyTorch fp32" if name == "torch" else "ONNX Runtime fp32"
        expected = {"torch": "", "auto": f" (as {onnx_file.name}, the export next to it; --backend torch runs the checkpoint)",
                    "file": ""}[name]
        assert result.backends == [f"{model.name} on {engine}{expected}"]
        if name == "auto":  # three images: too few to measure, so the rule without a measurement ran
            assert result.why == ["not measured yet for this model on this machine; an ONNX export is at hand"]
        probs[name] = np.stack([np.load(tmp_path / name / f"{p.stem}_prob.npy") for p in images])
    np.testing.assert_allclose(probs["auto"], probs["torch"], atol=1e-4)
    np.testing.assert_allclose(probs["file"], probs["torch"], atol=1e-4)


def test_sidecar_from_a_newer_version_is_refused(exported_checkpoint: tuple[Path, Path], tmp_path: Path) -> None:
    _, onnx_file = exported_checkpoint
    copy = Path(shutil.copy(onnx_file, tmp_path / "model.onnx"))
    meta = json.loads(sidecar_path(onnx_file).read_text())
    assert read_sidecar(copy)["header"] == meta["header"], "without a sidecar, the embedded copy is read"
    sidecar_path(copy).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="v99 is not supported") as caught:
        read_sidecar(copy)
    assert caught.value.path == sidecar_path(copy)


def test_stale_export_is_not_used(exported_checkpoint: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, onnx_file = exported_checkpoint
    moved = Path(shutil.copy(checkpoint, tmp_path / "model.safetensors"))
    shutil.copy(onnx_file, tmp_path / "model.onnx")
    sidecar = json.loads(sidecar_path(onnx_file).read_text())
    sidecar_path(tmp_path / "model.onnx").write_text(json.dumps({**sidecar, "checkpoint_sha256": "0" * 64}))
    assert find_export(moved) is None
