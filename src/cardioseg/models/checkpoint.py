"""The cardioseg model file: weights plus the plan that says what the network expects and produces.

A ``.safetensors`` file whose metadata holds a JSON header (model configuration, plan, format
version; see ``cardioseg.artifacts`` for its versions and how older ones are read). Loading it
never executes code, unlike a pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from cardioseg import __version__
from cardioseg.artifacts import HEADER_KEY, MODEL_FORMAT, MODEL_VERSION, read_model_header
from cardioseg.config import ModelConfig
from cardioseg.errors import CheckpointError
from cardioseg.fileio import write_with
from cardioseg.models.factory import build_model
from cardioseg.plan import Plan


@dataclass
class ModelBundle:
    """A network with the plan it was trained for."""

    model: nn.Module
    model_cfg: ModelConfig
    plan: Plan
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model_cfg.classes != self.plan.out_channels:
            raise CheckpointError(f"the network has {self.model_cfg.classes} output channel(s) but its plan's "
                                  f"{len(self.plan.foreground)} class(es) need {self.plan.out_channels}")

    @property
    def binary(self) -> bool:
        return self.plan.binary

    def header(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_VERSION,
            "cardioseg_version": __version__,
            "model": self.model_cfg.model_dump(mode="json"),
            "plan": self.plan.model_dump(mode="json"),
            "extra": self.extra,
        }


def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    """Write weights and header atomically; weights are stored as float32 contiguous tensors."""
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in bundle.model.state_dict().items()}
    metadata = {HEADER_KEY: json.dumps(bundle.header())}
    return write_with(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def load_bundle(path: str | Path) -> ModelBundle:
    """Rebuild the network from its header and load the weights (strictly)."""
    header = read_model_header(Path(path))
    model_cfg = ModelConfig.model_validate({**header["model"], "encoder_weights": None})
    model = build_model(model_cfg)
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except (RuntimeError, SafetensorError) as exc:
        raise CheckpointError(f"weights do not fit {model_cfg.arch}/{model_cfg.encoder}: {str(exc)[:300]}", path) from None
    model.eval()
    return ModelBundle(model=model, model_cfg=model_cfg, plan=Plan.model_validate(header["plan"]),
                       extra=header.get("extra", {}))
