"""Model files from untrusted sources: loading never executes code."""

import pickle
from pathlib import Path

import pytest

from cardioseg.errors import CheckpointError
from cardioseg.models.checkpoint import load_bundle
from cardioseg.models.smp_models import read_weights_file


class _Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    return path


@pytest.mark.parametrize("name", ["model.safetensors", "weights.pt", "weights.pth"])
def test_pickled_payload_is_refused_without_running(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "code_ran"
    path = _malicious(tmp_path / name, marker)
    with pytest.raises(CheckpointError) as failure:
        load_bundle(path) if name.endswith(".safetensors") else read_weights_file(path)
    assert name in str(failure.value)
    assert not marker.exists()


def _with_header(tmp_path: Path, header: object) -> Path:
    """A real safetensors file whose cardioseg header is ``header`` (JSON text as given)."""
    import json

    import torch
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    text = header if isinstance(header, str) else json.dumps(header)
    save_file({"w": torch.zeros(2)}, str(path), metadata={"cardioseg": text})
    return path


GOOD_MODEL = {"arch": "plain_unet", "encoder": None, "classes": 1, "options": {"base": 8, "depth": 3}}


@pytest.mark.parametrize("header", [
    "[1, 2]",                                                     # JSON, not an object
    "{not json",
    {"format": "cardioseg-model", "format_version": "two", "model": GOOD_MODEL},
    {"format": "something-else", "format_version": 2, "model": GOOD_MODEL},
    {"format": "cardioseg-model", "format_version": 2, "model": "plain_unet"},
    {"format": "cardioseg-model", "format_version": 2, "model": GOOD_MODEL},  # no plan
    {"format": "cardioseg-model", "format_version": 2, "model": {**GOOD_MODEL, "classes": "many"}, "plan": {}},
    {"format": "cardioseg-model", "format_version": 2, "model": GOOD_MODEL, "plan": {"classes": 3}},
    {"format": "cardioseg-model", "format_version": 1, "model": GOOD_MODEL},  # v1 without its extra fields
    {"format": "cardioseg-model", "format_version": 1, "model": GOOD_MODEL, "extra": "x"},
], ids=["list", "not-json", "version-text", "other-format", "model-text", "no-plan", "bad-classes", "bad-plan",
        "v1-bare", "v1-extra-text"])
def test_malformed_headers_are_one_checkpoint_error(tmp_path: Path, header: object) -> None:
    from cardioseg.artifacts import load_plan

    path = _with_header(tmp_path, header)
    for read in (load_bundle, load_plan):
        with pytest.raises(CheckpointError) as failure:
            read(path)
        assert "model.safetensors" in str(failure.value)


@pytest.mark.parametrize("sidecar", ["[1]", '{"format": "cardioseg-export", "format_version": "two"}',
                                     '{"format": "cardioseg-export", "format_version": 2, "header": {"model": 1}}'],
                         ids=["list", "version-text", "bad-header"])
def test_malformed_export_sidecars_are_one_checkpoint_error(tmp_path: Path, sidecar: str) -> None:
    from cardioseg.artifacts import read_sidecar, sidecar_path

    exported = tmp_path / "model.onnx"
    exported.write_bytes(b"not looked at: the sidecar is read first")
    sidecar_path(exported).write_text(sidecar)
    with pytest.raises(CheckpointError) as failure:
        read_sidecar(exported)
    assert sidecar_path(exported).name in str(failure.value)
