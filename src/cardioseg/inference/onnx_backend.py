"""ONNX Runtime inference on CPU, with the same interface as the PyTorch ``TorchBackend``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cardioseg.data.preprocess import IDENTITY_STATS
from cardioseg.errors import CheckpointError
from cardioseg.inference.backend import BatchedBackend, network_input

if TYPE_CHECKING:
    import onnxruntime as ort


def open_session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    """An ORT CPU session with every graph optimisation on; its routine warnings silenced.

    (ORT warns that ``stats`` is an initializer listed as an input: that is what makes it optional.)
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
        raise CheckpointError(f"ONNX Runtime cannot load this model ({str(exc)[:300]})", path) from exc


def onnx_parameter_count(path: Path) -> int:
    """Number of weights stored in an ONNX file (its float initializers, the ``stats`` default excluded)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    total = 0
    for tensor in proto.graph.initializer:
        if tensor.name != "stats" and tensor.data_type == onnx.TensorProto.FLOAT:
            total += int(np.prod(tensor.dims)) if len(tensor.dims) else 1
    return total


class OnnxBackend(BatchedBackend):
    """Normalised images (N, H, W) -> probabilities (N, C, H, W) through an exported ONNX file.

    Images arrive normalised exactly as for PyTorch, so the graph's own normalisation is given
    identity statistics. A file exported with a fixed batch of 1 is run one image at a time.
    """

    def __init__(self, path: Path, batch_size: int = 16, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads)
        batch_dim, self.channels = self.session.get_inputs()[0].shape[:2]
        self.batch_size = batch_size if not isinstance(batch_dim, int) else batch_dim
        self.stats = np.asarray(IDENTITY_STATS, np.float32)
        self.seconds = 0.0
        self.images_seen = 0

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        x = network_input(batch, self.channels)
        started = time.perf_counter()
        out = self.session.run(None, {"image": x, "stats": self.stats})[0]
        self.seconds += time.perf_counter() - started
        self.images_seen += len(batch)
        return out
