"""Post-processing of network outputs: small steps, each a function, chained in a fixed order.

``probabilities_to_labels`` is the one way from network probabilities to a label map, used by
predict, evaluate and the app alike: threshold (one channel) or argmax, then the chain below
(``finish_labels``). ``postprocess`` (binary) and ``postprocess_labels`` (multi-class) apply, in
this order:

1. threshold (binary only): ``prob > cfg.threshold``; a ``bool`` input is taken as a mask as is.
2. closing with a disk of ``cfg.closing_radius`` pixels (0 = off): bridges small gaps so that
   step 3 can see nearly-closed cavities as closed. The disk is skimage's non-strict one
   (radius + 0.5: radius 1 is the 3x3 square), because a strict digital disk has one-pixel
   tips that fit back into a one-pixel gap, leaving the gap's ends open.
3. hole filling (``cfg.fill_holes``): background regions not connected (4-/6-neighbourhood) to
   the array border become foreground.
4. empty-slice suppression (3D only, on when ``cfg.min_slice_area > 0`` or ``cfg.max_slice_fill
   < 1``): slices along ``slice_axis`` whose mask is smaller than ``min_slice_area`` pixels, or
   is *diffuse*, or covers more than ``max_slice_fill`` of the slice, are emptied. Diffuse = at
   least ``DIFFUSE_MIN_COMPONENTS`` 2D components with the largest holding less than half of the
   slice's foreground: scattered speckle, not an organ section. An almost wholly foreground slice
   is the left-atrium thesis's "uniformly bright output": a network that failed on a slice with
   no atrium, never an atrium (a few percent of an MRI slice).
5. largest connected component (``cfg.largest_component``), full connectivity (8 in 2D, 26 in
   3D), computed in 3D for volumes; runs last so it judges the cleaned mask.

In-plane steps (closing, hole filling) act per 2D slice along ``slice_axis`` for volumes:
cardiac volumes are often anisotropic (thick short-axis slices), where a radius counted in
voxels would mean very different distances across slices, and a cavity open at the end of a
volume is no 3D hole although every slice shows it closed. Pass ``slice_axis=None`` to the
step functions for true 3D operations.

Closing treats the space outside the array as background, without shrinking masks that touch
the border (the array is padded before closing).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from skimage import measure, morphology

from cardioseg.config import Config, PostprocessConfig
from cardioseg.errors import DataError
from cardioseg.plan import Plan

DIFFUSE_MIN_COMPONENTS = 3

MaskOp = Callable[[np.ndarray], np.ndarray]


def _per_slice(mask: np.ndarray, op: MaskOp, slice_axis: int | None) -> np.ndarray:
    """Apply a 2D ``op`` to every slice of a volume along ``slice_axis`` (or to the whole array)."""
    if mask.ndim == 2 or slice_axis is None:
        return op(mask)
    moved = np.moveaxis(mask, slice_axis, 0)
    return np.moveaxis(np.stack([op(s) for s in moved]), 0, slice_axis)


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise DataError(f"post-processing needs a 2D or 3D array, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def threshold(prob: np.ndarray, level: float = 0.5) -> np.ndarray:
    """``prob > level``; a boolean array is already a mask and is returned unchanged."""
    prob = np.asarray(prob)
    return prob if prob.dtype == bool else prob > level


def close_mask(mask: np.ndarray, radius: int, slice_axis: int | None = 2) -> np.ndarray:
    """Morphological closing with a disk (per slice) or ball (``slice_axis=None``) of ``radius``."""
    mask = _check_mask(mask)
    if radius <= 0:
        return mask

    def op(m: np.ndarray) -> np.ndarray:
        shape = morphology.disk if m.ndim == 2 else morphology.ball
        footprint = shape(radius, strict_radius=False)
        padded = np.pad(m, radius)
        closed = ndimage.binary_closing(padded, structure=footprint)
        return closed[tuple(slice(radius, -radius) for _ in range(m.ndim))]

    return _per_slice(mask, op, slice_axis)


def fill_holes(mask: np.ndarray, slice_axis: int | None = 2) -> np.ndarray:
    """Fill enclosed background, per 2D slice of a volume (or in 3D with ``slice_axis=None``)."""
    return _per_slice(_check_mask(mask), ndimage.binary_fill_holes, slice_axis)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected component (full connectivity); ties keep the first found."""
    mask = _check_mask(mask)
    labels = measure.label(mask, connectivity=mask.ndim)
    if labels.max() <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def is_diffuse(slice_mask: np.ndarray) -> bool:
    """Many 2D components with the largest under half the foreground: speckle, not an organ."""
    labels = measure.label(slice_mask, connectivity=2)
    if labels.max() < DIFFUSE_MIN_COMPONENTS:
        return False
    sizes = np.bincount(labels.ravel())[1:]
    return bool(sizes.max() < 0.5 * sizes.sum())


def suppress_slices(mask: np.ndarray, min_area: int, slice_axis: int = 2, max_fill: float = 1.0) -> np.ndarray:
    """Empty the slices of a volume whose mask area is below ``min_area``, which are diffuse (when
    ``min_area`` > 0), or whose mask covers more than ``max_fill`` of the slice."""
    mask = _check_mask(mask)
    if mask.ndim != 3:
        raise DataError(f"empty-slice suppression needs a 3D volume, got shape {mask.shape}")

    def op(s: np.ndarray) -> np.ndarray:
        area = np.count_nonzero(s)
        small = min_area > 0 and (area < min_area or is_diffuse(s))
        return np.zeros_like(s) if small or area > max_fill * s.size else s

    return _per_slice(mask, op, slice_axis)


def _prune(mask: np.ndarray, cfg: PostprocessConfig, slice_axis: int) -> np.ndarray:
    """Steps 4-5 of the chain: drop poor slices, then keep the largest component."""
    if mask.ndim == 3 and (cfg.min_slice_area > 0 or cfg.max_slice_fill < 1):
        mask = suppress_slices(mask, cfg.min_slice_area, slice_axis, cfg.max_slice_fill)
    return largest_component(mask) if cfg.largest_component else mask


def postprocess(prob_or_mask: np.ndarray, cfg: PostprocessConfig, slice_axis: int = 2) -> np.ndarray:
    """The binary chain (module docstring) on a 2D/3D probability map or mask -> bool mask."""
    mask = close_mask(threshold(prob_or_mask, cfg.threshold), cfg.closing_radius, slice_axis)
    if cfg.fill_holes:
        mask = fill_holes(mask, slice_axis)
    return _prune(mask, cfg, slice_axis)


def postprocess_labels(labels: np.ndarray, cfg: PostprocessConfig, slice_axis: int = 2) -> np.ndarray:
    """The chain applied per class of an argmax label map (``cfg.threshold`` is not used).

    Classes are processed in ascending id and may only gain background pixels: a class's
    closing never overwrites another class, and only holes made purely of background are filled
    (so the myocardium ring does not swallow the cavity it encloses). Pixels a class loses
    (small slices, smaller components) become background.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise DataError(f"post-processing needs a 2D or 3D label map, got shape {labels.shape}")
    out = labels.copy()
    for class_id in np.unique(labels[labels != 0]):
        background = out == 0
        grown = (out == class_id) | (close_mask(out == class_id, cfg.closing_radius, slice_axis) & background)
        if cfg.fill_holes:
            grown |= _background_holes(grown, background, slice_axis)
        kept = _prune(grown, cfg, slice_axis)
        out[grown & ~kept] = 0
        out[kept] = class_id
    return out


def _background_holes(mask: np.ndarray, background: np.ndarray, slice_axis: int) -> np.ndarray:
    """The holes of ``mask`` (per slice for volumes) that consist of background only."""
    holes = fill_holes(mask, slice_axis) & ~mask
    components, _ = ndimage.label(holes, structure=_hole_structure(mask.ndim, slice_axis))
    impure = np.unique(components[holes & ~background])
    return holes & ~np.isin(components, impure)


def _hole_structure(ndim: int, slice_axis: int) -> np.ndarray:
    """Face connectivity within a slice, none across slices: a hole is a per-slice notion."""
    structure = ndimage.generate_binary_structure(ndim, 1)
    if ndim == 3:
        index: list[slice | int] = [slice(None)] * 3
        for end in (0, 2):
            index[slice_axis] = end
            structure[tuple(index)] = False
    return structure


def to_labels(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Probabilities (C, ...) -> label map (...): threshold for C == 1, argmax otherwise; no post-processing."""
    if prob.shape[0] == 1:
        return (prob[0] > threshold).astype(np.uint8)
    return prob.argmax(axis=0).astype(np.uint8)


def finish_labels(raw: np.ndarray, binary: bool, cfg: PostprocessConfig, slice_axis: int) -> np.ndarray:
    """The post-processing chain on a label map from ``to_labels`` (2D, or a volume assembled plane by plane)."""
    if binary:
        return postprocess(raw.astype(bool), cfg, slice_axis).astype(np.uint8)
    return postprocess_labels(raw, cfg, slice_axis).astype(np.uint8)


def probabilities_to_labels(prob: np.ndarray, cfg: PostprocessConfig, slice_axis: int = 2) -> np.ndarray:
    """Probabilities (C, ...) -> post-processed uint8 label map: what predict writes and evaluate scores."""
    return finish_labels(to_labels(prob, cfg.threshold), prob.shape[0] == 1, cfg, slice_axis)


def planned_postprocess(given: PostprocessConfig, plan: Plan) -> PostprocessConfig:
    """The model's own post-processing (``plan.postprocess``, chosen on its validation split) under the settings
    given explicitly: a field set in a configuration file or on the command line wins, the others come from the plan."""
    if plan.postprocess is None:
        return given
    return plan.postprocess.model_copy(update={name: getattr(given, name) for name in given.model_fields_set})


def with_planned_postprocess(cfg: Config, plan: Plan) -> Config:
    """``cfg`` with ``predict.postprocess`` and ``evaluate.postprocess`` completed from the model's plan."""
    return cfg.model_copy(update={
        "predict": cfg.predict.model_copy(update={"postprocess": planned_postprocess(cfg.predict.postprocess, plan)}),
        "evaluate": cfg.evaluate.model_copy(update={"postprocess": planned_postprocess(cfg.evaluate.postprocess, plan)}),
    })
