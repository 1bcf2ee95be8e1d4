"""DICOM pixels as grey frames, and the physical pixel size a DICOM header vouches for.

Decoding goes through pydicom's pixel decoders, with the pylibjpeg plugins (pylibjpeg-libjpeg,
pylibjpeg-openjpeg, pylibjpeg-rle) and pyjpegls for JPEG baseline/extended/lossless, JPEG 2000,
RLE and JPEG-LS. A transfer syntax nothing decodes (MPEG-4, HEVC, a private one) or whose plugin
is missing is a DataError naming the syntax, before any pixel is touched.

Colour becomes grey the way the image was encoded, without a round trip through RGB:
- YBR_FULL / YBR_FULL_422 (most ultrasound, JPEG baseline): the luminance channel Y itself;
- RGB (and YBR_RCT / YBR_ICT, which the JPEG 2000 decoder returns as RGB): ITU-R BT.601 luma,
  0.299 R + 0.587 G + 0.114 B, the same weights that define Y of YBR_FULL, so both routes agree;
- PALETTE COLOR: the palette is applied first (``apply_color_lut``), then BT.601 luma.
Monochrome frames get the modality LUT (RescaleSlope/Intercept, at top level or in the shared
functional groups of an enhanced multi-frame image).

Pixel size, in this order: the Sequence of Ultrasound Regions (the largest 2D tissue region whose
PhysicalUnitsX/YDirection are 3, cm, so PhysicalDeltaY/X x 10 are the row/column mm); PixelSpacing
(top level, or the functional groups' PixelMeasuresSequence); ImagerPixelSpacing (at the detector,
for projection images); else unknown.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder

from cardioseg.data.readers import dicom_io
from cardioseg.errors import DataError

BT601 = np.array([0.299, 0.587, 0.114], np.float32)
"""ITU-R BT.601 luma weights for R, G, B."""
CM = 3
"""PhysicalUnitsX/YDirection code for centimetres (DICOM PS3.3 C.8.5.5.1.15)."""
TISSUE_2D = 1
"""RegionSpatialFormat code of a 2D (B-mode) region."""


def require_pixels(ds: pydicom.Dataset, path: Path) -> None:
    """A DataError unless ``ds`` holds pixel data; one that declares an image and holds none was cut short."""
    if "PixelData" in ds:
        return
    if "Rows" in ds or "Columns" in ds:
        declared = dicom_io.dicom_geometry(ds, path).describe()
        raise DataError(f"no pixel data, although the header declares an image of {declared}: a truncated file?",
                        path)
    raise DataError("not a DICOM image (no pixel data)", path)


def decode_grey(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """All frames of ``ds`` as grey float32 (F, H, W), converted as the module docstring says."""
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DataError(f"transfer syntax {_syntax_name(syntax)} is not supported: pydicom has no pixel decoder "
                        "for it; convert the file to an uncompressed or JPEG transfer syntax first", path) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise DataError(f"transfer syntax {_syntax_name(syntax)} needs a pixel decoder plugin that is not installed "
                        f"({missing})", path)
    frames = dicom_io.dicom_geometry(ds, path).frames
    try:
        array, meta = decoder.as_array(ds, as_rgb=False)
    except Exception as exc:  # the plugins raise RuntimeError, ValueError, their own errors...
        raise DataError(f"cannot decode the {_syntax_name(syntax)} pixel data ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())})", path) from exc
    photometric = str(meta.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    if photometric.startswith("YBR_FULL"):
        grey = array[..., 0].astype(np.float32)
    elif photometric == "RGB":
        grey = array.astype(np.float32) @ BT601
    elif photometric == "PALETTE COLOR":
        grey = apply_color_lut(array, ds).astype(np.float32) @ BT601
    elif photometric.startswith("MONOCHROME") or not photometric:
        grey = _modality(array, ds).astype(np.float32)
    else:
        raise DataError(f"photometric interpretation {photometric!r} is not supported (expected MONOCHROME1/2, RGB, "
                        "YBR_FULL, YBR_FULL_422 or PALETTE COLOR)", path)
    return grey.reshape(frames, *grey.shape[-2:])


def _modality(array: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """The modality LUT: top-level Rescale/ModalityLUT, else the shared functional groups' pixel value transform."""
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        return apply_modality_lut(array, ds)
    transform = _functional_group(ds, "PixelValueTransformationSequence")
    if transform is not None and "RescaleSlope" in transform:
        return array * float(transform.RescaleSlope) + float(transform.get("RescaleIntercept", 0.0))
    return array


def physical_spacing(ds: pydicom.Dataset, path: Path) -> tuple[tuple[float, float] | None, str]:
    """((row_mm, col_mm), where it came from) or (None, "unknown"), in the order the module docstring gives."""
    regions = ultrasound_spacing(ds, path)
    if regions is not None:
        return regions, "ultrasound regions"
    spacing = dicom_io.pixel_spacing(ds, path)
    if spacing is None:
        measures = _functional_group(ds, "PixelMeasuresSequence")
        spacing = dicom_io.pixel_spacing(measures, path) if measures is not None else None
    if spacing is not None:
        return spacing, "PixelSpacing"
    if "ImagerPixelSpacing" in ds:
        imager = pydicom.Dataset()
        imager.PixelSpacing = ds.ImagerPixelSpacing
        spacing = dicom_io.pixel_spacing(imager, path)
        if spacing is not None:
            return spacing, "ImagerPixelSpacing"
    return None, "unknown"


def ultrasound_spacing(ds: pydicom.Dataset, path: Path) -> tuple[float, float] | None:
    """(row_mm, col_mm) of the largest 2D region calibrated in cm, or None when no region is.

    An echo screen often holds several regions (the B-mode sector, a Doppler strip, an ECG trace);
    the sector is the largest 2D one, and the one a segmentation measures.
    """
    best: tuple[int, tuple[float, float]] | None = None
    for region in ds.get("SequenceOfUltrasoundRegions", []):
        if region.get("RegionSpatialFormat") != TISSUE_2D:
            continue
        if region.get("PhysicalUnitsXDirection") != CM or region.get("PhysicalUnitsYDirection") != CM:
            continue
        dx, dy = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
        if dx is None or dy is None:
            continue
        if not all(math.isfinite(float(d)) and float(d) > 0 for d in (dx, dy)):
            raise DataError(f"an ultrasound region has PhysicalDeltaX/Y {dx}, {dy}: expected finite positive cm", path)
        width = int(region.get("RegionLocationMaxX1", 0)) - int(region.get("RegionLocationMinX0", 0)) + 1
        height = int(region.get("RegionLocationMaxY1", 0)) - int(region.get("RegionLocationMinY0", 0)) + 1
        area = max(0, width) * max(0, height)
        if best is None or area > best[0]:
            best = (area, (float(dy) * 10.0, float(dx) * 10.0))
    return best[1] if best is not None else None


def _functional_group(ds: pydicom.Dataset, keyword: str) -> pydicom.Dataset | None:
    """The first item of ``keyword`` in the shared functional groups, else in the first frame's."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(groups, [])[:1]:
            if item.get(keyword):
                return item.get(keyword)[0]
    return None


def _syntax_name(syntax: pydicom.uid.UID) -> str:
    return f"{syntax.name} ({syntax})" if syntax.is_transfer_syntax else str(syntax)
