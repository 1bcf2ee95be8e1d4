"""Batched network inference on CPU or GPU: bfloat16 autocast and channels_last where they help."""

from __future__ import annotations

import time

import numpy as np
import torch

from cardioseg.inference.backend import BatchedBackend, network_input
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
        volumetric = bundle.plan.spatial_dims == 3  # channels_last is for 4D tensors
        self.memory_format = torch.channels_last if channels_last and not volumetric else torch.contiguous_format
        self.model = bundle.model.to(self.device, memory_format=self.memory_format).eval()
        self.batch_size = batch_size
        self.seconds = 0.0
        self.images_seen = 0

    @torch.inference_mode()
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(network_input(batch, self.bundle.model_cfg.in_channels)).to(self.device)
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

    @torch.inference_mode()
    def block_probabilities(self, planes: np.ndarray, overlap: float = 0.5) -> np.ndarray:
        """A 3D network's probabilities (D, C, H, W) for a volume's preprocessed planes (D, H, W).

        Windows of the plan's ``window_planes`` planes slide along the planes with ``overlap``, blended with
        Gaussian weights (MONAI's ``sliding_window_inference``); a volume with fewer planes is padded.
        """
        from monai.inferers import sliding_window_inference

        x = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))[None, None].to(self.device)
        window = (self.bundle.plan.window_planes, *planes.shape[1:])
        started = time.perf_counter()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = sliding_window_inference(x, window, 1, lambda block: self.model(block).float(), overlap=overlap,
                                              mode="gaussian")
        probs = torch.sigmoid(logits) if self.bundle.binary else torch.softmax(logits, dim=1)
        out = probs[0].transpose(0, 1).cpu().numpy()  # (C, D, H, W) -> (D, C, H, W)
        self.seconds += time.perf_counter() - started
        self.images_seen += len(planes)
        return out
