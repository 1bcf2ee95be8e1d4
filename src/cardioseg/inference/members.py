"""The models of a prediction run: what each expects of its input, and the backend that runs it.

A model is a checkpoint (``.safetensors``) or an ONNX file written by `cardioseg export` (with
its sidecar). Backends:

* ``torch``: the checkpoint in PyTorch at ``predict.precision`` (``auto``: bf16 autocast with
  channels_last where the CPU has bf16, else fp32);
* ``onnx``: ONNX Runtime fp32; a checkpoint is exported on the fly into a scratch folder (a few
  seconds) unless `cardioseg export` already wrote a matching ``.onnx`` next to it;
* ``auto``: ONNX Runtime whenever a matching export is at hand, else PyTorch. ONNX Runtime is
  the fastest backend whose masks equal fp32 PyTorch's (1.3-2.0x PyTorch fp32 on a 2-core EPYC,
  benchmarks/RESULTS.md); bf16 PyTorch is faster on batches but its masks drift (minimum Dice
  0.98-0.998 against fp32). ``auto`` never spends an export on a run that may be a single image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cardioseg.config import ExportConfig, PredictConfig, PreprocessConfig
from cardioseg.errors import CheckpointError
from cardioseg.inference.engine import Predictor
from cardioseg.inference.export import export_bundle, file_digest, find_export, read_sidecar
from cardioseg.inference.onnx_backend import OnnxPredictor
from cardioseg.models.checkpoint import load_bundle


class Backend(Protocol):
    """Normalised images (N, H, W) -> probabilities (N, C, H, W)."""

    batch_size: int
    seconds: float

    def probabilities(self, images: np.ndarray) -> np.ndarray: ...

    @property
    def ms_per_image(self) -> float: ...


@dataclass
class Member:
    """One model of an ensemble, with the preprocessing it was trained with."""

    source: Path
    backend_name: str
    backend: Backend
    preprocess: PreprocessConfig
    orientation_fix: str
    slice_axis: int
    classes: int
    class_names: dict[int, str]

    @classmethod
    def from_header(cls, source: Path, backend_name: str, backend: Backend, header: dict[str, Any]) -> Member:
        return cls(
            source=source,
            backend_name=backend_name,
            backend=backend,
            preprocess=PreprocessConfig.model_validate(header["preprocess"]),
            orientation_fix=header.get("orientation_fix", "none"),
            slice_axis=int((header.get("extra") or {}).get("slice_axis", 2)),
            classes=int(header["model"]["classes"]),
            class_names={int(k): v for k, v in (header.get("class_names") or {}).items()},
        )


def load_member(path: Path, cfg: PredictConfig, scratch: Path, index: int = 0) -> Member:
    """Open one model on the backend ``cfg.backend`` asks for (see the module docstring)."""
    path = Path(path)
    if path.suffix == ".onnx":
        if cfg.backend == "torch":
            raise CheckpointError("an exported ONNX model runs on the onnx backend only; use --backend onnx or auto", path)
        return _onnx_member(path, path, cfg)
    if path.suffix != ".safetensors":
        raise CheckpointError("unsupported model file: expected a cardioseg checkpoint (.safetensors) "
                              "or an ONNX file from `cardioseg export` (.onnx)", path)
    exported = find_export(path) if cfg.backend in ("auto", "onnx") else None
    if exported is not None:
        return _onnx_member(path, exported, cfg)
    bundle = load_bundle(path)
    if cfg.backend == "onnx":
        target = Path(scratch) / f"member{index}-{path.stem}.onnx"
        export_bundle(bundle, target, ExportConfig(format="onnx"), file_digest(path))
        return _onnx_member(path, target, cfg)
    predictor = Predictor(bundle, precision=cfg.precision, batch_size=cfg.batch_size)
    return Member.from_header(path, "torch", predictor, bundle.header())


def _onnx_member(source: Path, exported: Path, cfg: PredictConfig) -> Member:
    meta = read_sidecar(exported)
    return Member.from_header(source, "onnx", OnnxPredictor(exported, batch_size=cfg.batch_size), meta["header"])
