"""Every backend against PyTorch fp32 on real camus224 images; auto chooses by measuring; int8 is checked before it is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from inference_helpers import CAMUS_PRE, camus_files, make_bundle, network_inputs

from cardioseg.config import ExportConfig, load_config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import CheckpointError, ConfigError
from cardioseg.inference import backend_cache
from cardioseg.inference.autotune import candidates, measure_if_worthwhile
from cardioseg.inference.export import export_model
from cardioseg.inference.members import RunOptions, load_member
from cardioseg.inference.openvino_backend import openvino_available
from cardioseg.inference.predict import PredictResult, predict_files, tune_backends
from cardioseg.inference.quantize import mask_agreement, masks
from cardioseg.models.checkpoint import save_bundle
from cardioseg.runtime import cpu_supports_bf16

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")


@pytest.fixture(scope="module")
def images(camus224: Path) -> np.ndarray:
    """32 real camus224 validation images as the network sees them (N, H, W)."""
    return network_inputs(camus_files(camus224, 32), CAMUS_PRE).numpy()[:, 0]


@pytest.fixture(scope="module")
def multiclass_checkpoint(camus224: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = make_bundle("plain_unet", network_inputs(camus_files(camus224, 8), CAMUS_PRE), classes=4, base=8)
    return save_bundle(bundle, tmp_path_factory.mktemp("multi") / "camus4.safetensors")


def _probabilities(model: Path, backend: str, precision: str, images: np.ndarray, scratch: Path) -> np.ndarray:
    return load_member(model, RunOptions(backend, precision), scratch).backend.probabilities(images)


@needs_openvino
@pytest.mark.parametrize("which", ["camus_checkpoint", "multiclass_checkpoint"])
def test_openvino_and_onnx_fp32_match_pytorch(which: str, images: np.ndarray, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(which)
    reference = _probabilities(model, "torch", "32", images, tmp_path)
    for backend in ("onnx", "openvino"):
        got = _probabilities(model, backend, "32", images, tmp_path)
        assert got.shape == reference.shape
        assert np.abs(got - reference).max() < 1e-3, backend
        assert mask_agreement(masks(got), masks(reference)).minimum >= 0.99, backend


@needs_openvino
@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no bf16 kernels")
def test_openvino_bf16_masks_close_to_fp32(camus_checkpoint: Path, images: np.ndarray, tmp_path: Path) -> None:
    reference = masks(_probabilities(camus_checkpoint, "torch", "32", images, tmp_path))
    member = load_member(camus_checkpoint, RunOptions("openvino", "bf16"), tmp_path)
    assert member.precision == "bf16" and "OpenVINO bf16" in member.description
    got = masks(member.backend.probabilities(images))
    assert mask_agreement(got, reference).mean >= 0.98  # bf16 keeps 8 mantissa bits: near-threshold pixels flip


def test_onnx_refuses_bf16_and_torch_refuses_int8(camus_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no bf16"):
        load_member(camus_checkpoint, RunOptions("onnx", "bf16"), tmp_path)
    with pytest.raises(ConfigError, match="int8 runs on"):
        load_member(camus_checkpoint, RunOptions("torch", "int8"), tmp_path)
    with pytest.raises(CheckpointError, match="export -m MODEL --int8"):
        load_member(camus_checkpoint, RunOptions("onnx", "int8"), tmp_path)


def test_mask_agreement_by_hand() -> None:
    reference = np.zeros((3, 4, 4), np.uint8)
    reference[0, :2, :2] = 1  # 4 pixels
    candidate = reference.copy()
    candidate[0, 0, 2] = 1  # one extra pixel: Dice 2*4/(4+5) = 8/9
    candidate[1, 0, 0] = 1  # a pixel where the reference is empty: Dice 0
    agreement = mask_agreement(candidate, reference)
    assert agreement.dice.tolist() == pytest.approx([8 / 9, 0.0, 1.0])  # both empty counts as agreement
    multi = np.array([[[1, 2], [2, 2]]])
    # class 1: 1 of 2 reference pixels (Dice 2/3); class 2: 2 of 3 predicted (Dice 4/5): the worst class counts
    assert mask_agreement(multi, np.array([[[1, 2], [2, 1]]])).minimum == pytest.approx(2 / 3)


def test_auto_measures_chooses_an_acceptable_backend_and_caches_it(camus224: Path, camus_checkpoint: Path,
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOSEG_CACHE_DIR", str(tmp_path / "cache"))
    cfg = load_config(overrides={"predict.out_dir": tmp_path / "out"})
    inputs = camus_files(camus224, 16)
    choice = tune_backends(inputs, camus_checkpoint, cfg)
    offered = candidates(camus_checkpoint)
    assert {(t.backend, t.precision) for t in choice.trials} == set(offered)
    chosen = next(t for t in choice.trials if (t.backend, t.precision) == (choice.backend, choice.precision))
    assert chosen.accepted and chosen.min_dice >= 0.99
    assert chosen.images_per_s == max(t.images_per_s for t in choice.trials if t.accepted)
    member = load_member(camus_checkpoint, RunOptions("auto"), tmp_path)
    assert (member.backend_name, member.precision) == (choice.backend, choice.precision)
    assert member.why.startswith("measured on this machine")
    # a run too small to repay a measurement does not measure again; a cached choice is never measured twice
    assert measure_if_worthwhile(camus_checkpoint, RunOptions("auto"), 10_000, lambda: pytest.fail("measured"),
                                 tmp_path) is None


def test_a_measurement_from_another_cpu_is_not_reused(camus224: Path, camus_checkpoint: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOSEG_CACHE_DIR", str(tmp_path / "cache"))
    key = backend_cache.cache_key(["abc"], (64, 64), 16)
    backend_cache.remember(key, backend_cache.Choice("openvino", "int8", "measured"))
    assert backend_cache.cached_choice(key) is not None
    monkeypatch.setattr(backend_cache, "machine_fingerprint", lambda: {"cpu": "Intel Xeon with AMX", "flags": ["amx_bf16"]})
    assert backend_cache.cached_choice(backend_cache.cache_key(["abc"], (64, 64), 16)) is None


def test_small_runs_use_the_rule_until_measured(camus224: Path, camus_checkpoint: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOSEG_CACHE_DIR", str(tmp_path / "cache"))
    cfg = load_config(overrides={"predict.out_dir": tmp_path / "out"})
    result = predict_files(camus_files(camus224, 2), [camus_checkpoint], cfg)
    assert result.backends == [f"{camus_checkpoint.name} on PyTorch {'bf16' if cpu_supports_bf16() else 'fp32'}"]
    assert result.why[0].startswith("not measured yet")


def _prepared_copy(camus64: Path, dest: Path) -> Path:
    shutil.copytree(camus64, dest)
    return dest


def _trained_copy(trained_run, folder: Path) -> Path:
    """The session's trained U-Net-ResNet18 (camus64's plan), copied so that exports land beside the copy."""
    return Path(shutil.copy(trained_run[1].model_path, folder / "model.safetensors"))


def test_int8_export_checked_on_held_out_images(camus64: Path, trained_run, tmp_path: Path) -> None:
    model = _trained_copy(trained_run, tmp_path)
    result = export_model(model, ExportConfig(int8=True, calibration=camus64))
    assert result.path == tmp_path / "model.int8.onnx" and result.int8 is not None
    assert result.int8.minimum >= 0.99 and len(result.int8.dice) == 64
    for backend in ("onnx", "openvino") if openvino_available() else ("onnx",):
        member = load_member(model, RunOptions(backend, "int8"), tmp_path)
        assert member.precision == "int8" and member.runs.startswith("as model.int8.onnx")
    assert ("onnx", "int8") in candidates(model)


def test_int8_export_refused_with_a_bad_calibration_set(camus64: Path, trained_run, tmp_path: Path) -> None:
    bad = _prepared_copy(camus64, tmp_path / "bad")
    images = np.load(bad / "images.npy")
    train = PreparedDataset(bad).indices("train")
    images[train] = images[train] * 0.02  # calibrated on near-black images: real intensities saturate the int8 range
    np.save(bad / "images.npy", images)
    model = _trained_copy(trained_run, tmp_path)
    with pytest.raises(CheckpointError, match=r"fall below Dice 0.99 of fp32 on held-out images: worst 0\.\d+"):
        export_model(model, ExportConfig(int8=True, calibration=bad))
    assert not (tmp_path / "model.int8.onnx").exists() and not list(tmp_path.glob(".model.int8*"))


def test_int8_needs_a_calibration_set_prepared_like_the_model(camus64: Path, camus_checkpoint: Path, tmp_path: Path,
                                                               camus224: Path) -> None:
    with pytest.raises(ConfigError, match="needs --calibration"):
        export_model(camus_checkpoint, ExportConfig(int8=True, out=tmp_path / "x.onnx"))
    other = make_bundle("plain_unet", network_inputs(camus_files(camus224, 4), CAMUS_PRE.model_copy(update={"size": (48, 48)})),
                        pre=CAMUS_PRE.model_copy(update={"size": (48, 48)}), base=8)
    model = save_bundle(other, tmp_path / "m48.safetensors")
    with pytest.raises(ConfigError, match=r"prepared differently .*size"):
        export_model(model, ExportConfig(int8=True, calibration=camus64))


@pytest.mark.parametrize("overlays", [False, True])
def test_pipelined_predict_writes_exactly_the_sequential_outputs(camus224: Path, camus_checkpoint: Path,
                                                                 tmp_path: Path, overlays: bool) -> None:
    inputs = camus_files(camus224, 37)  # three batches of 16, the last one partial
    results = {}
    for pipelined in (False, True):
        cfg = load_config(overrides={"predict.out_dir": tmp_path / str(pipelined), "predict.pipeline": pipelined,
                                     "predict.backend": "torch", "predict.precision": "32",
                                     "predict.overlays": overlays})
        results[pipelined] = predict_files(inputs, [camus_checkpoint], cfg)
    sequential, pipelined = results[False], results[True]
    def table(result: PredictResult) -> list[list[str]]:  # output paths relative to their folder, other cells as written
        return result.outputs.map(lambda v: str(v).replace(str(result.out_dir), "OUT")).values.tolist()

    assert table(sequential) == table(pipelined)
    written = sorted(p.relative_to(tmp_path / "False") for p in (tmp_path / "False").rglob("*.png"))
    assert written == sorted(p.relative_to(tmp_path / "True") for p in (tmp_path / "True").rglob("*.png"))
    assert len(written) == 37 * (2 if overlays else 1)
    for name in written:
        assert (tmp_path / "False" / name).read_bytes() == (tmp_path / "True" / name).read_bytes(), name


def test_tune_then_predict_says_what_auto_chose_and_why(camus224: Path, camus_checkpoint: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cardioseg.cli import app

    monkeypatch.setenv("CARDIOSEG_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "images"
    folder.mkdir()
    for source in camus_files(camus224, 4):
        shutil.copy(source, folder / source.name)
    before = CliRunner().invoke(app, ["predict", str(folder), "-m", str(camus_checkpoint), "-o", str(tmp_path / "a"), "-q"])
    assert before.exit_code == 0 and "cardioseg tune" in before.output  # four images: not measured, a hint instead
    tuned = CliRunner().invoke(app, ["tune", str(folder), "-m", str(camus_checkpoint)])
    assert tuned.exit_code == 0, tuned.output
    chosen = next(line for line in tuned.output.splitlines() if "chosen" in line).split("│")
    backend, precision = chosen[1].strip(), chosen[2].strip()
    after = CliRunner().invoke(app, ["predict", str(folder), "-m", str(camus_checkpoint), "-o", str(tmp_path / "b"),
                                     "-q", "-v"])
    said = " ".join(after.output.split())
    assert after.exit_code == 0 and f"measured on this machine: {backend} {precision} was fastest" in said
    assert "cardioseg tune" not in said
