"""A volume's planes as network inputs, normalised with whole-volume statistics as `prepare` does.

``InMemoryPlanes`` runs prepare's own chain on the whole array (``intensity_chain``, one crop box
from the maximum projection, ``preprocess_plane`` per plane). ``StreamedPlanes`` gives the same
planes for a volume too large for memory, reading one plane at a time in two passes (three with
CLAHE, whose 8-bit scaling needs the range of the whole filtered volume): gather statistics and
the maximum projection, then normalise and resize each plane as it is needed. Normalisation is
monotonic, so the crop box of the normalised projection is that of the projection normalised.
The median filter and CLAHE of the prepare chain act on planes of the last axis; streaming them
is only exact along that axis, so other slice axes are refused for them.
"""

from __future__ import annotations

import cv2
import numpy as np

from cardioseg.config import PreprocessConfig
from cardioseg.data.preprocess import Geometry, crop_box, intensity_chain, median_filter, preprocess_plane
from cardioseg.errors import DataError
from cardioseg.inference.intensity import StatsAccumulator, apply_stats
from cardioseg.inference.volumes import VolumeFile

PlaneInput = tuple[np.ndarray, Geometry]


def _plane(array: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.moveaxis(array, axis, 0)[index]


class InMemoryPlanes:
    """Planes of a volume held in memory, through prepare's chain."""

    def __init__(self, volume: np.ndarray, pre: PreprocessConfig, axis: int) -> None:
        self.pre, self.axis = pre, axis
        self.normalised = intensity_chain(volume, pre)
        self.box = crop_box(self.normalised.max(axis=axis), pre)

    def __call__(self, index: int) -> PlaneInput:
        image, _, geometry = preprocess_plane(_plane(self.normalised, self.axis, index), None, self.pre, self.box)
        return image, geometry


class StreamedPlanes:
    """Planes of a volume read one at a time; statistics from a first pass over all of them."""

    def __init__(self, volume: VolumeFile, pre: PreprocessConfig, axis: int) -> None:
        if (pre.median_filter > 1 or pre.clahe) and axis != 2:
            raise DataError(
                f"this volume is too large for memory and is streamed along slice axis {axis}; the median "
                "filter and CLAHE of this model's preprocessing can only be streamed along axis 2", volume.path
            )
        self.volume, self.pre, self.axis = volume, pre, axis
        count = volume.shape[axis]
        self.clahe_range: tuple[float, float] | None = None
        if pre.clahe:
            low, high = np.inf, -np.inf
            for k in range(count):
                filtered = median_filter(self._raw(k), pre.median_filter)
                low, high = min(low, float(filtered.min())), max(high, float(filtered.max()))
            self.clahe_range = low, high
        stats = StatsAccumulator(pre.normalize, pre.percentiles, volume.n_voxels)
        top: np.ndarray | None = None
        for k in range(count):
            plane = self._denoised(k)
            stats.add(plane)
            top = plane if top is None else np.maximum(top, plane)
        self.stats = stats.result()
        self.box = crop_box(apply_stats(top, pre.normalize, self.stats), pre)  # type: ignore[arg-type]

    def _raw(self, index: int) -> np.ndarray:
        return self.volume.plane(self.axis, index).astype(np.float32)

    def _denoised(self, index: int) -> np.ndarray:
        plane = median_filter(self._raw(index), self.pre.median_filter)
        if self.clahe_range is None:
            return plane
        low, high = self.clahe_range
        scaled = (np.zeros(plane.shape, np.uint8) if high <= low
                  else np.round((plane - low) * (255.0 / (high - low))).astype(np.uint8))
        operator = cv2.createCLAHE(clipLimit=self.pre.clahe_clip_limit,
                                   tileGridSize=(self.pre.clahe_tile_grid, self.pre.clahe_tile_grid))
        return operator.apply(scaled).astype(np.float32) / 255.0

    def __call__(self, index: int) -> PlaneInput:
        normalised = apply_stats(self._denoised(index), self.pre.normalize, self.stats)
        image, _, geometry = preprocess_plane(normalised, None, self.pre, self.box)
        return image, geometry
