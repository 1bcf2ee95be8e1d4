"""Raw images and volumes in, probabilities on their own grid out: the one segmenter of predict, evaluate and the app.

Each model of an ensemble applies the pipeline of its own plan (orientation, steps, size) and
its probabilities are mapped back onto the input's grid before they are averaged, so models
trained at different sizes or with different normalisations can be combined. They must agree on
the task (classes and label map) and, for volumes, on the slice axis.

A two-stage model runs its first stage on the whole input first: the box of what it finds, projected over a
volume's planes and widened by the plan's ``foreground_margin``, is the crop its second stage segments.

Test-time augmentation averages the probabilities of the image, its left-right flip and its
up-down flip (each flipped back), computed on the network input.

Every member and every flip is one *opinion*; how much their label maps disagree is the case's
uncertainty score (``clinical.qc.PairwiseAgreement``: 1 - mean pairwise Dice, on the input's grid),
known when there are at least two opinions (an ensemble, or TTA).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from cardioseg.clinical.qc import PairwiseAgreement
from cardioseg.data.preprocess import ArrayPlanes, FittedPipeline, Geometry, restore_probabilities
from cardioseg.errors import ConfigError
from cardioseg.inference.backend import Backend
from cardioseg.inference.members import Member
from cardioseg.inference.volumes import Volume, VolumePlanes
from cardioseg.plan import Plan
from cardioseg.postprocess import to_labels

BYTES_PER_VOXEL = 16
"""Memory one voxel costs when a volume is held in memory (raw array plus each distinct pipeline's denoised copy)."""


def flip_opinions(backend: Backend, images: np.ndarray) -> list[np.ndarray]:
    """Probabilities of the identity, left-right and up-down flips (each flipped back), in one batched call;
    ``images`` (N, H, W) or (N, C, H, W)."""
    n = len(images)
    probs = backend.probabilities(np.concatenate([images, images[..., ::-1], images[..., ::-1, :]]))
    return [probs[:n], probs[n : 2 * n][..., ::-1], probs[2 * n :][..., ::-1, :]]


def flip_tta(backend: Backend, images: np.ndarray) -> np.ndarray:
    """Mean probabilities over identity, left-right and up-down flips."""
    first, across, down = flip_opinions(backend, images)
    return (first + across + down) / 3.0


def with_context(fitted: FittedPipeline, indices: range, count: int, context: int,
                 inputs: list[tuple[np.ndarray, Geometry]]) -> np.ndarray:
    """The network input for planes ``indices`` of a volume of ``count`` planes: (N, H, W), or for a 2.5D model
    (N, 2 * context + 1, H, W), each plane between its neighbours, clamped at the volume's ends as in training
    (``data.dataset.context_rows``). ``inputs`` are the planes themselves, already preprocessed."""
    planes = np.stack([x for x, _ in inputs])
    if not context:
        return planes
    own = dict(zip(indices, planes))
    stack = [[own[j] if j in own else fitted.image(j)[0] for j in np.clip(np.arange(k - context, k + context + 1), 0,
                                                                           count - 1)] for k in indices]
    return np.asarray(stack, np.float32)


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
        return sum(stage.backend.seconds for member in self.members for stage in (member, member.coarse) if stage)

    @property
    def n_opinions(self) -> int:
        """Members times flips: the label maps whose disagreement is the uncertainty score."""
        return len(self.members) * (3 if self.tta else 1)

    @property
    def label_ids(self) -> list[int]:
        """Foreground values of ``postprocess.to_labels`` maps: 1 for a one-channel model, else 1..C-1."""
        return [1] if self.classes == 1 else list(range(1, self.classes))

    def new_agreement(self) -> PairwiseAgreement | None:
        """An accumulator for one case's uncertainty, or None when there is a single opinion."""
        return PairwiseAgreement(self.label_ids) if self.n_opinions > 1 else None

    def _opinions(self, member: Member, images: np.ndarray) -> list[np.ndarray]:
        return flip_opinions(member.backend, images) if self.tta else [member.backend.probabilities(images)]

    @staticmethod
    def _first_stage_images(member: Member, images: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        """Where a two-stage model's first stage finds the structure in each image (None for other models)."""
        if member.coarse is None:
            return [None] * len(images)
        return [to_labels(prob) > 0 for prob in Segmenter([member.coarse]).images(images)]

    @staticmethod
    def _first_stage_volume(member: Member, volume: Volume, memory_budget: int) -> np.ndarray | None:
        """A two-stage model's first-stage mask of a volume, projected over its planes (None for other models)."""
        if member.coarse is None:
            return None
        projection: np.ndarray | None = None
        for _, prob in Segmenter([member.coarse]).volume(volume, memory_budget):
            found = to_labels(prob) > 0
            projection = found if projection is None else projection | found
        return projection

    def _block_opinions(self, member: Member, fitted: FittedPipeline, count: int) -> list[np.ndarray]:
        """A 3D network's opinions (D, C, H, W) on a whole volume: its planes as one block, flipped too with TTA."""
        block = member.backend.block_probabilities  # type: ignore[attr-defined]  # load_member gives 3D models PyTorch
        planes = np.stack([fitted.image(k)[0] for k in range(count)])
        if not self.tta:
            return [block(planes)]
        return [block(planes), block(planes[..., ::-1])[..., ::-1], block(planes[..., ::-1, :])[..., ::-1, :]]

    def images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """2D images as stored (H, W) -> probabilities (C, H, W) on each image's own grid and layout."""
        return self.images_with_uncertainty(images, uncertainty=False)[0]

    def images_with_uncertainty(
        self, images: Sequence[np.ndarray], threshold: float = 0.5, uncertainty: bool = True
    ) -> tuple[list[np.ndarray], list[float | None]]:
        """``images`` and each image's uncertainty score (None with a single opinion or when not asked).

        Each opinion's probabilities are restored to the image's grid and thresholded at ``threshold``
        (``postprocess.to_labels``) before they are compared.
        """
        volumetric = next((m for m in self.members if m.plan.spatial_dims == 3), None)
        if volumetric is not None:
            raise ConfigError("a 3D network segments volumes (NIfTI, MetaImage, a DICOM series), not 2D images",
                              volumetric.source)
        totals = [np.zeros((self.classes, *image.shape), np.float32) for image in images]
        agreements = [self.new_agreement() if uncertainty else None for _ in images]
        opinions: list[list[np.ndarray]] = [[] for _ in images]
        for member in self.members:
            pipeline = member.pipeline
            inputs = [pipeline.image(image, mask) for image, mask in zip(images, self._first_stage_images(member, images))]
            parts = self._opinions(member, np.stack([x for x, _ in inputs]))
            for i, (total, (_, geometry)) in enumerate(zip(totals, inputs)):
                total += pipeline.orient.invert(restore_probabilities(sum(p[i] for p in parts) / len(parts), geometry))
                if agreements[i] is not None:
                    opinions[i] += [to_labels(pipeline.orient.invert(restore_probabilities(p[i], geometry)), threshold)
                                    for p in parts]
        for agreement, labels in zip(agreements, opinions):
            if agreement is not None:
                agreement.add(labels)
        scores = [agreement.uncertainty if agreement is not None else None for agreement in agreements]
        return [total / len(self.members) for total in totals], scores

    def volume(self, volume: Volume, memory_budget: int, batch: int = 16,
               agreement: PairwiseAgreement | None = None,
               threshold: float = 0.5) -> Iterator[tuple[int, np.ndarray]]:
        """(plane index, probabilities (C, plane shape)) for every plane along the slice axis, in order.

        Streams the volume from disk when holding it (and each distinct pipeline's denoised copy)
        would exceed ``memory_budget`` bytes; otherwise reads it once and shares it between models.
        With ``agreement`` (``new_agreement()``), every plane's opinions are added to it, so that
        once the planes are consumed it holds the volume's uncertainty score.
        """
        axis = self.slice_axis
        keys = [member.plan.preprocess.model_dump_json() if member.coarse is None else f"second stage {index}"
                for index, member in enumerate(self.members)]  # a two-stage crop depends on its own first stage
        stream = volume.n_voxels * BYTES_PER_VOXEL * len(set(keys)) > memory_budget
        source = VolumePlanes(volume, axis) if stream else ArrayPlanes(volume.read(), axis)
        fitted: dict[str, FittedPipeline] = {}
        for key, member in zip(keys, self.members):
            if key not in fitted:
                fitted[key] = member.pipeline.fit(source, keep=not stream,
                                                  foreground=self._first_stage_volume(member, volume, memory_budget))
        count = volume.shape[axis]
        blocks = {index: self._block_opinions(member, fitted[keys[index]], count)
                  for index, member in enumerate(self.members) if member.plan.spatial_dims == 3}
        for start in range(0, count, batch):
            indices = range(start, min(count, start + batch))
            totals: list[np.ndarray] | None = None
            opinions: list[list[np.ndarray]] = [[] for _ in indices]
            for index, member in enumerate(self.members):
                f = fitted[keys[index]]
                inputs = [f.image(k) for k in indices]
                parts = [opinion[start : start + len(indices)] for opinion in blocks[index]] if index in blocks else \
                    self._opinions(member, with_context(f, indices, count, member.plan.context_slices, inputs))
                restored = [restore_probabilities(sum(p[i] for p in parts) / len(parts), geometry)
                            for i, (_, geometry) in enumerate(inputs)]
                totals = restored if totals is None else [t + r for t, r in zip(totals, restored)]
                if agreement is not None:
                    for i, (_, geometry) in enumerate(inputs):
                        opinions[i] += [to_labels(restore_probabilities(p[i], geometry), threshold) for p in parts]
            for i, (k, total) in enumerate(zip(indices, totals or [])):
                if agreement is not None:
                    agreement.add(opinions[i])
                yield k, total / len(self.members)
