"""Volume files for prediction: read lazily (whole or one plane at a time), write back with their geometry.

A DICOM series (``series_volume``) is read whole into memory and written as NIfTI with the
affine its headers give; a cine's frames (``frames_volume``) become a plane stack.

NIfTI is read through nibabel's array proxy, so a plane costs only that plane's memory; the
output keeps the input's header and affine. MetaImage/NRRD go through SimpleITK's streaming
reader (``SetExtractIndex``/``SetExtractSize``) and are written as NIfTI with the input's
origin, spacing and direction, which SimpleITK converts to the NIfTI affine. Arrays are in
index order (i, j, k), as ``cardioseg.data.readers.base.read_volume`` returns them.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path
from typing import Protocol

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from cardioseg.data.readers.base import NIFTI_SUFFIXES, check_image, check_volume_header, reading, strip_suffix
from cardioseg.data.readers.dicom_frames import DicomFrames
from cardioseg.data.readers.dicom_series import DicomSeries
from cardioseg.data.readers.dicom_series import read_volume as read_series
from cardioseg.errors import DataError
from cardioseg.fileio import atomic_path

ITK_SUFFIXES = (".mhd", ".mha", ".nrrd", ".nhdr")
VOLUME_SUFFIXES = (*NIFTI_SUFFIXES, *ITK_SUFFIXES)


class Volume(Protocol):
    """A 3D array (i, j, k) that can be read whole or one plane at a time."""

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def n_voxels(self) -> int: ...

    def read(self) -> np.ndarray: ...

    def plane(self, axis: int, index: int) -> np.ndarray: ...


class ArrayVolume:
    """A volume already in memory (a prepared dataset's original), with ``VolumeFile``'s reading interface."""

    def __init__(self, array: np.ndarray) -> None:
        if array.ndim != 3:
            raise DataError(f"expected a 3D volume, got shape {array.shape}")
        self.array = array

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape  # type: ignore[return-value]

    @property
    def n_voxels(self) -> int:
        return int(self.array.size)

    def read(self) -> np.ndarray:
        return self.array

    def plane(self, axis: int, index: int) -> np.ndarray:
        return np.moveaxis(self.array, axis, 0)[index]


class GridVolume(ArrayVolume):
    """A volume built in memory from DICOM (a series, or a cine's frames as a plane stack), written as NIfTI.

    ``affine`` maps (i, j, k) to RAS mm; ``spacing`` is None when the third axis is no distance
    (a cine's frames), so no volume in mL is computed for it.
    """

    def __init__(self, array: np.ndarray, affine: np.ndarray, spacing: tuple[float, float, float] | None) -> None:
        super().__init__(array)
        self.affine, self.spacing = affine, spacing

    def write_like(self, target: Path, array: np.ndarray) -> Path:
        """Write ``array`` (i, j, k) or (i, j, k, C) as NIfTI with this volume's affine."""
        return _write_nifti(target, array, nib.Nifti1Image(array, self.affine))


def series_volume(series: DicomSeries, phase: int = 0) -> GridVolume:
    """One phase of a DICOM series as a volume on the series' grid (see ``dicom_series``)."""
    return GridVolume(read_series(series, phase), series.affine, series.spacing)


def frames_volume(frames: DicomFrames) -> GridVolume:
    """A cine's frames (F, H, W) as a stack of planes (H, W, F) along axis 2, the axis 2D models slice.

    The affine scales rows and columns by the pixel size (1 mm when unknown) and frames by 1.
    """
    row_mm, col_mm = frames.spacing or (1.0, 1.0)
    return GridVolume(np.moveaxis(frames.frames, 0, -1), np.diag([row_mm, col_mm, 1.0, 1.0]), None)


class VolumePlanes:
    """A volume's planes along ``axis`` as a plane source for the pipeline, read one at a time."""

    def __init__(self, volume: Volume, axis: int) -> None:
        self.volume, self.axis = volume, axis

    @property
    def count(self) -> int:
        return self.volume.shape[self.axis]

    def plane(self, index: int) -> np.ndarray:
        return self.volume.plane(self.axis, index).astype(np.float32)


class VolumeFile:
    """One 3D volume on disk. 2D files count as one plane (i, j, 1); extra axes must be singletons."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.is_nifti = strip_suffix(self.path.name, NIFTI_SUFFIXES) is not None
        check_volume_header(self.path)  # content, shape, spacing and data size judged before any library opens it
        with reading(self.path, "image volume"):
            if self.is_nifti:
                self.image = nib.load(self.path, keep_file_open=True)
                if not isinstance(self.image, nib.Nifti1Image):  # NIfTI-2 images subclass it
                    raise DataError(f"not a NIfTI image ({type(self.image).__name__})", self.path)
                stored = tuple(int(n) for n in self.image.shape)
            else:
                self.reader = sitk.ImageFileReader()
                self.reader.SetFileName(str(self.path))
                self.reader.ReadImageInformation()
                if self.reader.GetNumberOfComponents() != 1:
                    raise DataError("multi-component (colour or vector) volumes are not supported", self.path)
                stored = tuple(int(n) for n in self.reader.GetSize())
        if len(stored) > 3 and any(n != 1 for n in stored[3:]):
            raise DataError(f"a {len(stored)}D volume of shape {stored} (a time series?): give one 3D volume", self.path)
        self.stored_shape = stored
        self.shape: tuple[int, int, int] = (*stored[:3], *(1,) * (3 - len(stored[:3])))  # type: ignore[assignment]

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape))

    @property
    def spacing(self) -> tuple[float, float, float] | None:
        """Voxel size in mm along (i, j, k) from the header; None unless all three are finite and positive."""
        zooms = self.image.header.get_zooms()[:3] if self.is_nifti else self.reader.GetSpacing()[:3]
        sizes = (*(float(z) for z in zooms), *(1.0,) * (3 - len(zooms)))
        return sizes if all(np.isfinite(z) and z > 0 for z in sizes) else None  # type: ignore[return-value]

    def read(self) -> np.ndarray:
        """The whole volume as (i, j, k), checked for NaN/inf."""
        with reading(self.path, "image volume"):
            if self.is_nifti:
                array = np.asanyarray(self.image.dataobj)
            else:
                array = sitk.GetArrayFromImage(sitk.ReadImage(str(self.path))).T
        return check_image(array.reshape(self.shape), self.path)

    def plane(self, axis: int, index: int) -> np.ndarray:
        """One 2D plane ``volume[..., index, ...]`` along ``axis``, read without the rest."""
        with reading(self.path, "image volume"):
            if self.is_nifti:
                where = [slice(None)] * 3
                where[axis] = slice(index, index + 1)
                extra = (0,) * (len(self.stored_shape) - 3)
                block = np.asanyarray(self.image.dataobj[(*where[: len(self.stored_shape)], *extra)])
            else:
                start, size = [0] * len(self.stored_shape), list(self.stored_shape)
                if axis < len(size):
                    start[axis], size[axis] = index, 1
                self.reader.SetExtractIndex(start)
                self.reader.SetExtractSize(size)
                block = sitk.GetArrayFromImage(self.reader.Execute()).T
        plane_shape = tuple(n for a, n in enumerate(self.shape) if a != axis)
        return check_image(block.reshape(plane_shape), self.path)

    def write_like(self, target: Path, array: np.ndarray) -> Path:
        """Write ``array`` (i, j, k) or (i, j, k, C) as NIfTI on this volume's grid."""
        data = array.reshape(self.stored_shape if array.ndim == 3 else (*self.stored_shape, array.shape[-1]))
        if self.is_nifti:
            return _write_nifti(target, data, self.image)
        return _write_itk(target, data, self.reader)


def _write_nifti(target: Path, data: np.ndarray, like: nib.Nifti1Image) -> Path:
    header = like.header.copy()
    header.set_data_dtype(data.dtype)
    image = type(like)(data, like.affine, header)
    with atomic_path(target) as tmp, open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        image.to_file_map({"image": nib.FileHolder(fileobj=gz)})
    return target


def _write_itk(target: Path, data: np.ndarray, like: sitk.ImageFileReader) -> Path:
    vector = data.ndim == len(like.GetSize()) + 1
    order = (*range(data.ndim - 1 - vector, -1, -1), *((data.ndim - 1,) if vector else ()))
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, order)), isVector=vector)
    image.SetOrigin(like.GetOrigin())
    image.SetSpacing(like.GetSpacing())
    image.SetDirection(like.GetDirection())
    # SimpleITK picks the writer by file name, so write under the real name in a private folder.
    with atomic_path(target) as tmp, tempfile.TemporaryDirectory(dir=target.parent) as folder:
        named = Path(folder) / target.name
        sitk.WriteImage(image, str(named), useCompression=True)
        os.replace(named, tmp)
    return target
