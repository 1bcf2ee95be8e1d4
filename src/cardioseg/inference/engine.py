"""Batched network inference on CPU or GPU: bfloat16 autocast and channels_last where they help."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import torch

from cardioseg.models.checkpoint import ModelBundle
from cardioseg.training.run import resolve_precision


class BatchedPredictor:
    """Batching and per-image timing shared by every backend; subclasses implement ``_forward``."""

    batch_size: int
    seconds: float
    images_seen: int

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def iter_probabilities(self, images: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (start index, probabilities) batch by batch, so callers can stream results."""
        for start in range(0, len(images), self.batch_size):
            yield start, self._forward(images[start : start + self.batch_size])

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.concatenate([p for _, p in self.iter_probabilities(images)]) if len(images) else np.zeros((0,))

    @property
    def ms_per_image(self) -> float:
        return 1000.0 * self.seconds / max(1, self.images_seen)


class Predictor(BatchedPredictor):
    """Turns preprocessed images (N, H, W) into class probabilities (N, C, H, W).

    C is 1 for a binary model (sigmoid foreground probability) and K+1 for a multi-class model
    (softmax). ``seconds`` accumulates pure network time, for per-image timings.
    """

    def __init__(self, bundle: ModelBundle, precision: str = "auto", batch_size: int = 16, channels_last: bool = True):
        self.bundle = bundle
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.autocast = resolve_precision(precision) != "32-true"
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


def to_labels(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Probabilities (C, ...) -> label map (...): threshold for C == 1, argmax otherwise."""
    if prob.shape[0] == 1:
        return (prob[0] > threshold).astype(np.uint8)
    return prob.argmax(axis=0).astype(np.uint8)
