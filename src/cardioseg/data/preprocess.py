"""The one preprocessing pipeline, built from a plan and used by prepare, train, evaluate, predict, export and the app.

Steps, in this order: orientation fix (2D images) -> median filter -> CLAHE -> intensity
normalisation -> ROI crop -> resize. The foreground crop of a two-stage model's second stage is placed
by a mask given to ``fit`` (the reference when preparing, the first stage's mask when predicting). Each step has ``apply``; the steps that gather statistics
have ``fit`` (the CLAHE range, the normalisation statistics, the crop box); the steps that move
pixels have ``invert``, which maps a prediction back onto the grid the step received; the
normalisation has a torch twin that an export puts inside the graph.

An image is a *plane source* of one plane; a volume is a plane source of its planes along the
plan's slice axis. ``Pipeline.fit`` walks the planes once (twice with CLAHE, whose 8-bit scaling
needs the range of the whole denoised volume) and returns a ``FittedPipeline`` that turns any
plane into network input. Volumes are normalised with whole-volume statistics and cropped with
one box from the maximum projection, so every slice of a volume is treated alike and the slices
stack back together. Holding a volume in memory or streaming it from disk are two ways of feeding
the same planes: ``keep=True`` keeps the denoised planes instead of recomputing them.

Normalisation statistics of volumes larger than ``MAX_PERCENTILE_SAMPLES`` voxels come, for the
percentile method, from a seeded random subsample of every plane (the same share of each): memory
stays bounded, and the sampled percentile is off by a rank error of about sqrt(p (1 - p) / n).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import torch
from scipy import ndimage
from skimage import filters, measure, morphology
from torch import nn

from cardioseg.config import PreprocessConfig
from cardioseg.plan import Plan

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)
Stats = tuple[float, float]
MAX_PERCENTILE_SAMPLES = 1 << 24  # 64 MB of float32 samples
NORMALIZATIONS = ("minmax", "percentile", "zscore", "none")
IDENTITY_STATS: Stats = (0.0, 1.0)
"""Statistics that leave a normalised image unchanged: (low 0, high 1) or (mean 0, std 1)."""


@dataclass(frozen=True)
class Geometry:
    """What the pipeline did to one plane's pixel grid, so its prediction can be mapped back."""

    original_shape: tuple[int, int]
    crop_box: Box


class PlaneSource(Protocol):
    """Planes of an image (one) or a volume (along its slice axis), read on demand."""

    @property
    def count(self) -> int: ...

    def plane(self, index: int) -> np.ndarray: ...


class ArrayPlanes:
    """The planes of an in-memory array: a 2D image is one plane, a 3D volume has one per index of ``axis``."""

    def __init__(self, array: np.ndarray, axis: int = 2) -> None:
        self.array, self.axis = array, axis
        # moveaxis gives views; np.take would copy the whole volume's worth of strides per plane
        self._planes = array[None] if array.ndim == 2 else np.moveaxis(array, axis, 0)

    @property
    def count(self) -> int:
        return len(self._planes)

    def plane(self, index: int) -> np.ndarray:
        return self._planes[index]


# ---- the steps ------------------------------------------------------------------------------------


def orient(array: np.ndarray, fix: str) -> np.ndarray:
    """Apply an orientation fix to the first two (in-plane) axes; each fix is its own inverse."""
    if fix == "transpose":
        return np.ascontiguousarray(np.swapaxes(array, 0, 1))
    if fix == "none":
        return array
    raise ValueError(f"unknown orientation fix {fix!r}")


@dataclass(frozen=True)
class Orient:
    """2D images only: the fix a layout needs for the apex-up view (camus224 PNGs are stored transposed)."""

    fix: str

    def apply(self, image: np.ndarray) -> np.ndarray:
        return orient(image, self.fix)

    def invert(self, prob: np.ndarray) -> np.ndarray:
        """(C, H, W) probabilities on the oriented grid -> on the grid of the image as stored."""
        return np.moveaxis(orient(np.moveaxis(prob, 0, -1), self.fix), -1, 0)


@dataclass(frozen=True)
class MedianFilter:
    """Median denoising of each plane (speckle in echo, noise in MRI)."""

    size: int

    def apply(self, plane: np.ndarray) -> np.ndarray:
        plane = plane.astype(np.float32, copy=False)
        return ndimage.median_filter(plane, size=self.size, mode="reflect") if self.size > 1 else plane


def to_uint8(image: np.ndarray, value_range: Stats | None = None) -> np.ndarray:
    """Linear map of ``value_range`` (default: the image's own) onto 0..255."""
    low, high = value_range or (float(np.min(image)), float(np.max(image)))
    if high <= low:
        return np.zeros(image.shape, np.uint8)
    return np.round((image - low) * (255.0 / (high - low))).astype(np.uint8)


@dataclass(frozen=True)
class Clahe:
    """Contrast-limited adaptive histogram equalisation of each plane, output in [0, 1].

    OpenCV needs 8-bit input: the planes are scaled with the range of the whole (denoised)
    image or volume, gathered by ``fit``.
    """

    clip_limit: float
    tile_grid: int

    def fit(self, planes: Iterator[np.ndarray]) -> Stats:
        low, high = math.inf, -math.inf
        for plane in planes:
            low, high = min(low, float(plane.min())), max(high, float(plane.max()))
        return low, high

    def apply(self, plane: np.ndarray, value_range: Stats) -> np.ndarray:
        operator = cv2.createCLAHE(clipLimit=self.clip_limit, tileGridSize=(self.tile_grid, self.tile_grid))
        return operator.apply(np.ascontiguousarray(to_uint8(plane, value_range))).astype(np.float32) / 255.0


class StatsAccumulator:
    """Normalisation statistics gathered one plane at a time (see the module docstring)."""

    def __init__(self, method: str, percentiles: tuple[float, float], total_voxels: int) -> None:
        self.method, self.percentiles = method, percentiles
        self.step = max(1, math.ceil(total_voxels / MAX_PERCENTILE_SAMPLES))
        self.rng = np.random.default_rng(0)
        self.low, self.high = math.inf, -math.inf
        self.total = self.total_sq = 0.0
        self.count = 0
        self.samples: list[np.ndarray] = []

    def add(self, plane: np.ndarray) -> None:
        if self.method == "minmax":
            self.low, self.high = min(self.low, float(plane.min())), max(self.high, float(plane.max()))
        elif self.method == "zscore":
            values = plane.astype(np.float64, copy=False)
            self.total += float(values.sum())
            self.total_sq += float(np.square(values).sum())
            self.count += values.size
        elif self.method == "percentile":
            flat = np.asarray(plane, np.float32).ravel()
            if self.step > 1:
                flat = flat[self.rng.choice(flat.size, size=math.ceil(flat.size / self.step), replace=False)]
            self.samples.append(flat.copy())

    def result(self) -> Stats:
        if self.method == "minmax":
            return self.low, self.high
        if self.method == "zscore":
            mean = self.total / max(1, self.count)
            return mean, math.sqrt(max(0.0, self.total_sq / max(1, self.count) - mean * mean))
        if self.method == "percentile":
            low, high = np.percentile(np.concatenate(self.samples), self.percentiles)
            return float(low), float(high)
        return IDENTITY_STATS


@dataclass(frozen=True)
class Normalize:
    """Intensity normalisation: min-max to [0, 1], percentile clip to [0, 1], z-score, or none.

    A flat image (no spread) becomes zeros. ``torch_module`` is the same computation for a graph.
    """

    method: str
    percentiles: tuple[float, float] = (5.0, 95.0)

    def __post_init__(self) -> None:
        if self.method not in NORMALIZATIONS:
            raise ValueError(f"unknown normalisation {self.method!r}")

    def accumulator(self, total_voxels: int) -> StatsAccumulator:
        return StatsAccumulator(self.method, self.percentiles, total_voxels)

    def apply(self, image: np.ndarray, stats: Stats) -> np.ndarray:
        """(low, high) for minmax/percentile, (mean, std) for zscore."""
        image = image.astype(np.float32, copy=False)
        if self.method == "none":
            return image
        first, second = stats
        if self.method == "zscore":
            return (image - first) / second if second > 0 else np.zeros_like(image)
        if second <= first:
            return np.zeros_like(image)
        return np.clip((image - first) / (second - first), 0.0, 1.0)

    def torch_module(self) -> GraphNormalize:
        return GraphNormalize(self.method, self.percentiles)


def normalize(image: np.ndarray, method: str, percentiles: tuple[float, float] = (5.0, 95.0)) -> np.ndarray:
    """Normalise one array with its own statistics (fit and apply in one call)."""
    step = Normalize(method, percentiles)
    accumulator = step.accumulator(image.size)
    accumulator.add(image)
    return step.apply(image, accumulator.result())


class GraphNormalize(nn.Module):
    """``Normalize`` in torch: per-image (or given) statistics; (B, 1, H, W) -> same.

    Percentiles use linear interpolation and z-score the population standard deviation, as numpy
    does. ``stats`` (B or 1, 2) holds given statistics; NaN entries mean "of each image".
    """

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


def center_box(shape: tuple[int, int], fraction: float, pixels: int | None = None) -> Box:
    """The centred box of ``pixels`` x ``pixels`` (clipped to the image), else ``fraction`` of each side."""
    height, width = shape
    if pixels is not None:
        crop_h, crop_w = min(pixels, height), min(pixels, width)
    else:
        crop_h, crop_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    y0, x0 = (height - crop_h) // 2, (width - crop_w) // 2
    return y0, y0 + crop_h, x0, x0 + crop_w


def auto_box(plane: np.ndarray, margin: float = 0.05) -> Box:
    """Bounding box of the largest bright region (Otsu threshold, opening), with a margin.

    Removes the black frame around an echo sector or the empty field of view of an MRI slice.
    Falls back to the whole image when nothing stands out.
    """
    height, width = plane.shape
    if float(plane.max()) <= float(plane.min()):
        return 0, height, 0, width
    mask = ndimage.binary_opening(plane > filters.threshold_otsu(plane), morphology.disk(2))
    labelled = measure.label(mask)
    if labelled.max() == 0:
        return 0, height, 0, width
    largest = max(measure.regionprops(labelled), key=lambda region: region.area)
    y0, x0, y1, x1 = largest.bbox
    pad_y, pad_x = round(margin * height), round(margin * width)
    return max(0, y0 - pad_y), min(height, y1 + pad_y), max(0, x0 - pad_x), min(width, x1 + pad_x)


def roi_box(plane: np.ndarray, window: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0),
            threshold: float = 0.05) -> Box:
    """The echo study's region of interest: binarise at ``threshold`` of the intensity range, fill holes, and keep
    ``window`` (top, bottom, left, right fractions) of the largest region's bounding box.

    Keeping the largest region is what removes the study's small blobs (text, ECG trace, markers). Unlike
    ``auto_box`` it keeps no margin and can narrow the box to where the structure is expected, e.g. the LV in the
    middle columns of an apical sector. Falls back to the whole image when nothing stands out."""
    height, width = plane.shape
    low, high = float(plane.min()), float(plane.max())
    if high <= low:
        return 0, height, 0, width
    mask = plane > low + threshold * (high - low)
    mask = ndimage.binary_fill_holes(mask)
    labelled = measure.label(mask)
    if labelled.max() == 0:
        return 0, height, 0, width
    largest = max(measure.regionprops(labelled), key=lambda region: region.area)
    y0, x0, y1, x1 = largest.bbox
    top, bottom, left, right = window
    box_h, box_w = y1 - y0, x1 - x0
    ry0, ry1 = y0 + round(top * box_h), y0 + round(bottom * box_h)
    rx0, rx1 = x0 + round(left * box_w), x0 + round(right * box_w)
    return ry0, max(ry1, ry0 + 1), rx0, max(rx1, rx0 + 1)


def foreground_box(mask: np.ndarray, margin: float) -> Box:
    """The bounding box of ``mask`` widened by ``margin`` of its own height and width on each side (at least 4
    pixels), clipped to the plane; the whole plane when the mask is empty (nothing found: look everywhere)."""
    height, width = mask.shape
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return 0, height, 0, width
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    pad_y, pad_x = max(4, round(margin * (y1 - y0))), max(4, round(margin * (x1 - x0)))
    return max(0, y0 - pad_y), min(height, y1 + pad_y), max(0, x0 - pad_x), min(width, x1 + pad_x)


@dataclass(frozen=True)
class Crop:
    """Region-of-interest crop: none, a centred fraction or square of pixels, the box of the bright region (auto),
    the echo study's region of interest (roi), or the box of a structure found beforehand (foreground)."""

    mode: str
    fraction: float
    pixels: int | None = None
    window: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)
    threshold: float = 0.05
    margin: float = 0.25

    def fit(self, projection: np.ndarray, foreground: np.ndarray | None = None) -> Box:
        """The box for a plane, or for every plane of a volume from its normalised maximum projection; ``foreground``
        is the structure's mask (projected over a volume's planes) that the foreground crop needs."""
        height, width = projection.shape
        if self.mode == "foreground":
            if foreground is None:
                raise ValueError("the foreground crop needs the structure's mask (a two-stage model's first stage)")
            if foreground.shape != projection.shape:
                raise ValueError(f"foreground mask of shape {foreground.shape} for planes of shape {projection.shape}")
            return foreground_box(foreground, self.margin)
        if self.mode == "center":
            return center_box((height, width), self.fraction, self.pixels)
        if self.mode == "auto":
            return auto_box(projection)
        if self.mode == "roi":
            return roi_box(projection, self.window, self.threshold)
        return 0, height, 0, width

    @staticmethod
    def apply(plane: np.ndarray, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        return plane[y0:y1, x0:x1]

    @staticmethod
    def invert(prob: np.ndarray, geometry: Geometry) -> np.ndarray:
        """(C, h, w) on the crop -> (C, H, W) on the plane: outside the box, background with certainty."""
        y0, y1, x0, x1 = geometry.crop_box
        channels = prob.shape[0]
        restored = np.zeros((channels, *geometry.original_shape), np.float32)
        restored[:, y0:y1, x0:x1] = prob
        if channels > 1:
            outside = np.ones(geometry.original_shape, bool)
            outside[y0:y1, x0:x1] = False
            restored[0][outside] = 1.0
        return restored


@dataclass(frozen=True)
class Resize:
    """To the network input size: area averaging when shrinking (no aliasing), bilinear when enlarging."""

    size: tuple[int, int]

    def apply(self, image: np.ndarray) -> np.ndarray:
        height, width = self.size
        shrinking = height * width < image.shape[0] * image.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        return cv2.resize(image.astype(np.float32), (width, height), interpolation=interpolation)

    def apply_label(self, label: np.ndarray) -> np.ndarray:
        """Nearest neighbour, so a label map keeps only its own values."""
        height, width = self.size
        return cv2.resize(label.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)

    @staticmethod
    def invert(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """(C, h, w) at the network size -> (C, *shape), bilinear."""
        height, width = shape
        return np.stack([cv2.resize(p.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) for p in prob])


# ---- the pipeline ---------------------------------------------------------------------------------


class Pipeline:
    """The steps of one plan; ``fit`` an image or volume, then turn its planes into network input."""

    def __init__(self, pre: PreprocessConfig, orientation: str = "none") -> None:
        self.orient = Orient(orientation)
        self.median = MedianFilter(pre.median_filter)
        self.clahe = Clahe(pre.clahe_clip_limit, pre.clahe_tile_grid) if pre.clahe else None
        self.normalize = Normalize(pre.normalize, pre.percentiles)
        self.crop = Crop(pre.crop, pre.crop_fraction, pre.crop_pixels, pre.roi_window, pre.roi_threshold,
                         pre.foreground_margin)
        self.resize = Resize(pre.size)

    @classmethod
    def from_plan(cls, plan: Plan) -> Pipeline:
        return cls(plan.preprocess, "none" if plan.is_3d else plan.orientation)

    def fit(self, source: PlaneSource, keep: bool = True, foreground: np.ndarray | None = None) -> FittedPipeline:
        """Gather the statistics of every plane of ``source`` (one image, or a whole volume); ``foreground`` (the
        structure's mask, projected over the planes) places a foreground crop."""
        count = source.count
        filtered: list[np.ndarray] | None = None
        clahe_range: Stats | None = None
        if self.clahe is not None:
            if keep:  # median-filter each plane once, not once per pass
                filtered = [self.median.apply(source.plane(k)) for k in range(count)]
                clahe_range = self.clahe.fit(iter(filtered))
            else:
                clahe_range = self.clahe.fit(self.median.apply(source.plane(k)) for k in range(count))
        first = source.plane(0)
        accumulator = self.normalize.accumulator(count * first.size)
        kept: list[np.ndarray] | None = [] if keep else None
        top: np.ndarray | None = None
        for k in range(count):
            if filtered is not None:  # CLAHE on planes already median-filtered
                plane = self.clahe.apply(filtered[k], clahe_range)  # type: ignore[union-attr,arg-type]
            else:
                plane = self._denoised(source.plane(k), clahe_range)
            accumulator.add(plane)
            top = plane.copy() if top is None else np.maximum(top, plane, out=top)
            if kept is not None:
                kept.append(plane)
        stats = accumulator.result()
        box = self.crop.fit(self.normalize.apply(top if top is not None else first, stats), foreground)
        return FittedPipeline(self, source, stats, clahe_range, box, kept)

    def _denoised(self, plane: np.ndarray, clahe_range: Stats | None) -> np.ndarray:
        """Median filter and CLAHE of one plane."""
        plane = self.median.apply(plane)
        return plane if self.clahe is None or clahe_range is None else self.clahe.apply(plane, clahe_range)

    def image(self, image: np.ndarray, foreground: np.ndarray | None = None) -> tuple[np.ndarray, Geometry]:
        """A 2D image as stored -> (network input, geometry on the oriented grid); ``foreground`` on the image's
        stored grid, for a foreground crop."""
        mask = None if foreground is None else self.orient.apply(foreground)
        return self.fit(ArrayPlanes(self.orient.apply(image)), foreground=mask).image(0)


@dataclass
class FittedPipeline:
    """A pipeline with the statistics of one image or volume: plane index -> network input."""

    pipeline: Pipeline
    source: PlaneSource
    stats: Stats
    clahe_range: Stats | None
    box: Box
    denoised: list[np.ndarray] | None

    @property
    def count(self) -> int:
        return self.source.count

    def image(self, index: int) -> tuple[np.ndarray, Geometry]:
        """Network input (H, W) of plane ``index`` and the geometry that maps its prediction back."""
        p = self.pipeline
        plane = self.denoised[index] if self.denoised is not None else p._denoised(self.source.plane(index), self.clahe_range)
        normalised = p.normalize.apply(plane, self.stats)
        geometry = Geometry((int(normalised.shape[0]), int(normalised.shape[1])), self.box)
        return p.resize.apply(p.crop.apply(normalised, self.box)), geometry

    def stages(self, index: int) -> list[tuple[str, np.ndarray]]:
        """Plane ``index`` after each step that the plan applies, from as read to network input: for figures of
        what preprocessing does (CLAHE before and after, the crop). The last stage is ``image(index)``'s."""
        p = self.pipeline
        plane = self.source.plane(index).astype(np.float32)
        shown = [("as read", plane)]
        if p.median.size > 1:
            plane = p.median.apply(plane)
            shown.append((f"median {p.median.size}", plane))
        if p.clahe is not None and self.clahe_range is not None:
            plane = p.clahe.apply(plane, self.clahe_range)
            shown.append(("CLAHE", plane))
        plane = p.normalize.apply(plane, self.stats)
        if p.normalize.method != "none":
            shown.append((f"normalised ({p.normalize.method})", plane))
        if p.crop.mode != "none":
            plane = p.crop.apply(plane, self.box)
            shown.append((f"crop {p.crop.mode}", plane))
        shown.append((f"resized {p.resize.size[0]}x{p.resize.size[1]}", p.resize.apply(plane)))
        return shown

    def label(self, label: np.ndarray, geometry: Geometry) -> np.ndarray:
        """A label plane at the network size (crop and nearest-neighbour resize, as for its image)."""
        return self.pipeline.resize.apply_label(Crop.apply(label, geometry.crop_box))



def restore_probabilities(prob: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Network output (C, h, w) -> probabilities (C, H, W) on the plane's grid: resize and crop undone."""
    y0, y1, x0, x1 = geometry.crop_box
    return Crop.invert(Resize.invert(prob, (y1 - y0, x1 - x0)), geometry)


def map_labels(label: np.ndarray, mapping: dict[int, int] | None, keep: tuple[int, ...] = ()) -> np.ndarray:
    """Source label values -> class ids; unlisted values become background (0), those in ``keep`` stay."""
    if mapping is None:
        return label.astype(np.uint8)
    lut = np.zeros(max(256, int(label.max()) + 1), np.uint8)
    for value in keep:
        lut[value] = value
    for source, target in mapping.items():
        lut[source] = target
    return lut[label.astype(np.int64)]
