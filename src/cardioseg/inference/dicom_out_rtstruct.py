"""RTSTRUCT of a label map: each class's outline as closed planar contours in patient coordinates.

Planning systems read structures as polygons, not pixels. The polygons here follow the pixel
edges: the mask is doubled in size (nearest neighbour) and traced with OpenCV, so every vertex
lies a quarter pixel inside a pixel edge and no pixel centre lies on a contour. A pixel belongs
to a structure exactly when its centre is inside an odd number of the structure's contours on
that image (the even-odd rule; a hole is a contour inside another), so rasterising the contours
by pixel centres gives back the mask pixel for pixel, single pixels and one-pixel lines included.

Contour points are mapped to millimetres with the source's ImagePositionPatient,
ImageOrientationPatient and PixelSpacing (per frame for enhanced multi-frame images). Images
without them (most ultrasound) cannot have an RTSTRUCT; a DICOM SEG serves them.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian, RTStructureSetStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from cardioseg import __version__
from cardioseg.errors import DataError
from cardioseg.fileio import write_with
from cardioseg.inference.dicom_out import SERIES_NUMBER, SOFTWARE, TYPE_2, OutputSeries, Structure, source_headers
from cardioseg.viz.palette import class_colour

DETACHED_STUDY = "1.2.840.10008.3.1.2.3.1"
"""SOP class the RT Referenced Study Sequence names (Detached Study Management), as PS3.3 asks."""


@dataclass(frozen=True)
class Plane:
    """Where one frame lies in patient space, and which image (and frame) it is."""

    origin: np.ndarray
    across: np.ndarray
    """Millimetres per column step (ImageOrientationPatient's row direction x column spacing)."""
    down: np.ndarray
    """Millimetres per row step."""
    sop_class: str
    sop_instance: str
    frame: int | None

    def to_patient(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) (column, row) pixel coordinates -> (N, 3) patient coordinates in mm."""
        return self.origin + points[:, :1] * self.across + points[:, 1:] * self.down


def contours(mask: np.ndarray) -> list[np.ndarray]:
    """The outlines of a 2D boolean mask as (N, 2) (column, row) polygons, read with the even-odd rule."""
    doubled = np.kron(mask.astype(np.uint8), np.ones((2, 2), np.uint8))
    traced, _ = cv2.findContours(doubled, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return [c[:, 0, :].astype(np.float64) / 2.0 - 0.25 for c in traced]


def _vector(value: object, size: int, what: str, path: Path) -> np.ndarray:
    try:
        array = np.asarray([float(v) for v in value], np.float64)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape != (size,) or not np.all(np.isfinite(array)):
        raise DataError(f"{what} is missing or malformed ({value!r}); an RTSTRUCT needs the image's position in "
                        "patient space (use --format dicom-seg)", path)
    return array


def planes(sources: Sequence[pydicom.Dataset], path: Path) -> list[Plane]:
    """The patient-space plane of every frame: one per single-frame source, or each frame of one multi-frame source."""
    if len(sources) == 1 and int(sources[0].get("NumberOfFrames", 1) or 1) > 1:
        ds = sources[0]
        shared = ds.get("SharedFunctionalGroupsSequence", [pydicom.Dataset()])[0]
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or [pydicom.Dataset()] * int(ds.NumberOfFrames)
        return [_plane(_functional(item, shared, "PlanePositionSequence", "ImagePositionPatient"),
                       _functional(item, shared, "PlaneOrientationSequence", "ImageOrientationPatient"),
                       _functional(item, shared, "PixelMeasuresSequence", "PixelSpacing"), ds, k + 1, path)
                for k, item in enumerate(per_frame)]
    return [_plane(ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"), ds.get("PixelSpacing"),
                   ds, None, path) for ds in sources]


def _functional(frame: pydicom.Dataset, shared: pydicom.Dataset, group: str, keyword: str) -> object:
    """An attribute of an enhanced multi-frame image's frame: its own functional group, else the shared one."""
    for where in (frame, shared):
        if group in where and where[group].value and keyword in where[group][0]:
            return where[group][0][keyword].value
    return None


def _plane(position: object, orientation: object, spacing: object, ds: pydicom.Dataset, frame: int | None,
           path: Path) -> Plane:
    origin = _vector(position, 3, "ImagePositionPatient", path)
    cosines = _vector(orientation, 6, "ImageOrientationPatient", path)
    row_mm, col_mm = _vector(spacing, 2, "PixelSpacing", path)
    if row_mm <= 0 or col_mm <= 0:
        raise DataError(f"PixelSpacing {row_mm}, {col_mm} is not positive", path)
    return Plane(origin, cosines[:3] * col_mm, cosines[3:] * row_mm, str(ds.SOPClassUID), str(ds.SOPInstanceUID),
                 frame)


def _image_ref(plane: Plane) -> pydicom.Dataset:
    ref = pydicom.Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = plane.sop_class, plane.sop_instance
    if plane.frame is not None:
        ref.ReferencedFrameNumber = plane.frame
    return ref


def rtstruct(sources: Sequence[pydicom.Dataset], labels: np.ndarray, classes: Sequence[Structure],
             path: Path, series: OutputSeries) -> pydicom.Dataset:
    """The RT Structure Set of ``labels`` (frames, rows, columns) on ``sources``: one ROI per class."""
    headers = source_headers(sources, labels, path)
    frames = planes(headers, path)
    references = {str(ds.get("FrameOfReferenceUID", "")) for ds in headers}
    if len(references) != 1 or "" in references:
        raise DataError(f"an RTSTRUCT's contours live in one frame of reference; these images have "
                        f"{sorted(references)} (FrameOfReferenceUID)", path)
    reference = references.pop()
    first = headers[0]
    now = datetime.datetime.now()

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTStructureSetStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian  # explicit VR caps a DS value at 64 kB; long contours exceed it
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = RTStructureSetStorage
    for keyword in (*TYPE_2, "StudyInstanceUID"):  # so a PACS files it with its images
        setattr(ds, keyword, first.get(keyword, ""))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID, ds.SeriesNumber = series.uid_for(first), SERIES_NUMBER
    ds.SeriesDescription = f"{SOFTWARE} structures"
    ds.Manufacturer, ds.SoftwareVersions, ds.OperatorsName = SOFTWARE, __version__, ""
    ds.InstanceNumber = series.next_number(first)
    ds.StructureSetLabel = SOFTWARE
    ds.StructureSetDate = ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = ds.InstanceCreationTime = now.strftime("%H%M%S")

    ds.ReferencedFrameOfReferenceSequence = [_referenced_images(first, frames, reference)]

    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = [], [], []
    for number, structure in enumerate(classes, start=1):
        roi = pydicom.Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, reference
        roi.ROIName, roi.ROIDescription = structure.name[:64], structure.description[:64]
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        ds.StructureSetROISequence.append(roi)

        outline = pydicom.Dataset()
        outline.ReferencedROINumber = number
        outline.ROIDisplayColor = list(class_colour(structure.value))
        outline.ContourSequence = [
            _contour(plane, polygon) for plane, frame in zip(frames, labels)
            for polygon in contours(frame == structure.value)]
        ds.ROIContourSequence.append(outline)

        observation = pydicom.Dataset()
        observation.ObservationNumber, observation.ReferencedROINumber = number, number
        observation.RTROIInterpretedType, observation.ROIInterpreter = "ORGAN", ""
        observation.RTROIIdentificationCodeSequence = [hd.sr.CodedConcept.from_code(structure.concept)]
        ds.RTROIObservationsSequence.append(observation)
    return ds


def _referenced_images(first: pydicom.Dataset, frames: Sequence[Plane], reference: str) -> pydicom.Dataset:
    """Frame of reference > study > series > every image (and frame) the contours are drawn on."""
    images = pydicom.Dataset()
    images.SeriesInstanceUID = first.SeriesInstanceUID
    images.ContourImageSequence = [_image_ref(p) for p in frames]
    study = pydicom.Dataset()
    study.ReferencedSOPClassUID, study.ReferencedSOPInstanceUID = DETACHED_STUDY, first.StudyInstanceUID
    study.RTReferencedSeriesSequence = [images]
    frame_of_reference = pydicom.Dataset()
    frame_of_reference.FrameOfReferenceUID = reference
    frame_of_reference.RTReferencedStudySequence = [study]
    return frame_of_reference


def _contour(plane: Plane, polygon: np.ndarray) -> pydicom.Dataset:
    contour = pydicom.Dataset()
    contour.ContourImageSequence = [_image_ref(plane)]
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = len(polygon)
    contour.ContourData = [format_number_as_ds(float(v)) for v in plane.to_patient(polygon).ravel()]
    return contour


def write_rtstruct(target: Path, sources: Sequence[pydicom.Dataset], labels: np.ndarray,
                   classes: Sequence[Structure], path: Path, series: OutputSeries) -> Path:
    """``rtstruct(...)`` written at ``target``; ``path`` names the input in errors."""
    ds = rtstruct(sources, labels, classes, path, series)
    return write_with(target, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
