"""OpenVINO inference on CPU from an exported ONNX file (fp32 or the int8 one of `export --int8`).

OpenVINO runs the same graph as ONNX Runtime but with its own CPU kernels: bf16 on CPUs with
AVX-512-BF16 or AMX, and int8 (the QDQ file's quantised convolutions) with VNNI/AMX tiles. The
export's optional ``stats`` input carries a NaN default as an initializer, which OpenVINO would
fold into a constant; it is removed before reading, so the images the pipeline normalised are
fed with identity statistics exactly as on the other backends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cardioseg.data.preprocess import IDENTITY_STATS
from cardioseg.errors import CheckpointError
from cardioseg.inference.backend import BatchedBackend, network_input

if TYPE_CHECKING:
    import openvino as ov

PRECISION_HINTS = {"32": "f32", "bf16": "bf16", "int8": "f32"}
"""OpenVINO's inference precision for the layers a file keeps in float: int8 files run their
unquantised layers (first and last convolution, activations) in f32, as ONNX Runtime does."""


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _without_stats_default(path: Path) -> bytes:
    """The ONNX file's bytes with the ``stats`` initializer dropped, so ``stats`` stays a real input."""
    import onnx

    proto = onnx.load(str(path))
    kept = [t for t in proto.graph.initializer if t.name != "stats"]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    return proto.SerializeToString()


def read_model(path: Path) -> ov.Model:
    """The export as an OpenVINO model, its ``stats`` a real input (see the module docstring)."""
    import openvino as ov

    try:
        return ov.Core().read_model(_without_stats_default(path), b"")
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own for unreadable graphs
        raise CheckpointError(f"OpenVINO cannot read this model ({str(exc)[:300]})", path) from exc


def compile_model(model: ov.Model, precision: str, threads: int | None = None, hint: str = "LATENCY") -> ov.CompiledModel:
    """By default one stream using every core (the LATENCY hint): with batches of 16 on a few cores it beat
    the THROUGHPUT hint's several streams by about 2x on a 2-core EPYC (benchmarks/RESULTS.md, ``-throughput`` rows)."""
    import openvino as ov

    config: dict[str, str] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": hint}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return ov.Core().compile_model(model, "CPU", config)


class OpenVinoBackend(BatchedBackend):
    """Normalised images (N, H, W) -> probabilities (N, C, H, W) through OpenVINO's CPU plugin.

    The graph is compiled once, for the batch size (a static shape: OpenVINO's CPU kernels are
    faster on it than on a dynamic batch, 17% for int8 here); a smaller last batch is padded to it.
    """

    def __init__(self, path: Path, precision: str = "32", batch_size: int = 16, threads: int | None = None,
                 hint: str = "LATENCY") -> None:
        self.path = Path(path)
        self.precision = precision
        model = read_model(self.path)
        self.channels, height, width = (int(d.get_length()) for d in list(model.input("image").get_partial_shape())[1:])
        model.reshape({"image": [batch_size, self.channels, height, width]})
        try:
            self.request = compile_model(model, precision, threads, hint).create_infer_request()
        except Exception as exc:  # OpenVINO's own RuntimeError subclasses
            raise CheckpointError(f"OpenVINO cannot compile this model ({str(exc)[:300]})", self.path) from exc
        self.batch_size = batch_size
        self.stats = np.asarray(IDENTITY_STATS, np.float32)
        self.seconds = 0.0
        self.images_seen = 0

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        x = network_input(batch, self.channels)
        if len(x) < self.batch_size:  # a run's last, partial batch: padding costs less than compiling its shape
            x = np.concatenate([x, np.zeros((self.batch_size - len(x), *x.shape[1:]), np.float32)])
        started = time.perf_counter()
        out = self.request.infer({"image": x, "stats": self.stats})[0]
        result = np.array(out[: len(batch)], dtype=np.float32)  # the request reuses its output buffer on the next call
        self.seconds += time.perf_counter() - started
        self.images_seen += len(batch)
        return result
