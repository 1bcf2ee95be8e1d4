"""Raw images and volumes in, probabilities on their own grid out: the one segmenter of predict, evaluate and the app.

Each model of an ensemble applies the pipeline of its own plan (orientation, steps, size) and
its probabilities are mapped back onto the input's grid before they are averaged, so models
trained at different sizes or with different normalisations can be combined. They must agree on
the task (classes and label map) and, for volumes, on the slice axis.

Test-time augmentation averages the probabilities of the image, its left-right flip and its
up-down flip (each flipped back), computed on the network input.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from cardioseg.data.preprocess import ArrayPlanes, FittedPipeline, restore_probabilities
from cardioseg.errors import ConfigError
from cardioseg.inference.backend import Backend
from cardioseg.inference.members import Member
from cardioseg.inference.volumes import Volume, VolumePlanes
from cardioseg.plan import Plan

BYTES_PER_VOXEL = 16
"""Memory one voxel costs when a volume is held in memory (raw array plus each distinct pipeline's denoised copy)."""


def flip_tta(backend: Backend, images: np.ndarray) -> np.ndarray:
    """Mean probabilities over identity, left-right and up-down flips, in one batched call."""
    n = len(images)
    probs = backend.probabilities(np.concatenate([images, images[:, :, ::-1], images[:, ::-1, :]]))
    return (probs[:n] + probs[n : 2 * n][..., ::-1] + probs[2 * n :][..., ::-1, :]) / 3.0


class Segmenter:
    """An ensemble of ``Member`` models with optional flip TTA."""

    def __init__(self, members: Sequence[Member], tta: bool = False) -> None:
        if not members:
            raise ConfigError("at least one model is needed")
        first = members[0]
        for member in members[1:]:
            if not member.plan.same_task(first.plan):
                raise ConfigError(
                    f"ensemble models disagree on the task: {first.source} labels "
                    f"{first.plan.class_names} from {first.plan.label_map}, this one {member.plan.class_names} from "
                    f"{member.plan.label_map}", member.source)
            if member.plan.is_3d and member.plan.slice_axis != first.plan.slice_axis:
                raise ConfigError(
                    f"ensemble models disagree on the slice axis ({first.plan.slice_axis} for {first.source}, "
                    f"{member.plan.slice_axis} here)", member.source)
        self.members = list(members)
        self.tta = tta
        self.plan: Plan = first.plan
        self.classes = first.plan.out_channels

    @property
    def binary(self) -> bool:
        return self.plan.binary

    @property
    def slice_axis(self) -> int:
        return self.plan.slice_axis

    @property
    def network_seconds(self) -> float:
        return sum(member.backend.seconds for member in self.members)

    def _run(self, member: Member, images: np.ndarray) -> np.ndarray:
        return flip_tta(member.backend, images) if self.tta else member.backend.probabilities(images)

    def images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """2D images as stored (H, W) -> probabilities (C, H, W) on each image's own grid and layout."""
        totals = [np.zeros((self.classes, *image.shape), np.float32) for image in images]
        for member in self.members:
            pipeline = member.pipeline
            inputs = [pipeline.image(image) for image in images]
            probs = self._run(member, np.stack([x for x, _ in inputs]))
            for total, prob, (_, geometry) in zip(totals, probs, inputs):
                total += pipeline.orient.invert(restore_probabilities(prob, geometry))
        return [total / len(self.members) for total in totals]

    def volume(self, volume: Volume, memory_budget: int, batch: int = 16) -> Iterator[tuple[int, np.ndarray]]:
        """(plane index, probabilities (C, plane shape)) for every plane along the slice axis, in order.

        Streams the volume from disk when holding it (and each distinct pipeline's denoised copy)
        would exceed ``memory_budget`` bytes; otherwise reads it once and shares it between models.
        """
        axis = self.slice_axis
        keys = {member.plan.preprocess.model_dump_json() for member in self.members}
        stream = volume.n_voxels * BYTES_PER_VOXEL * len(keys) > memory_budget
        source = VolumePlanes(volume, axis) if stream else ArrayPlanes(volume.read(), axis)
        fitted: dict[str, FittedPipeline] = {}
        for member in self.members:
            key = member.plan.preprocess.model_dump_json()
            if key not in fitted:
                fitted[key] = member.pipeline.fit(source, keep=not stream)
        count = volume.shape[axis]
        for start in range(0, count, batch):
            indices = range(start, min(count, start + batch))
            totals: list[np.ndarray] | None = None
            for member in self.members:
                f = fitted[member.plan.preprocess.model_dump_json()]
                inputs = [f.image(k) for k in indices]
                probs = self._run(member, np.stack([x for x, _ in inputs]))
                restored = [restore_probabilities(p, geometry) for p, (_, geometry) in zip(probs, inputs)]
                totals = restored if totals is None else [t + r for t, r in zip(totals, restored)]
            for k, total in zip(indices, totals or []):
                yield k, total / len(self.members)
