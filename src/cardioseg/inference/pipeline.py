"""Raw images and volumes in, probabilities on their own grid out: preprocessing, TTA, ensembling.

Each model of an ensemble applies its own preprocessing (orientation, chain, size) and its
probabilities are mapped back onto the input's grid before they are averaged, so models trained
at different sizes or with different normalisations can be combined. They must agree on the
number of output channels (what the classes are) and, for volumes, on the slice axis.

Test-time augmentation averages the probabilities of the image, its left-right flip and its
up-down flip (each flipped back), computed on the network input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from cardioseg.data.preprocess import orient, preprocess_2d, restore_probabilities
from cardioseg.errors import ConfigError
from cardioseg.inference.members import Backend, Member
from cardioseg.inference.volume_prep import InMemoryPlanes, PlaneInput, StreamedPlanes
from cardioseg.inference.volumes import VolumeFile

BYTES_PER_VOXEL = 16
"""Memory one voxel costs in the in-memory volume chain (raw, filtered and normalised copies)."""


def flip_tta(backend: Backend, images: np.ndarray) -> np.ndarray:
    """Mean probabilities over identity, left-right and up-down flips, in one batched call."""
    n = len(images)
    probs = backend.probabilities(np.concatenate([images, images[:, :, ::-1], images[:, ::-1, :]]))
    return (probs[:n] + probs[n : 2 * n][..., ::-1] + probs[2 * n :][..., ::-1, :]) / 3.0


def orient_channels(prob: np.ndarray, fix: str) -> np.ndarray:
    """Apply an orientation fix to the spatial axes of (C, H, W); each fix is its own inverse."""
    return np.moveaxis(orient(np.moveaxis(prob, 0, -1), fix), -1, 0)


class Segmenter:
    """An ensemble of ``Member`` models with optional flip TTA."""

    def __init__(self, members: Sequence[Member], tta: bool = False) -> None:
        if not members:
            raise ConfigError("at least one model is needed")
        first = members[0]
        for member in members[1:]:
            if member.classes != first.classes:
                raise ConfigError(
                    f"ensemble models disagree on the output: {first.source} has {first.classes} channel(s), "
                    f"{member.source} has {member.classes}", member.source)
            if member.slice_axis != first.slice_axis:
                raise ConfigError(
                    f"ensemble models disagree on the slice axis ({first.slice_axis} for {first.source}, "
                    f"{member.slice_axis} here)", member.source)
        self.members = list(members)
        self.tta = tta
        self.classes = first.classes
        self.slice_axis = first.slice_axis

    @property
    def binary(self) -> bool:
        return self.classes == 1

    def _run(self, member: Member, images: np.ndarray) -> np.ndarray:
        return flip_tta(member.backend, images) if self.tta else member.backend.probabilities(images)

    def images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """2D images as read (H, W) -> probabilities (C, H, W) on each image's own grid and layout."""
        totals = [np.zeros((self.classes, *image.shape), np.float32) for image in images]
        for member in self.members:
            inputs = [preprocess_2d(orient(image, member.orientation_fix), None, member.preprocess) for image in images]
            probs = self._run(member, np.stack([x for x, _, _ in inputs]))
            for total, prob, (_, _, geometry) in zip(totals, probs, inputs):
                total += orient_channels(restore_probabilities(prob, geometry), member.orientation_fix)
        return [total / len(self.members) for total in totals]

    def volume(self, volume: VolumeFile, memory_budget: int, batch: int = 16) -> Iterator[tuple[int, np.ndarray]]:
        """(plane index, probabilities (C, plane shape)) for every plane along the slice axis, in order.

        Streams the volume when the in-memory chain of every distinct preprocessing would exceed
        ``memory_budget`` bytes; otherwise reads it once and shares the array between models.
        """
        preps = {member.preprocess.model_dump_json() for member in self.members}
        stream = volume.n_voxels * BYTES_PER_VOXEL * len(preps) > memory_budget
        array = None if stream else volume.read()
        planes: dict[str, Callable[[int], PlaneInput]] = {}
        for member in self.members:
            key = member.preprocess.model_dump_json()
            if key not in planes:
                planes[key] = (StreamedPlanes(volume, member.preprocess, self.slice_axis) if array is None
                               else InMemoryPlanes(array, member.preprocess, self.slice_axis))
        del array
        count = volume.shape[self.slice_axis]
        for start in range(0, count, batch):
            indices = range(start, min(count, start + batch))
            totals: list[np.ndarray] | None = None
            for member in self.members:
                inputs = [planes[member.preprocess.model_dump_json()](k) for k in indices]
                probs = self._run(member, np.stack([x for x, _ in inputs]))
                restored = [restore_probabilities(p, geometry) for p, (_, geometry) in zip(probs, inputs)]
                totals = restored if totals is None else [t + r for t, r in zip(totals, restored)]
            for k, total in zip(indices, totals or []):
                yield k, total / len(self.members)
