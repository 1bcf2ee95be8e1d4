"""The size table a study reports for a network: parameters, memory, layers and compute.

Memory is measured, not estimated: one training-mode forward pass of a single image runs under
``torch.autograd.graph.saved_tensors_hooks``, and every tensor autograd keeps for the backward
pass is counted once per storage (a ReLU output that the next convolution saves again is one
buffer). Parameters that autograd saves (a convolution keeps its weight) are left out there,
since they are the parameter memory already. The figure is therefore exactly what the backward
pass holds in memory for that batch of one, at float32 when the model is float32. MACs of
convolutions and linear layers are counted by forward hooks in the same pass.

MB are 10^6 bytes, GFLOPs are 2 x MACs / 10^9 (one multiply and one add per MAC).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from cardioseg.config import ModelConfig
from cardioseg.errors import ConfigError
from cardioseg.models.factory import build_model
from cardioseg.models.registry import is_volumetric

BYTES_PER_MB = 1e6


@dataclass(frozen=True)
class ModelSummary:
    """The figures of one network at one input size (batch of one)."""

    total_params: int
    trainable_params: int
    param_mb: float
    activation_mb: float
    """Bytes autograd keeps for the backward pass (forward/backward pass memory), in MB."""
    layers_with_params: int
    """Modules holding parameters of their own (convolutions, norms, linear layers...)."""
    leaf_modules: int
    """Modules without sub-modules, parameter-free ones (activations, pooling) included."""
    macs: int
    """Multiply-accumulates of the convolutions and linear layers for one image."""

    @property
    def total_mb(self) -> float:
        """Parameters plus forward/backward memory (gradients and optimiser state not included)."""
        return self.param_mb + self.activation_mb

    @property
    def gflops(self) -> float:
        return 2 * self.macs / 1e9


def _conv_or_linear_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    """MACs of one call of a convolution, transposed convolution or linear layer (bias not counted)."""
    if isinstance(module, nn.Conv2d | nn.Conv3d):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.ConvTranspose2d | nn.ConvTranspose3d):
        return inputs[0].numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def summarize_model(model: nn.Module, *, in_channels: int = 1, size: int = 256, planes: int | None = None) -> ModelSummary:
    """Measure ``model`` per ``in_channels`` x ``size`` x ``size`` image (a 3D network: per block of ``planes``
    such planes).

    The forward pass runs in training mode (what the backward pass of training keeps) on a copy,
    so ``model`` itself, its BatchNorm statistics included, is left untouched.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"summary size must be a positive integer, got {size!r}")
    params = list(model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    probe = copy.deepcopy(model).train()
    param_storages = {p.untyped_storage().data_ptr() for p in probe.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in param_storages and storage.nbytes() > 0:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    macs = 0

    def count_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        macs += _conv_or_linear_macs(module, inputs, output)

    handles = [
        m.register_forward_hook(count_macs)
        for m in probe.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Conv3d | nn.ConvTranspose3d | nn.Linear)
    ]
    dtype = params[0].dtype if params else torch.float32
    shape = (size, size) if planes is None else (planes, size, size)

    def probe_with(images: int) -> None:
        image = torch.randn(images, in_channels, *shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            probe(image)

    batch = 1
    try:
        try:
            probe_with(batch)
        except ValueError:  # training-mode BatchNorm refuses one image pooled to 1x1 (PAN): two, reported per image
            saved.clear()
            macs, batch = 0, 2
            probe_with(batch)
    except RuntimeError as exc:  # e.g. an smp encoder that needs a size divisible by 32
        raise ConfigError(
            f"the model cannot run on a {size} x {size} image with {in_channels} channel(s): {exc}"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    return ModelSummary(
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        param_mb=param_bytes / BYTES_PER_MB,
        activation_mb=sum(saved.values()) / batch / BYTES_PER_MB,
        layers_with_params=sum(1 for m in model.modules() if next(m.parameters(recurse=False), None) is not None),
        leaf_modules=sum(1 for m in model.modules() if next(m.children(), None) is None),
        macs=macs // batch,
    )


def summarize(cfg: ModelConfig, size: int = 256) -> ModelSummary:
    """The summary of the network ``cfg`` describes (built from the registry, random weights); a 3D network's
    figures are per window of ``cfg.window_planes`` planes."""
    planes = cfg.window_planes if is_volumetric(cfg.arch) else None
    return summarize_model(build_model(cfg), in_channels=cfg.in_channels, size=size, planes=planes)
