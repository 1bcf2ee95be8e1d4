"""Batched network inference on CPU or GPU: bfloat16 autocast and channels_last where they help."""

from __future__ import annotations

import time

import numpy as np
import torch

from cardioseg.inference.backend import BatchedBackend
from cardioseg.models.checkpoint import ModelBundle
from cardioseg.runtime import uses_autocast


class TorchBackend(BatchedBackend):
    """Turns preprocessed images (N, H, W) into class probabilities (N, C, H, W).

    C is 1 for a binary model (sigmoid foreground probability) and K+1 for a multi-class model
    (softmax). ``seconds`` accumulates pure network time, for per-image timings.
    """

    def __init__(self, bundle: ModelBundle, precision: str = "auto", batch_size: int = 16, channels_last: bool = True):
        self.bundle = bundle
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.autocast = uses_autocast(precision)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = bundle.model.to(self.device, memory_format=self.memory_format).eval()
        self.batch_size = batch_size
        self.seconds = 0.0
        self.images_seen = 0

    @torch.inference_mode()
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.array(batch, dtype=np.float32))[:, None].to(self.device)
        x = x.contiguous(memory_format=self.memory_format)
        started = time.perf_counter()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(x)
        logits = logits.float()
        probs = torch.sigmoid(logits) if self.bundle.binary else torch.softmax(logits, dim=1)
        out = probs.cpu().numpy()
        self.seconds += time.perf_counter() - started
        self.images_seen += len(batch)
        return out
