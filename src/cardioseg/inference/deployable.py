"""The network as it is deployed: raw intensities in, probabilities out.

``DeployableModel`` wraps a trained network with the intensity normalisation of its plan (the torch
twin of the pipeline's ``Normalize`` step) and the output activation, so an exported file needs
nothing but the geometric steps in front of it.

The statistics are those of each image in the batch, unless ``stats`` is given: one pair
(low, high) for min-max/percentile or (mean, std) for z-score, applied to every image. NaN
entries mean "per image". Volumes need this: they are normalised with whole-volume statistics,
which a single slice cannot compute. ``cardioseg predict`` feeds images that the pipeline already
normalised together with ``IDENTITY_STATS``, so the graph sees exactly what PyTorch sees.
"""

from __future__ import annotations

import torch
from torch import nn

from cardioseg.data.preprocess import Normalize


class DeployableModel(nn.Module):
    """normalise -> network -> sigmoid (one channel) or softmax: (B, C_in, H, W) -> (B, C, H, W)."""

    def __init__(self, network: nn.Module, normalize: Normalize, binary: bool) -> None:
        super().__init__()
        self.normalize = normalize.torch_module()
        self.network = network
        self.binary = binary

    def forward(self, image: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        if stats is None:
            stats = torch.full((2,), float("nan"), dtype=image.dtype, device=image.device)
        logits = self.network(self.normalize(image, stats))
        return torch.sigmoid(logits) if self.binary else torch.softmax(logits, dim=1)
