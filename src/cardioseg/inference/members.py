"""The models of a prediction or evaluation run: the plan each was trained for, and the backend that runs it.

A model is a checkpoint (``.safetensors``) or an ONNX file written by `cardioseg export` (with
its sidecar). Backends, each at a precision:

* ``torch``: the checkpoint in PyTorch, fp32 or bf16 autocast with channels_last;
* ``onnx``: ONNX Runtime, fp32 or int8;
* ``openvino``: OpenVINO, fp32, bf16 or int8.

ONNX Runtime and OpenVINO run an export: the int8 one must come from `cardioseg export --int8`
(it needs calibration images); an fp32 one is used when `cardioseg export` wrote it next to the
checkpoint, else made on the fly and kept in the cache folder for the next run. Precision
``auto`` is bf16 where the CPU has bf16 kernels (torch, openvino), else fp32.

``auto`` runs what ``autotune`` measured fastest on this machine for this model (cached); until
a measurement exists it runs ONNX Runtime fp32 when an export is at hand, else PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cardioseg.artifacts import file_digest, find_export, read_model_header, read_sidecar, sidecar_path
from cardioseg.config import ExportConfig, ModelConfig
from cardioseg.data.preprocess import Pipeline
from cardioseg.errors import CardiosegError, CheckpointError, ConfigError
from cardioseg.inference.backend import Backend
from cardioseg.inference.backend_cache import cache_key, cached_choice
from cardioseg.inference.export import export_bundle
from cardioseg.inference.onnx_backend import OnnxBackend, onnx_parameter_count
from cardioseg.inference.openvino_backend import OpenVinoBackend, openvino_available
from cardioseg.inference.torch_backend import TorchBackend
from cardioseg.models.checkpoint import ModelBundle, load_bundle
from cardioseg.models.factory import count_parameters
from cardioseg.plan import Plan
from cardioseg.runtime import cache_dir, cpu_supports_bf16

ENGINES = {"torch": "PyTorch", "onnx": "ONNX Runtime", "openvino": "OpenVINO"}


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
    precision: str = "32"
    why: str = ""
    """Why ``--backend auto`` chose this backend (empty when it was asked for by name)."""
    coarse: Member | None = None
    """A two-stage model's first stage, whose masks place this model's foreground crop."""
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        self.pipeline = Pipeline.from_plan(self.plan)

    @property
    def description(self) -> str:
        """What ran, for the console: never a silent substitution of one file for another."""
        engine = f"{ENGINES.get(self.backend_name, self.backend_name)} {'fp32' if self.precision == '32' else self.precision}"
        return f"{self.source.name} on {engine}" + ("" if self.runs == "itself" else f" ({self.runs})")


@dataclass(frozen=True)
class RunOptions:
    """How the models of a run are executed (from ``predict.*`` or ``evaluate.*``)."""

    backend: str = "auto"
    precision: str = "auto"
    batch_size: int = 16
    min_mask_dice: float = 0.99


def load_member(path: Path, options: RunOptions, scratch: Path, index: int = 0) -> Member:
    """Open one model on the backend ``options.backend`` asks for (see the module docstring)."""
    path = Path(path)
    if path.suffix not in (".onnx", ".safetensors"):
        raise CheckpointError("unsupported model file: expected a cardioseg checkpoint (.safetensors) "
                              "or an ONNX file from `cardioseg export` (.onnx)", path)
    backend, precision, why = resolve_auto(path, options) if options.backend == "auto" else (
        options.backend, options.precision, "")
    if path.suffix == ".onnx":
        if backend == "torch":
            raise CheckpointError("an exported ONNX model runs on the onnx or openvino backend; use --backend onnx, "
                                  "openvino or auto", path)
        file_precision = str(read_sidecar(path).get("precision", "32"))
        return _exported_member(path, path, backend, _export_precision(backend, precision, file_precision, path),
                                options, why=why)
    reason = torch_only(model_plan(path))
    if backend != "torch" and reason:
        raise ConfigError(f"{reason}: use --backend torch or auto, not {backend}", path)
    if backend == "torch":
        if precision == "int8":
            raise ConfigError("int8 runs on the onnx or openvino backend, from an `export --int8` file")
        bundle = load_bundle(path)
        return _torch_member(path, bundle, precision, options, why)
    exported, runs = export_for(path, precision == "int8", scratch, index)
    return _exported_member(path, exported, backend, _export_precision(backend, precision, "32", path), options, runs, why)


def torch_only(plan: Plan) -> str:
    """Why a model runs on PyTorch only (empty when any backend runs it)."""
    if plan.spatial_dims == 3:
        return "a 3D network runs on PyTorch only (sliding windows over the planes)"
    if plan.preprocess.crop == "foreground":
        return "a two-stage model runs on PyTorch only (its first stage places the second's crop)"
    return ""


def _torch_member(path: Path, bundle: ModelBundle, precision: str, options: RunOptions, why: str = "") -> Member:
    predictor = TorchBackend(bundle, precision=precision, batch_size=options.batch_size)
    coarse = None if bundle.coarse is None else _torch_member(path, bundle.coarse, precision, options)
    parameters = count_parameters(bundle.model) + (coarse.n_parameters if coarse else 0)
    return Member(path, "torch", predictor, bundle.plan, bundle.model_cfg, parameters,
                  precision="bf16" if predictor.autocast else "32", why=why, coarse=coarse)


def resolve_auto(path: Path, options: RunOptions) -> tuple[str, str, str]:
    """(backend, precision, why) for ``--backend auto``: the cached measurement, else the rule without one."""
    reason = torch_only(model_plan(path))
    if reason:
        return "torch", options.precision, reason
    choice = cached_choice(auto_key(path, options.batch_size))
    if choice is not None:
        return choice.backend, choice.precision, f"measured on this machine: {choice.reason}"
    if path.suffix == ".onnx" or find_export(path) is not None:
        return "onnx", "32", "not measured yet for this model on this machine; an ONNX export is at hand"
    return "torch", options.precision, "not measured yet for this model on this machine"


def auto_key(path: Path, batch_size: int) -> str:
    """The cache key of a model's measurement: its file, its int8 export (if any), its input size, the batch."""
    digests = [file_digest(path)]
    int8 = find_export(path, "onnx-int8") if path.suffix == ".safetensors" else None
    if int8 is not None:
        digests.append(file_digest(int8))
    return cache_key(digests, model_plan(path).preprocess.size, batch_size)


def model_plan(path: Path) -> Plan:
    """The plan of a checkpoint or an export, from its header (no weights loaded)."""
    header = read_sidecar(path)["header"] if path.suffix == ".onnx" else read_model_header(path)
    return Plan.model_validate(header["plan"])


def export_for(checkpoint: Path, int8: bool, scratch: Path, index: int) -> tuple[Path, str]:
    """The ONNX file an ONNX Runtime or OpenVINO run of ``checkpoint`` executes, and how it was found."""
    kind = "onnx-int8" if int8 else "onnx"
    exported = find_export(checkpoint, kind)
    if exported is not None:
        return exported, f"as {exported.name}, the export next to it; --backend torch runs the checkpoint"
    if int8:
        raise CheckpointError("no int8 export next to this checkpoint: write one with `cardioseg export -m MODEL "
                              "--int8 --calibration PREPARED`", checkpoint)
    digest = file_digest(checkpoint)
    cached = cache_dir() / "exports" / f"{digest[:32]}.onnx"
    if not (cached.is_file() and sidecar_path(cached).is_file()):
        try:
            export_bundle(load_bundle(checkpoint), cached, ExportConfig(format="onnx"), digest)
        except CardiosegError:  # an unwritable cache folder: export into this run's scratch folder instead
            cached = Path(scratch) / f"member{index}-{checkpoint.stem}.onnx"
            export_bundle(load_bundle(checkpoint), cached, ExportConfig(format="onnx"), digest)
    return cached, "exported to ONNX for this model, kept in the cache folder"


def _export_precision(backend: str, asked: str, file_precision: str, path: Path) -> str:
    """The precision an export runs at: an int8 file runs int8; fp32 files at 32, or bf16 on OpenVINO."""
    if file_precision == "int8" or asked == "int8":
        return "int8"
    if asked == "bf16" and backend == "onnx":
        raise ConfigError("ONNX Runtime has no bf16 CPU kernels: use --precision 32, or --backend openvino/torch "
                          "for bf16", path)
    if backend == "openvino" and asked in ("bf16", "auto"):
        return "bf16" if asked == "bf16" or cpu_supports_bf16() else "32"
    return "32"


def _exported_member(source: Path, exported: Path, backend: str, precision: str, options: RunOptions,
                     runs: str = "itself", why: str = "") -> Member:
    header = read_sidecar(exported)["header"]
    if backend == "openvino":
        if not openvino_available():
            raise ConfigError("the openvino backend needs the openvino package (pip install openvino)")
        predictor: Backend = OpenVinoBackend(exported, precision=precision, batch_size=options.batch_size)
    else:
        predictor = OnnxBackend(exported, batch_size=options.batch_size)
    return Member(source, backend, predictor, Plan.model_validate(header["plan"]),
                  ModelConfig.model_validate(header["model"]), onnx_parameter_count(exported), runs, precision, why)
