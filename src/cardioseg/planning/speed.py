"""Training speed on the machine at hand, measured, never assumed.

The same network can train 2-3x faster on one CPU than on another, and bf16 autocast can be faster or
slower than fp32 depending on whether the CPU has AMX, AVX-512-BF16 only, or neither. So the planner times
a few real optimiser steps (forward, backward, AdamW, channels-last) of the candidate network at the
candidate input size in each precision the CPU offers, and keeps the figures in the cache folder keyed by
the machine fingerprint: a figure measured on another CPU or library version is never reused.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import torch

from cardioseg.config import ModelConfig
from cardioseg.fileio import write_json
from cardioseg.models.factory import build_model
from cardioseg.models.registry import is_volumetric
from cardioseg.runtime import cache_dir, cpu_supports_bf16, machine_fingerprint

CACHE_FILE = "training-speed.json"


@dataclass(frozen=True)
class Speed:
    precision: str
    """"bf16" (autocast) or "32" """
    images_per_s: float


def _key(model: ModelConfig, size: tuple[int, int], batch: int, precision: str) -> str:
    payload = {"machine": machine_fingerprint(), "model": model.model_dump(mode="json"), "size": list(size),
               "batch": batch, "precision": precision}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _entries() -> dict[str, Any]:
    try:
        entries = json.loads((cache_dir() / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}  # measuring again is always safe
    return entries if isinstance(entries, dict) else {}


def _time_steps(model_cfg: ModelConfig, size: tuple[int, int], batch: int, precision: str, steps: int) -> float:
    """Images (planes) per second over ``steps`` timed optimiser steps, after two untimed ones (allocation, oneDNN
    setup); a 3D network's batch holds ``batch`` windows of ``window_planes`` planes."""
    torch.manual_seed(0)
    volumetric = is_volumetric(model_cfg.arch)
    layout = torch.contiguous_format if volumetric else torch.channels_last
    shape = (model_cfg.window_planes, *size) if volumetric else size
    model = build_model(model_cfg).to(memory_format=layout).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.rand(batch, model_cfg.in_channels, *shape).contiguous(memory_format=layout)
    target = (torch.rand(batch, model_cfg.classes, *shape) > 0.5).float()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    started = 0.0
    for step in range(steps + 2):
        if step == 2:
            started = time.perf_counter()
        with autocast:
            out = model(images)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return batch * steps * (model_cfg.window_planes if volumetric else 1) / (time.perf_counter() - started)


def precisions() -> list[str]:
    """The precisions worth timing here: fp32 always, bf16 where oneDNN has bf16 kernels (or a GPU runs)."""
    return ["32", "bf16"] if cpu_supports_bf16() else ["32"]


def training_speed(model_cfg: ModelConfig, size: tuple[int, int], batch: int, precision: str,
                   steps: int = 3) -> Speed:
    """Measured (or cached for this machine) training images per second."""
    key = _key(model_cfg, size, batch, precision)
    entries = _entries()
    cached = entries.get(key)
    if isinstance(cached, dict) and isinstance(cached.get("images_per_s"), int | float):
        return Speed(precision, float(cached["images_per_s"]))
    speed = _time_steps(model_cfg, size, batch, precision, steps)
    entries = _entries()  # another process may have written meanwhile
    entries[key] = {"images_per_s": speed, "size": list(size), "batch": batch, "precision": precision,
                    "arch": model_cfg.arch, "encoder": model_cfg.encoder, "cpu": machine_fingerprint()["cpu"]}
    write_json(cache_dir() / CACHE_FILE, entries)
    return Speed(precision, speed)


def fastest(model_cfg: ModelConfig, size: tuple[int, int], batch: int) -> tuple[Speed, list[Speed]]:
    """The fastest precision at this size, and every measurement (for the explanation)."""
    measured = [training_speed(model_cfg, size, batch, p) for p in precisions()]
    return max(measured, key=lambda s: s.images_per_s), measured
