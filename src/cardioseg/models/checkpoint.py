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
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from cardioseg import __version__
from cardioseg.artifacts import HEADER_KEY, MODEL_FORMAT, MODEL_VERSION, read_model_header
from cardioseg.config import ModelConfig
from cardioseg.errors import CheckpointError
from cardioseg.fileio import write_with
from cardioseg.models.factory import build_model
from cardioseg.plan import Plan

COARSE_PREFIX = "coarse::"
"""weights of a two-stage model's first stage, stored in the same file under this prefix"""


@dataclass
class ModelBundle:
    """A network with the plan it was trained for."""

    model: nn.Module
    model_cfg: ModelConfig
    plan: Plan
    extra: dict[str, Any] = field(default_factory=dict)
    coarse: ModelBundle | None = None
    """A two-stage model's first stage: its masks place this network's foreground crop (stored in the same file)."""

    def __post_init__(self) -> None:
        if (self.plan.preprocess.crop == "foreground") != (self.coarse is not None):
            raise CheckpointError("a foreground crop needs the first-stage model that places it, and only it has one")
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
            **({} if self.coarse is None else {"coarse": {"model": self.coarse.model_cfg.model_dump(mode="json"),
                                                         "plan": self.coarse.plan.model_dump(mode="json")}}),
        }


def save_bundle(bundle: ModelBundle, path: str | Path, half: bool = False) -> Path:
    """Write weights and header atomically; weights are stored as float32 contiguous tensors, or float16 with
    ``half`` (half the file, for shipped models; ``load_bundle`` loads either into the float32 network)."""
    stored = torch.float16 if half else torch.float32
    parts = [("", bundle.model)] + ([] if bundle.coarse is None else [(COARSE_PREFIX, bundle.coarse.model)])
    state = {prefix + k: v.detach().to("cpu", stored if v.is_floating_point() else v.dtype).contiguous()
             for prefix, model in parts for k, v in model.state_dict().items()}
    metadata = {HEADER_KEY: json.dumps(bundle.header())}
    return write_with(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def with_plan(path: str | Path, plan: Plan) -> Path:
    """Rewrite a model file with another plan (atomically), its weights stored as they were (float16 stays)."""
    bundle = load_bundle(path)
    bundle.plan = plan
    with safe_open(str(path), framework="pt") as stored:
        half = any(stored.get_slice(key).get_dtype() == "F16" for key in stored.keys())
    return save_bundle(bundle, path, half=half)


def load_bundle(path: str | Path) -> ModelBundle:
    """Rebuild the network from its header and load the weights (strictly)."""
    header = read_model_header(Path(path))
    try:
        weights = load_file(str(path))
    except SafetensorError as exc:
        raise CheckpointError(f"unreadable weights ({str(exc)[:300]})", path) from None
    coarse = None
    if "coarse" in header:
        stage = header["coarse"]
        try:
            coarse_cfg, coarse_plan = ModelConfig.model_validate(stage["model"]), Plan.model_validate(stage["plan"])
        except (ValidationError, KeyError, TypeError) as exc:
            raise CheckpointError(f"malformed first-stage header ({str(exc)[:200]})", path) from None
        coarse_state = {k[len(COARSE_PREFIX):]: v for k, v in weights.items() if k.startswith(COARSE_PREFIX)}
        coarse = ModelBundle(_network(coarse_cfg, coarse_state, path), coarse_cfg, coarse_plan)
    model_cfg = ModelConfig.model_validate({**header["model"], "encoder_weights": None})
    own = {k: v for k, v in weights.items() if not k.startswith(COARSE_PREFIX)}
    try:
        return ModelBundle(model=_network(model_cfg, own, path), model_cfg=model_cfg,
                           plan=Plan.model_validate(header["plan"]), extra=header.get("extra", {}), coarse=coarse)
    except CheckpointError as exc:
        raise CheckpointError(exc.problem, path) from None


def _network(model_cfg: ModelConfig, state: dict[str, torch.Tensor], path: str | Path) -> nn.Module:
    """The registry's network of ``model_cfg`` with ``state`` loaded strictly, in eval mode."""
    model = build_model(model_cfg.model_copy(update={"encoder_weights": None}))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit {model_cfg.arch}/{model_cfg.encoder}: {str(exc)[:300]}", path) from None
    return model.eval()
