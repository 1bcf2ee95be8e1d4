"""The network as it is deployed: raw intensities in, probabilities out.

``DeployableModel`` wraps a trained network with the intensity normalisation of its bundle and
the output activation, so an exported file needs nothing but a resize in front of it. It
mirrors ``cardioseg.data.preprocess.normalize`` (min-max, percentile clip with numpy's linear
interpolation, z-score with the population standard deviation; a flat image becomes zeros).

The statistics are those of each image in the batch, unless ``stats`` is given: one pair
(low, high) for min-max/percentile or (mean, std) for z-score, applied to every image. NaN
entries mean "per image". Volumes need this: they are normalised with whole-volume statistics,
which a single slice cannot compute. ``cardioseg predict`` feeds images that are already
normalised together with ``IDENTITY_STATS``, so the graph sees exactly what PyTorch sees.
"""

from __future__ import annotations

import torch
from torch import nn

NORMALIZATIONS = ("minmax", "percentile", "zscore", "none")
IDENTITY_STATS = (0.0, 1.0)
"""``stats`` that leave a normalised image unchanged: (low 0, high 1) or (mean 0, std 1)."""


class GraphNormalize(nn.Module):
    """Per-image (or given) intensity normalisation inside the graph; (B, 1, H, W) -> same."""

    def __init__(self, method: str, percentiles: tuple[float, float] = (5.0, 95.0)) -> None:
        super().__init__()
        if method not in NORMALIZATIONS:
            raise ValueError(f"unknown normalisation {method!r}")
        self.method = method
        self.low_q = float(percentiles[0]) / 100.0
        self.high_q = float(percentiles[1]) / 100.0

    def per_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 2) statistics of each image."""
        flat = image.flatten(1)
        if self.method == "zscore":
            mean = flat.mean(dim=1)
            std = (flat - mean[:, None]).square().mean(dim=1).sqrt()
            return torch.stack([mean, std], dim=1)
        if self.method == "percentile":
            quantiles = torch.tensor([self.low_q, self.high_q], dtype=image.dtype, device=image.device)
            return torch.quantile(flat, quantiles, dim=1, interpolation="linear").transpose(0, 1)
        return torch.stack([flat.amin(dim=1), flat.amax(dim=1)], dim=1)

    def forward(self, image: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        if self.method == "none":
            return image
        chosen = torch.where(torch.isnan(stats), self.per_image(image), stats)
        first = chosen[:, 0].reshape(-1, 1, 1, 1)
        second = chosen[:, 1].reshape(-1, 1, 1, 1)
        zeros = torch.zeros_like(image)
        if self.method == "zscore":
            valid = second > 0
            return torch.where(valid, (image - first) / torch.where(valid, second, torch.ones_like(second)), zeros)
        spread = second - first
        valid = spread > 0
        scaled = (image - first) / torch.where(valid, spread, torch.ones_like(spread))
        return torch.where(valid, scaled.clamp(0.0, 1.0), zeros)


class DeployableModel(nn.Module):
    """normalise -> network -> sigmoid (one channel) or softmax: (B, 1, H, W) -> (B, C, H, W)."""

    def __init__(self, network: nn.Module, method: str, percentiles: tuple[float, float], binary: bool) -> None:
        super().__init__()
        self.normalize = GraphNormalize(method, percentiles)
        self.network = network
        self.binary = binary

    def forward(self, image: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        if stats is None:
            stats = torch.full((2,), float("nan"), dtype=image.dtype, device=image.device)
        logits = self.network(self.normalize(image, stats))
        return torch.sigmoid(logits) if self.binary else torch.softmax(logits, dim=1)
