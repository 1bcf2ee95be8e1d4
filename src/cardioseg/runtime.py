"""The hardware at hand: numeric precision and CPU threads. Nothing here imports Lightning.

Inference and the web app choose precision through this module, so that starting `predict` or
`serve` never loads the training stack.
"""

from __future__ import annotations

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
