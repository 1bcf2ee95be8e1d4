"""`cardioseg export`: a checkpoint as one deployable file (ONNX or TorchScript) plus a JSON sidecar.

The exported graph is ``DeployableModel``: raw image (B, C, H, W) float32 (C = 1, or a 2.5D model's planes) at the
network input size -> intensity normalisation -> network -> probabilities (B, C, H, W). A second,
optional input ``stats`` (two floats, default NaN = per-image statistics) overrides the
normalisation statistics; in the ONNX file its default is stored as an initializer, so
``session.run(None, {"image": x})`` is enough.

Outside the graph, in this order (the plan in the sidecar says them with their parameters):
orientation fix, median filter, CLAHE, crop, resize to the input size; after it: resize back,
threshold/argmax, post-processing. An export whose probabilities differ from PyTorch's by more
than ``export.max_prob_diff`` on a check batch is refused, and nothing is written. With
``export.int8`` the checked fp32 graph is then quantised (``quantize``), by default into
``model.int8.onnx``.
The in-graph statistics are those of the image it receives (resized, cropped); training computed
them before crop and resize (and on the whole volume for 3D data) -- pass ``stats`` for volumes.

ONNX uses the dynamo-based exporter: the TorchScript-based one fails on PSPNet's adaptive pooling.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardioseg import __version__
from cardioseg.artifacts import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    HEADER_KEY,
    TORCHSCRIPT_EXTRA_FILE,
    default_export_path,
    file_digest,
    sidecar_path,
)
from cardioseg.config import ExportConfig
from cardioseg.data.preprocess import Pipeline
from cardioseg.errors import CheckpointError, ConfigError
from cardioseg.fileio import write_bytes, write_json, write_with
from cardioseg.inference.deployable import DeployableModel
from cardioseg.inference.quantize import MaskAgreement, int8_export
from cardioseg.models.checkpoint import ModelBundle, load_bundle

OUTSIDE_GRAPH = ["orientation fix", "median filter", "CLAHE", "crop", "resize to the input size"]
AFTER_GRAPH = ["resize back to the original grid", "threshold (1 channel) or argmax", "post-processing"]


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    max_abs_diff: float
    """Largest probability difference between the (fp32) exported file and PyTorch on a check batch."""
    int8: MaskAgreement | None = None
    """For an int8 export: its masks against the fp32 export's on held-out images."""


def deployable(bundle: ModelBundle) -> DeployableModel:
    """A float32, eval-mode copy of the bundle's network wrapped with its plan's normalisation and activation."""
    network = copy.deepcopy(bundle.model).float().eval().to(memory_format=torch.contiguous_format)
    return DeployableModel(network, Pipeline.from_plan(bundle.plan).normalize, bundle.binary).eval()


def example_input(bundle: ModelBundle, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Smooth random images in 0..255 at the network input size (for tracing and the parity check)."""
    generator = torch.Generator().manual_seed(seed)
    height, width = bundle.plan.preprocess.size
    channels = bundle.model_cfg.in_channels
    coarse = torch.rand(batch, channels, max(2, height // 8), max(2, width // 8), generator=generator)
    return 255.0 * torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def sidecar(bundle: ModelBundle, fmt: str, cfg: ExportConfig, checkpoint_sha256: str | None) -> dict[str, Any]:
    """What the exported file computes and what it leaves to its caller; also embedded in the exported file."""
    height, width = bundle.plan.preprocess.size
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "cardioseg_version": __version__,
        "torch_version": torch.__version__,
        "export_format": fmt,
        "opset": cfg.opset if fmt == "onnx" else None,
        "checkpoint_sha256": checkpoint_sha256,
        "inputs": {
            "image": {"shape": ["batch" if cfg.dynamic_batch else 1, bundle.model_cfg.in_channels, height, width],
                      "dtype": "float32", "meaning": "raw intensities after the steps listed in outside_graph; a 2.5D "
                      "model's channels are a plane between its plan's context_slices neighbours on each side"},
            "stats": {"shape": [2], "dtype": "float32", "default": [None, None],
                      "meaning": "(low, high) or (mean, std) for every image of the batch; NaN = per image"},
        },
        "outputs": {"probabilities": {"shape": ["batch", bundle.model_cfg.classes, height, width],
                                      "activation": "sigmoid" if bundle.binary else "softmax"}},
        "inside_graph": [f"intensity normalisation ({bundle.plan.preprocess.normalize})", "network", "activation"],
        "outside_graph": OUTSIDE_GRAPH,
        "after_graph": AFTER_GRAPH,
        "header": bundle.header(),
    }


def export_onnx(bundle: ModelBundle, out: Path, cfg: ExportConfig, meta: dict[str, Any]) -> Path:
    """Dynamo-based ONNX export; ``stats`` gets a NaN default and the sidecar is embedded as metadata."""
    import onnx
    from onnx import numpy_helper

    model = deployable(bundle)
    image = example_input(bundle)
    stats = torch.full((2,), float("nan"))
    dynamic = ({0: torch.export.Dim("batch")}, None) if cfg.dynamic_batch else None
    try:
        program = torch.onnx.export(
            model, (image if cfg.dynamic_batch else image[:1], stats), dynamo=True, verbose=False,
            input_names=["image", "stats"], output_names=["probabilities"], dynamic_shapes=dynamic,
            opset_version=cfg.opset,
        )
    except Exception as exc:  # the exporter raises many types; report them against the model
        raise CheckpointError(f"ONNX export of {bundle.model_cfg.arch} failed: {str(exc)[:500]}") from exc
    proto = program.model_proto
    proto.graph.initializer.append(numpy_helper.from_array(np.full(2, np.nan, np.float32), name="stats"))
    entry = proto.metadata_props.add()
    entry.key, entry.value = HEADER_KEY, json.dumps(meta)
    onnx.checker.check_model(proto)
    return write_bytes(out, proto.SerializeToString())


def export_torchscript(bundle: ModelBundle, out: Path, meta: dict[str, Any]) -> Path:
    """Trace the network (fixed input size), script the wrapper (optional ``stats``), embed the sidecar.

    TorchScript is deprecated from torch 2.14 on (its FutureWarnings are silenced here); prefer ONNX.
    """
    model = deployable(bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with torch.no_grad():
            model.network = torch.jit.trace(model.network, example_input(bundle), check_trace=False)
        scripted = torch.jit.script(model)
        extra = {TORCHSCRIPT_EXTRA_FILE: json.dumps(meta)}
        return write_with(out, lambda tmp: torch.jit.save(scripted, str(tmp), _extra_files=extra))


def export_bundle(bundle: ModelBundle, out: Path, cfg: ExportConfig, checkpoint_sha256: str | None = None) -> ExportResult:
    """Write the exported file and its sidecar, once the export matches PyTorch on a check batch.

    Both are written under temporary names and checked before they replace anything at ``out``.
    """
    out = Path(out)
    if bundle.plan.spatial_dims == 3 or bundle.coarse is not None:
        raise ConfigError(("a 3D network" if bundle.plan.spatial_dims == 3 else "a two-stage model") + " is not "
                          "exported: it runs in PyTorch (cardioseg predict, evaluate and serve run the checkpoint)")
    if cfg.int8 and cfg.format != "onnx":
        raise ConfigError(f"--int8 writes ONNX; it cannot be combined with --format {cfg.format}")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = sidecar(bundle, cfg.format, cfg, checkpoint_sha256)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as scratch:
        staged = Path(scratch) / ("fp32.onnx" if cfg.int8 else out.name)
        if cfg.format == "onnx":
            export_onnx(bundle, staged, cfg, meta)
        else:
            export_torchscript(bundle, staged, meta)
        gap = parity_gap(bundle, staged, cfg.format)
        if not gap <= cfg.max_prob_diff:
            raise CheckpointError(
                f"the {cfg.format} export differs from PyTorch by up to {gap:.2e} in probability on a check batch "
                f"(export.max_prob_diff is {cfg.max_prob_diff:.0e}); nothing was written", out)
        agreement = None
        if cfg.int8:
            agreement = int8_export(bundle, staged, out, cfg)
            meta = {**meta, "precision": "int8", "int8_check": {
                "calibration": str(cfg.calibration), "held_out_images": len(agreement.dice),
                "min_dice_vs_fp32": agreement.minimum, "mean_dice_vs_fp32": agreement.mean}}
        else:
            os.replace(staged, out)
    side = write_json(sidecar_path(out), meta)
    return ExportResult(out, side, gap, agreement)


def parity_gap(bundle: ModelBundle, exported: Path, fmt: str) -> float:
    """max |p_exported - p_torch| over a batch of smooth random images (raw intensities)."""
    model = deployable(bundle)
    image = example_input(bundle, batch=2, seed=1)
    with torch.no_grad():
        expected = model(image).numpy()
        if fmt == "onnx":
            from cardioseg.inference.onnx_backend import open_session

            got = open_session(exported).run(None, {"image": image.numpy()})[0]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                got = torch.jit.load(str(exported)).eval()(image).numpy()
    return float(np.abs(got - expected).max())


def export_model(checkpoint: Path, cfg: ExportConfig) -> ExportResult:
    """`cardioseg export`: load a checkpoint and export it to ``cfg.out`` (default: next to it)."""
    checkpoint = Path(checkpoint)
    bundle = load_bundle(checkpoint)
    kind = "onnx-int8" if cfg.int8 else cfg.format
    out = Path(cfg.out) if cfg.out is not None else default_export_path(checkpoint, kind)
    return export_bundle(bundle, out, cfg, file_digest(checkpoint))


