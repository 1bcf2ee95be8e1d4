"""The studies' preprocessing chain for one 2D image (or one 3D volume, slice by slice).

Order, fixed and recorded in every prepared dataset and checkpoint:
orientation fix -> median filter -> CLAHE -> intensity normalisation -> ROI crop -> resize.
Denoising and CLAHE act on the raw intensities (CLAHE on a min-max 8-bit copy, as OpenCV needs);
normalisation comes after them so that its output range is what the network sees. For volumes,
normalisation statistics and the crop box come from the whole volume, so every slice of a volume
is treated alike and the slices can be put back together.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from skimage import filters, measure, morphology

from cardioseg.config import PreprocessConfig

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)


@dataclass(frozen=True)
class Geometry:
    """What preprocessing did to the pixel grid, so predictions can be mapped back."""

    original_shape: tuple[int, int]
    crop_box: Box


def orient(array: np.ndarray, fix: str) -> np.ndarray:
    """Apply a layout's orientation fix to the first two (in-plane) axes."""
    if fix == "transpose":
        return np.ascontiguousarray(np.swapaxes(array, 0, 1))
    if fix == "none":
        return array
    raise ValueError(f"unknown orientation fix {fix!r}")


def median_filter(image: np.ndarray, size: int) -> np.ndarray:
    """Median denoising of each 2D plane (speckle in echo, noise in MRI)."""
    if size <= 1:
        return image
    footprint = (size, size) + (1,) * (image.ndim - 2)
    return ndimage.median_filter(image, size=footprint, mode="reflect")


def to_uint8(image: np.ndarray) -> np.ndarray:
    low, high = float(np.min(image)), float(np.max(image))
    if high <= low:
        return np.zeros(image.shape, np.uint8)
    return np.round((image - low) * (255.0 / (high - low))).astype(np.uint8)


def clahe(image: np.ndarray, clip_limit: float, tile_grid: int) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of each 2D plane, output in [0, 1]."""
    operator = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile_grid, tile_grid))
    scaled = to_uint8(image)
    if scaled.ndim == 2:
        return operator.apply(scaled).astype(np.float32) / 255.0
    planes = [operator.apply(np.ascontiguousarray(scaled[..., k])) for k in range(scaled.shape[-1])]
    return np.stack(planes, axis=-1).astype(np.float32) / 255.0


def normalize(image: np.ndarray, method: str, percentiles: tuple[float, float] = (5.0, 95.0)) -> np.ndarray:
    """Intensity normalisation: min-max to [0, 1], percentile clip to [0, 1], or z-score."""
    image = image.astype(np.float32, copy=False)
    if method == "none":
        return image
    if method == "zscore":
        std = float(image.std())
        return (image - float(image.mean())) / std if std > 0 else np.zeros_like(image)
    if method == "minmax":
        low, high = float(image.min()), float(image.max())
    elif method == "percentile":
        low, high = (float(v) for v in np.percentile(image, percentiles))
    else:
        raise ValueError(f"unknown normalisation {method!r}")
    if high <= low:
        return np.zeros_like(image)
    return np.clip((image - low) / (high - low), 0.0, 1.0)


def center_box(shape: tuple[int, int], fraction: float) -> Box:
    height, width = shape
    crop_h, crop_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    y0, x0 = (height - crop_h) // 2, (width - crop_w) // 2
    return y0, y0 + crop_h, x0, x0 + crop_w


def auto_box(image: np.ndarray, margin: float = 0.05) -> Box:
    """Bounding box of the largest bright region (Otsu threshold, opening), with a margin.

    Removes the black frame around an echo sector or the empty field of view of an MRI slice.
    Falls back to the whole image when nothing stands out.
    """
    plane = image if image.ndim == 2 else image.max(axis=-1)
    height, width = plane.shape
    if float(plane.max()) <= float(plane.min()):
        return 0, height, 0, width
    mask = plane > filters.threshold_otsu(plane)
    mask = ndimage.binary_opening(mask, morphology.disk(2))
    labelled = measure.label(mask)
    if labelled.max() == 0:
        return 0, height, 0, width
    largest = max(measure.regionprops(labelled), key=lambda region: region.area)
    y0, x0, y1, x1 = largest.bbox
    pad_y, pad_x = round(margin * height), round(margin * width)
    return max(0, y0 - pad_y), min(height, y1 + pad_y), max(0, x0 - pad_x), min(width, x1 + pad_x)


def crop_box(image: np.ndarray, cfg: PreprocessConfig) -> Box:
    shape = image.shape[:2]
    if cfg.crop == "center":
        return center_box(shape, cfg.crop_fraction)
    if cfg.crop == "auto":
        return auto_box(image)
    return 0, shape[0], 0, shape[1]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), bilinear when enlarging."""
    height, width = size
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image.astype(np.float32), (width, height), interpolation=interpolation)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest neighbour, so a label map keeps only its own class ids."""
    height, width = size
    return cv2.resize(label.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)


def intensity_chain(image: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Median filter, CLAHE and normalisation (no geometry change)."""
    image = median_filter(image.astype(np.float32, copy=False), cfg.median_filter)
    if cfg.clahe:
        image = clahe(image, cfg.clahe_clip_limit, cfg.clahe_tile_grid)
    return normalize(image, cfg.normalize, cfg.percentiles)


def preprocess_plane(
    image: np.ndarray, label: np.ndarray | None, cfg: PreprocessConfig, box: Box | None = None
) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """Full chain for one oriented 2D plane whose intensities may already be normalised."""
    box = crop_box(image, cfg) if box is None else box
    y0, y1, x0, x1 = box
    image_out = resize_image(image[y0:y1, x0:x1], cfg.size)
    label_out = None if label is None else resize_label(label[y0:y1, x0:x1], cfg.size)
    return image_out, label_out, Geometry(tuple(image.shape[:2]), box)


def preprocess_2d(
    image: np.ndarray, label: np.ndarray | None, cfg: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """Preprocess one oriented 2D image (and its label map) for the network."""
    processed = intensity_chain(image, cfg)
    box = crop_box(processed, cfg)
    return preprocess_plane(processed, label, cfg, box)


def restore_probabilities(prob: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Map network output (C, h, w) back onto the original grid (C, H, W).

    Outside the crop box the probability of every foreground class is 0 (and of the background
    channel, when there is one, 1), which is what the crop assumed.
    """
    y0, y1, x0, x1 = geometry.crop_box
    height, width = geometry.original_shape
    channels = prob.shape[0]
    restored = np.zeros((channels, height, width), np.float32)
    for c in range(channels):
        restored[c, y0:y1, x0:x1] = cv2.resize(prob[c].astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    if channels > 1:
        outside = np.ones((height, width), bool)
        outside[y0:y1, x0:x1] = False
        restored[0][outside] = 1.0
    return restored


def map_labels(label: np.ndarray, mapping: dict[int, int] | None) -> np.ndarray:
    """Source label ids -> class ids; unlisted labels become background (0)."""
    if mapping is None:
        return label.astype(np.uint8)
    lut = np.zeros(max(256, int(label.max()) + 1), np.uint8)
    for source, target in mapping.items():
        lut[source] = target
    return lut[label.astype(np.int64)]
