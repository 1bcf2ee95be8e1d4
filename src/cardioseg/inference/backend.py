"""What every inference backend offers: normalised images (N, H, W) or (N, C, H, W) in, probabilities (N, C, H, W) out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np


def network_input(batch: np.ndarray, channels: int) -> np.ndarray:
    """A batch as the network takes it, (N, channels, H, W) float32.

    Images (N, H, W) gain the channel axis; a 2.5D model (``Plan.context_slices``) given lone 2D images sees
    each one as its own neighbours, as the edge planes of a volume see themselves.
    """
    x = np.ascontiguousarray(batch, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    return np.ascontiguousarray(np.repeat(x, channels, axis=1)) if x.shape[1] == 1 and channels > 1 else x


class Backend(Protocol):
    """Normalised images (N, H, W) or (N, C, H, W) -> probabilities (N, C, H, W)."""

    batch_size: int
    seconds: float

    def probabilities(self, images: np.ndarray) -> np.ndarray: ...

    @property
    def ms_per_image(self) -> float: ...



class BatchedBackend:
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
