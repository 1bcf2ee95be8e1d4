"""The on-disk formats of every stage, in one place: file names, headers, and how each is read.

``PreparedFiles``, ``RunFiles``, ``EvaluationFiles``, ``PredictionFiles`` and the export helpers
name the files of a prepared dataset, a training run, an evaluation, a prediction run and an
exported model. No other module spells another stage's file names. The model header (inside a
``.safetensors`` checkpoint) and the export sidecar are parsed here only, and ``load_plan`` reads
the plan of any of them.

Model header versions: v1 (before plans) is converted on reading by
``cardioseg.plan.plan_from_legacy_header``; v2 carries ``plan``. Export sidecar v1 embeds a v1
header and is converted the same way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cardioseg import __version__
from cardioseg.config import ModelConfig
from cardioseg.errors import CheckpointError, DataError
from cardioseg.fileio import safe_name
from cardioseg.plan import Plan, plan_from_legacy_header

CONFIG_FILE = "config.yaml"
"""Every stage writes its resolved configuration under this name next to its outputs."""

MODEL_FORMAT = "cardioseg-model"
MODEL_VERSION = 2
EXPORT_FORMAT = "cardioseg-export"
EXPORT_VERSION = 2
EXPORT_SUFFIXES = {"onnx": ".onnx", "onnx-int8": ".int8.onnx", "torchscript": ".torchscript.pt"}
TORCHSCRIPT_EXTRA_FILE = "cardioseg.json"
HEADER_KEY = "cardioseg"
"""Key of the JSON header in safetensors metadata and in ONNX metadata_props."""


@dataclass(frozen=True)
class PreparedFiles:
    """A prepared dataset (see ``cardioseg.data.prepared`` for what each file holds)."""

    root: Path

    dataset = property(lambda self: self.root / "dataset.json")
    manifest = property(lambda self: self.root / "manifest.csv")
    images = property(lambda self: self.root / "images.npy")
    labels = property(lambda self: self.root / "labels.npy")
    originals = property(lambda self: self.root / "originals.npz")
    cases = property(lambda self: self.root / "cases.json")
    config = property(lambda self: self.root / CONFIG_FILE)
    bad_files = property(lambda self: self.root / "bad_files.csv")
    inspect_overlays = property(lambda self: self.root / "inspect_overlays.png")
    """`cardioseg inspect`'s default grid of label overlays."""
    inspect_steps = property(lambda self: self.root / "inspect_preprocessing.png")
    """`cardioseg inspect`: a few cases after each preprocessing step (e.g. CLAHE before and after)."""
    recipe = property(lambda self: self.root / "recipe.json")
    """`cardioseg plan make`: the training recipe planned for this dataset and a time budget."""
    planned = property(lambda self: self.root / "planned")
    """This dataset prepared again with a recipe's input (size, crop), one folder per preprocessing."""

    @property
    def required(self) -> tuple[Path, ...]:
        return (self.dataset, self.manifest, self.images, self.labels, self.originals, self.cases)

    @property
    def work_dir(self) -> Path:
        """Where `prepare` keeps per-case chunks while it runs (resumable), next to the output."""
        return self.root.with_name(f".{self.root.name}.work")

    @property
    def bad_files_listing(self) -> Path:
        """Every bad file of a run that stopped on them (the error message shows the first ten)."""
        return self.work_dir / "bad_files.txt"

    @staticmethod
    def is_prepared(path: Path) -> bool:
        """A prepared dataset, not a raw MSD folder (which has a dataset.json of its own)."""
        return (Path(path) / "dataset.json").is_file() and (Path(path) / "manifest.csv").is_file()


@dataclass(frozen=True)
class RunFiles:
    """A training run folder."""

    root: Path

    model = property(lambda self: self.root / "model.safetensors")
    config = property(lambda self: self.root / CONFIG_FILE)
    recipe = property(lambda self: self.root / "recipe.json")
    """The recipe a planned run follows (kept so that a resumed run follows the same one)."""
    checkpoints = property(lambda self: self.root / "checkpoints")
    last_checkpoint = property(lambda self: self.root / "checkpoints" / "last.ckpt")
    best_checkpoint = property(lambda self: self.root / "checkpoints" / "best.ckpt")
    logs = property(lambda self: self.root / "logs")
    metrics = property(lambda self: self.root / "logs" / "metrics.csv")
    tensorboard = property(lambda self: self.root / "tensorboard")
    epoch_images = property(lambda self: self.root / "epochs")
    curves = property(lambda self: self.root / "training_curves.png")
    report = property(lambda self: self.root / "report.html")
    evaluation = property(lambda self: self.root / "evaluation")
    postprocess_choice = property(lambda self: self.root / "postprocess_choice.json")
    """what each post-processing step scored on the validation split, and which steps the model keeps"""

    @staticmethod
    def is_run(path: Path) -> bool:
        return (Path(path) / "model.safetensors").is_file()

    def evaluations(self) -> list[Path]:
        """The run's evaluation folders, newest first: ``evaluation/<dataset>-<split>/`` (or the older
        ``evaluation/`` itself)."""
        folders = [self.evaluation, *sorted(self.evaluation.glob("*/"))] if self.evaluation.is_dir() else []
        found = [f for f in folders if EvaluationFiles.is_evaluation(f)]
        return sorted(found, key=lambda f: EvaluationFiles(f).summary.stat().st_mtime, reverse=True)


@dataclass(frozen=True)
class ZooFiles:
    """One ready-trained model shipped in the package (``cardioseg/zoo/<name>/``)."""

    root: Path

    model = property(lambda self: self.root / "model.safetensors")
    card = property(lambda self: self.root / "card.json")
    """what it segments, what it learnt from, how it was trained and scored, the data's licence and citation"""
    licence = property(lambda self: self.root / "LICENSE.md")
    """the terms of the data it learnt from, which bind the weights too"""


def default_evaluation_dir(model: Path, data: Path, split: str) -> Path:
    """``evaluation/<dataset>-<split>`` next to the model: evaluations of other data or splits never share a folder."""
    return Path(model).parent / "evaluation" / f"{safe_name(Path(data).resolve().name)}-{safe_name(split)}"


@dataclass(frozen=True)
class EvaluationFiles:
    """An evaluation folder: per-case metrics, summary, predictions, figures, clinical tables."""

    root: Path

    per_case = property(lambda self: self.root / "per_case.csv")
    summary = property(lambda self: self.root / "summary.json")
    predictions = property(lambda self: self.root / "predictions.npz")
    config = property(lambda self: self.root / CONFIG_FILE)
    cases_figure = property(lambda self: self.root / "cases_best_median_worst.png")
    metric_distributions = property(lambda self: self.root / "metric_distributions.png")
    clinical_volumes = property(lambda self: self.root / "clinical_volumes.csv")
    clinical_ef = property(lambda self: self.root / "clinical_ef.csv")
    prepared = property(lambda self: self.root / "prepared")
    """Where a raw data folder is prepared on the fly to match the model's plan."""
    bad_files = property(lambda self: self.root / "bad_files.txt")
    report = property(lambda self: self.root / "report.html")
    """`cardioseg report` of an evaluation folder given on its own (default output)."""
    videos = property(lambda self: self.root / "videos")
    """Folder of the report's overlay videos (one per patient or volume), kept for use outside it."""

    overlays = property(lambda self: self.root / "overlays")
    """evaluate.every_case: an overlay PNG of every image (a folder of slices per volume)."""

    def volume3d(self, case_stem: str) -> Path:
        """The report's interactive 3D view of one case, as a standalone HTML file."""
        return self.root / f"volume3d_{case_stem}.html"

    def bland_altman(self, quantity: str) -> Path:
        return self.root / f"bland_altman_{quantity}.png"

    @property
    def bland_altman_pattern(self) -> str:
        return "bland_altman_*.png"

    @staticmethod
    def is_evaluation(path: Path) -> bool:
        return (Path(path) / "summary.json").is_file() and (Path(path) / "per_case.csv").is_file()


@dataclass(frozen=True)
class PredictionFiles:
    """A prediction run folder: one set of files per input, the table of outputs, the configuration."""

    root: Path

    table = property(lambda self: self.root / "predictions.csv")
    config = property(lambda self: self.root / CONFIG_FILE)
    bad_files = property(lambda self: self.root / "bad_files.csv")
    report = property(lambda self: self.root / "report.html")

    def _named(self, stem: str, suffix: str) -> Path:
        return self.root / f"{stem}{suffix}"

    def mask(self, stem: str, volume: bool = False) -> Path:
        return self._named(stem, "_mask.nii.gz" if volume else "_mask.png")

    def dicom_mask(self, stem: str, fmt: str) -> Path:
        """The DICOM object of ``predict --format dicom-seg`` (``_seg.dcm``) or ``rtstruct`` (``_rtstruct.dcm``)."""
        return self._named(stem, {"dicom-seg": "_seg.dcm", "rtstruct": "_rtstruct.dcm"}[fmt])

    def visible(self, stem: str) -> Path:
        return self._named(stem, "_visible.png")

    def overlay(self, stem: str) -> Path:
        return self._named(stem, "_overlay.png")

    def probabilities(self, stem: str, volume: bool = False) -> Path:
        return self._named(stem, "_prob.nii.gz" if volume else "_prob.npy")

    def probability_scratch(self, stem: str) -> Path:
        return self._named(f".{stem}", "_prob.partial.npy")


def default_export_path(checkpoint: Path, fmt: str = "onnx") -> Path:
    """``run/model.safetensors`` -> ``run/model.onnx`` (or ``.int8.onnx``, ``.torchscript.pt``)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name.removesuffix(".safetensors") + EXPORT_SUFFIXES[fmt])


def sidecar_path(exported: Path) -> Path:
    return Path(exported).with_name(Path(exported).name + ".json")


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in blocks: ties an export to the checkpoint it came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unsupported(kind: str, fmt: object, version: object, reads: int, path: Path) -> CheckpointError:
    return CheckpointError(
        f"{kind} format {fmt} v{version} is not supported by cardioseg {__version__} (reads up to v{reads}); "
        "upgrade cardioseg", path,
    )


def normalise_header(header: Any, path: Path) -> dict[str, Any]:
    """A model header of any supported version as v2 (with ``plan``), checked field by field.

    Headers come from files of any origin: every malformed one is a CheckpointError naming the
    file, never a KeyError or a validation traceback from deeper down.
    """
    if not isinstance(header, dict):
        raise CheckpointError(f"malformed model header (a JSON {type(header).__name__}, not an object)", path)
    version = _version(header)
    if version > MODEL_VERSION and header.get("format") == MODEL_FORMAT:
        raise _unsupported("model header", header.get("format"), header.get("format_version"), MODEL_VERSION, path)
    if header.get("format") != MODEL_FORMAT or version < 1:
        raise CheckpointError(f"not a cardioseg model header (format {header.get('format')!r}, version "
                              f"{header.get('format_version')!r})", path)
    if not isinstance(header.get("model"), dict):
        raise CheckpointError("model header without a model configuration", path)
    try:
        if version < 2:
            plan = plan_from_legacy_header(header)
            extra = {k: v for k, v in (header.get("extra") or {}).items() if k not in ("slice_axis", "layout")}
            header = {"format": MODEL_FORMAT, "format_version": MODEL_VERSION, "converted_from": 1,
                      "cardioseg_version": header.get("cardioseg_version"), "model": header["model"],
                      "plan": plan.model_dump(mode="json"), "extra": extra}
        ModelConfig.model_validate(header["model"])
        Plan.model_validate(header["plan"])
        if not isinstance(header.get("extra", {}), dict):
            raise TypeError("extra is not an object")
    except (ValidationError, KeyError, TypeError, ValueError, AttributeError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        detail = (f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else
                  f"missing {exc}" if isinstance(exc, KeyError) else str(exc))
        raise CheckpointError(f"malformed model header ({detail[:200]})", path) from None
    return header


def read_model_header(path: Path) -> dict[str, Any]:
    """The header of a ``.safetensors`` checkpoint (read without loading any weight), as v2."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("model file not found", path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"not a cardioseg model file ({exc})", path) from None
    if HEADER_KEY not in metadata:
        raise CheckpointError("safetensors file without a cardioseg header (not written by cardioseg)", path)
    try:
        header = json.loads(metadata[HEADER_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"cardioseg header is not valid JSON ({exc})", path) from None
    return normalise_header(header, path)


def read_sidecar(exported: Path) -> dict[str, Any]:
    """The sidecar of an exported file (or, without one, the copy embedded in an ONNX file), checked.

    Its ``header`` is returned as a v2 model header, whatever version wrote it.
    """
    exported = Path(exported)
    if not exported.is_file():
        raise CheckpointError("exported model file not found", exported)
    side = sidecar_path(exported)
    try:
        meta = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else _embedded(exported)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"sidecar is not valid JSON ({exc})", side) from None
    where = side if side.is_file() else exported
    if not isinstance(meta, dict):
        raise CheckpointError(f"malformed sidecar (a JSON {type(meta).__name__}, not an object)", where)
    version = _version(meta)
    if meta.get("format") != EXPORT_FORMAT or version < 1:
        raise CheckpointError(f"not a cardioseg export sidecar (format {meta.get('format')!r}, version "
                              f"{meta.get('format_version')!r})", where)
    if version > EXPORT_VERSION:
        raise _unsupported("export", meta.get("format"), meta.get("format_version"), EXPORT_VERSION, where)
    return {**meta, "header": normalise_header(meta.get("header") or {}, where)}


def _version(record: dict[str, Any]) -> int:
    """A header's ``format_version`` as a number; -1 when it is missing or not one."""
    try:
        return int(record.get("format_version", -1))
    except (TypeError, ValueError):
        return -1


def _embedded(exported: Path) -> dict[str, Any]:
    if exported.suffix != ".onnx":
        raise CheckpointError(f"sidecar {sidecar_path(exported).name} not found next to the exported model", exported)
    import onnx

    try:
        proto = onnx.load(str(exported), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise CheckpointError(f"not a readable ONNX file ({exc.__class__.__name__})", exported) from exc
    for entry in proto.metadata_props:
        if entry.key == HEADER_KEY:
            return json.loads(entry.value)
    raise CheckpointError("ONNX file without a sidecar or cardioseg metadata (not exported by cardioseg)", exported)


def find_export(checkpoint: Path, kind: str = "onnx") -> Path | None:
    """The ONNX file (``kind`` onnx, or onnx-int8) `cardioseg export` wrote next to ``checkpoint``, if it still matches it."""
    candidate = default_export_path(Path(checkpoint), kind)
    side = sidecar_path(candidate)
    if not (candidate.is_file() and side.is_file()):
        return None
    try:
        recorded = json.loads(side.read_text(encoding="utf-8")).get("checkpoint_sha256")
    except (OSError, json.JSONDecodeError):
        return None
    return candidate if recorded == file_digest(Path(checkpoint)) else None


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A stage's JSON file, or a DataError naming it and what it should have been."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"unreadable {what} ({exc})", path) from None


def read_prepared_info(root: Path) -> dict[str, Any]:
    return read_json(PreparedFiles(Path(root)).dataset, "prepared dataset description")


def prepared_plan(info: dict[str, Any], where: Path) -> Plan:
    """The plan of a prepared dataset's ``dataset.json``."""
    if "plan" not in info:
        raise DataError("prepared by an older cardioseg (no plan in dataset.json): run `cardioseg prepare` again", where)
    try:
        return Plan.model_validate(info["plan"])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise DataError(f"its plan is not one this cardioseg reads ({problems}): run `cardioseg prepare` again",
                        where) from None


def load_plan(path: Path) -> Plan:
    """The plan of a prepared dataset folder, a checkpoint (``.safetensors``) or an exported model."""
    path = Path(path)
    if path.is_dir():
        if not PreparedFiles.is_prepared(path):
            if RunFiles.is_run(path):
                return load_plan(RunFiles(path).model)
            raise DataError("neither a prepared dataset nor a run folder (no dataset.json or model.safetensors)", path)
        return prepared_plan(read_prepared_info(path), PreparedFiles(path).dataset)
    if path.suffix == ".safetensors":
        return Plan.model_validate(read_model_header(path)["plan"])
    if path.suffix in (".onnx", ".pt"):
        return Plan.model_validate(read_sidecar(path)["header"]["plan"])
    raise DataError("expected a prepared dataset folder, a run folder, a .safetensors checkpoint or an exported "
                    "model (.onnx, .torchscript.pt)", path)
