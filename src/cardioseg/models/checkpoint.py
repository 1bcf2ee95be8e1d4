"""The cardioseg model file: weights plus everything needed to reproduce preprocessing.

A ``.safetensors`` file whose metadata holds a JSON header (model configuration, preprocessing,
orientation fix, class table, format version). Loading it never executes code, unlike a pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from cardioseg import __version__
from cardioseg.config import ModelConfig, PreprocessConfig
from cardioseg.errors import CheckpointError
from cardioseg.fileio import write_with
from cardioseg.models.factory import build_model

FORMAT = "cardioseg-model"
FORMAT_VERSION = 1


@dataclass
class ModelBundle:
    """A network with the preprocessing and class table it was trained with."""

    model: nn.Module
    model_cfg: ModelConfig
    preprocess: PreprocessConfig
    orientation_fix: str = "none"
    labels: dict[int, int] | None = None
    class_names: dict[int, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def binary(self) -> bool:
        return self.model_cfg.classes == 1

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "cardioseg_version": __version__,
            "model": self.model_cfg.model_dump(mode="json"),
            "preprocess": self.preprocess.model_dump(mode="json"),
            "orientation_fix": self.orientation_fix,
            "labels": {str(k): v for k, v in (self.labels or {}).items()} or None,
            "class_names": {str(k): v for k, v in self.class_names.items()},
            "extra": self.extra,
        }


def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    """Write weights and header atomically; weights are stored as float32 contiguous tensors."""
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in bundle.model.state_dict().items()}
    metadata = {"cardioseg": json.dumps(bundle.header())}
    return write_with(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def read_header(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("model file not found", path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"not a cardioseg model file ({exc})", path) from None
    if "cardioseg" not in metadata:
        raise CheckpointError("safetensors file without a cardioseg header (not written by cardioseg)", path)
    header = json.loads(metadata["cardioseg"])
    if header.get("format") != FORMAT or int(header.get("format_version", -1)) > FORMAT_VERSION:
        raise CheckpointError(
            f"model file format {header.get('format')} v{header.get('format_version')} is not supported by "
            f"cardioseg {__version__} (reads v{FORMAT_VERSION}); upgrade cardioseg",
            path,
        )
    return header


def load_bundle(path: str | Path) -> ModelBundle:
    """Rebuild the network from its header and load the weights (strictly)."""
    header = read_header(path)
    model_cfg = ModelConfig.model_validate({**header["model"], "encoder_weights": None})
    model = build_model(model_cfg)
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except (RuntimeError, SafetensorError) as exc:
        raise CheckpointError(f"weights do not fit {model_cfg.arch}/{model_cfg.encoder}: {str(exc)[:300]}", path) from None
    model.eval()
    return ModelBundle(
        model=model,
        model_cfg=model_cfg,
        preprocess=PreprocessConfig.model_validate(header["preprocess"]),
        orientation_fix=header.get("orientation_fix", "none"),
        labels={int(k): v for k, v in header["labels"].items()} if header.get("labels") else None,
        class_names={int(k): v for k, v in header.get("class_names", {}).items()},
        extra=header.get("extra", {}),
    )
