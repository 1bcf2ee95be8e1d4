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
