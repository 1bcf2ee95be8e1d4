"""The models of a prediction or evaluation run: the plan each was trained for, and the backend that runs it.

A model is a checkpoint (``.safetensors``) or an ONNX file written by `cardioseg export` (with
its sidecar). Backends:

* ``torch``: the checkpoint in PyTorch at the given precision (``auto``: bf16 autocast with
  channels_last where the CPU has bf16, else fp32);
* ``onnx``: ONNX Runtime fp32; a checkpoint is exported on the fly into a scratch folder (a few
  seconds) unless `cardioseg export` already wrote a matching ``.onnx`` next to it;
* ``auto``: ONNX Runtime whenever a matching export is at hand, else PyTorch. ONNX Runtime is
  the fastest backend whose masks equal fp32 PyTorch's (1.3-2.0x PyTorch fp32 on a 2-core EPYC,
  benchmarks/RESULTS.md); bf16 PyTorch is faster on batches but its masks drift (minimum Dice
  0.98-0.998 against fp32). ``auto`` never spends an export on a run that may be a single image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cardioseg.artifacts import file_digest, find_export, read_sidecar
from cardioseg.config import ExportConfig, ModelConfig
from cardioseg.data.preprocess import Pipeline
from cardioseg.errors import CheckpointError
from cardioseg.inference.backend import Backend
from cardioseg.inference.export import export_bundle
from cardioseg.inference.onnx_backend import OnnxBackend, onnx_parameter_count
from cardioseg.inference.torch_backend import TorchBackend
from cardioseg.models.checkpoint import load_bundle
from cardioseg.models.factory import count_parameters
from cardioseg.plan import Plan


@dataclass
class Member:
    """One model of an ensemble: its backend, its plan, and the pipeline built from the plan."""

    source: Path
    backend_name: str
    backend: Backend
    plan: Plan
    model_cfg: ModelConfig
    n_parameters: int
    runs: str = "itself"
    """Which file the backend executes for ``source``: itself, an export found next to it, or one made on the fly."""
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        self.pipeline = Pipeline.from_plan(self.plan)

    @property
    def description(self) -> str:
        """What ran, for the console: never a silent substitution of one file for another."""
        engine = {"torch": "PyTorch", "onnx": "ONNX Runtime"}.get(self.backend_name, self.backend_name)
        return f"{self.source.name} on {engine}" + ("" if self.runs == "itself" else f" ({self.runs})")


@dataclass(frozen=True)
class RunOptions:
    """How the models of a run are executed (from ``predict.*`` or ``evaluate.*``)."""

    backend: str = "auto"
    precision: str = "auto"
    batch_size: int = 16


def load_member(path: Path, options: RunOptions, scratch: Path, index: int = 0) -> Member:
    """Open one model on the backend ``options.backend`` asks for (see the module docstring)."""
    path = Path(path)
    if path.suffix == ".onnx":
        if options.backend == "torch":
            raise CheckpointError("an exported ONNX model runs on the onnx backend only; use --backend onnx or auto", path)
        return _onnx_member(path, path, options)
    if path.suffix != ".safetensors":
        raise CheckpointError("unsupported model file: expected a cardioseg checkpoint (.safetensors) "
                              "or an ONNX file from `cardioseg export` (.onnx)", path)
    exported = find_export(path) if options.backend in ("auto", "onnx") else None
    if exported is not None:
        return _onnx_member(path, exported, options, f"as {exported.name}, the export next to it; --backend torch runs "
                            "the checkpoint")
    bundle = load_bundle(path)
    if options.backend == "onnx":
        target = Path(scratch) / f"member{index}-{path.stem}.onnx"
        export_bundle(bundle, target, ExportConfig(format="onnx"), file_digest(path))
        return _onnx_member(path, target, options, "exported to ONNX for this run")
    predictor = TorchBackend(bundle, precision=options.precision, batch_size=options.batch_size)
    return Member(path, "torch", predictor, bundle.plan, bundle.model_cfg, count_parameters(bundle.model))


def _onnx_member(source: Path, exported: Path, options: RunOptions, runs: str = "itself") -> Member:
    header = read_sidecar(exported)["header"]
    predictor = OnnxBackend(exported, batch_size=options.batch_size)
    return Member(source, "onnx", predictor, Plan.model_validate(header["plan"]),
                  ModelConfig.model_validate(header["model"]), onnx_parameter_count(exported), runs)
