"""The hardware at hand: numeric precision and CPU threads. Nothing here imports Lightning.

Inference and the web app choose precision through this module, so that starting `predict` or
`serve` never loads the training stack.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels on this CPU (AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(choice: str) -> str:
    """``auto``/``bf16``/``32`` -> Lightning's precision names: bf16 autocast where the hardware has it, else fp32."""
    if choice == "32":
        return "32-true"
    if choice == "bf16":
        return "bf16-mixed"
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_supports_bf16() else "32-true"


def uses_autocast(choice: str) -> bool:
    """Whether inference at ``choice`` runs under bfloat16 autocast."""
    return resolve_precision(choice) != "32-true"


def set_threads(threads: int | None) -> None:
    """Limit torch's CPU threads (None keeps every core)."""
    if threads:
        torch.set_num_threads(threads)


def cache_dir() -> Path:
    """Where measurements and conversions made for this machine are kept: $CARDIOSEG_CACHE_DIR, else the XDG cache."""
    configured = os.environ.get("CARDIOSEG_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cardioseg"


SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def machine_fingerprint() -> dict[str, object]:
    """What makes a speed measurement valid: the CPU model and its vector flags, the threads, the library versions.

    A measurement cached on one CPU (say an AMD EPYC without AMX) is never reused on another
    (an Intel Xeon with AMX), nor after a library upgrade.
    """
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    versions = {"torch": torch.__version__}
    for package in ("onnxruntime", "openvino"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": model, "flags": sorted(flags & set(SPEED_FLAGS)), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(), **versions}
