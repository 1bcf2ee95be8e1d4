"""DICOM SEG of a label map, attached to the DICOM images it was computed from, and the coded structures both DICOM outputs share.

A SEG (or RTSTRUCT) means something only next to its source images: a viewer overlays it on
them, a PACS files it in their study. So the writers take the source headers and a label array
(frames, rows, columns) whose frame k is source k (single-frame sources: a 2D file, or a
series' slices in the order given) or frame k of the one multi-frame source (a cine).

Each foreground class is one segment, labelled with the class name and coded with SNOMED CT
concepts from pydicom's code dictionary (``pydicom.sr.codedict.codes.SCT``), under the category
"Anatomical structure": LV cavity -> "Left ventricle" (87878005; the dictionary has no concept
for the cavity alone, and this is the closest), LV myocardium -> "Left Ventricle Myocardium"
(49848007), left atrium -> "Left atrium" (82471001). A class with no known role is "Tissue"
(85756007) in the category "Tissue", told apart by its label.

The outputs copy the patient and study attributes of their source. Anonymised headers often
carry dates such as ``00000000``, which are not valid DICOM dates, or lack attributes DICOM
requires to be present if empty (Type 2: birth date, sex, study date, ...): the outputs have
those empty.

A SEG of several frames needs source images with a frame of reference and positions (MR and CT
series, enhanced multi-frame MR): highdicom, like most SEG software, indexes the frames of a
segmentation by their position. Echo cines have none, so they get per-frame PNG/NIfTI masks.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from highdicom.spatial import get_image_coordinate_system
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.valuerep import DA, DT, TM

from cardioseg import __version__
from cardioseg.anatomy import ROLE_NAMES, Role, role_from_name
from cardioseg.errors import DataError
from cardioseg.fileio import write_with
from cardioseg.viz.palette import class_colour

DICOM_FORMATS = ("dicom-seg", "rtstruct")
SERIES_NUMBER = 9901
"""Series number of the outputs: high, so viewers list them after the scanner's own series."""
SOFTWARE = "cardioseg"

ROLE_CODES: dict[Role, Code] = {
    "lv_cavity": codes.SCT.LeftVentricle,
    "lv_myocardium": codes.SCT.LeftVentricleMyocardium,
    "left_atrium": codes.SCT.LeftAtrium,
}
_TIME_VRS = {"DA": DA, "TM": TM, "DT": DT}
TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")
"""Patient and study attributes an output must carry, empty when unknown."""


@dataclass(frozen=True)
class Structure:
    """One foreground class as the DICOM outputs describe it."""

    value: int
    """Its value in the label map."""
    name: str
    role: Role | None

    @property
    def category(self) -> Code:
        return codes.SCT.AnatomicalStructure if self.role else codes.SCT.Tissue

    @property
    def concept(self) -> Code:
        return ROLE_CODES[self.role] if self.role else codes.SCT.Tissue

    @property
    def description(self) -> str:
        return f"{self.name} ({ROLE_NAMES[self.role]})" if self.role and ROLE_NAMES[self.role] != self.name else self.name


class OutputSeries:
    """The series the outputs of one run join: one per source series, numbered in the order written.

    A viewer then lists one segmentation series beside each image series, not one per image.
    """

    def __init__(self) -> None:
        self.uids: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def uid_for(self, source: pydicom.Dataset) -> str:
        return self.uids.setdefault(str(source.get("SeriesInstanceUID", "")), str(hd.UID()))

    def next_number(self, source: pydicom.Dataset) -> int:
        key = str(source.get("SeriesInstanceUID", ""))
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


def structures(names: Mapping[int, str], roles: Mapping[int, Role | None]) -> list[Structure]:
    """Structures of the label values in ``names``; a class without a declared role gets the one its name says."""
    return [Structure(value, name, roles.get(value) or role_from_name(name)) for value, name in sorted(names.items())]


def source_headers(sources: Sequence[pydicom.Dataset], labels: np.ndarray, path: Path) -> list[pydicom.Dataset]:
    """Copies of the source headers, checked against the label array, invalid dates emptied, Type 2 attributes there.

    ``labels`` is (frames, rows, columns): one frame per single-frame source, or the frames of one
    multi-frame source.
    """
    if labels.ndim != 3 or not sources:
        raise DataError(f"expected labels (frames, rows, columns) and their source images, got {labels.shape} "
                        f"for {len(sources)} source(s)", path)
    frames = int(sources[0].get("NumberOfFrames", 1) or 1) if len(sources) == 1 else len(sources)
    if frames != labels.shape[0]:
        raise DataError(f"{labels.shape[0]} label frame(s) for a source of {frames} frame(s)", path)
    for ds in sources:
        if (ds.get("Rows"), ds.get("Columns")) != labels.shape[1:]:
            raise DataError(f"the labels are {labels.shape[1]}x{labels.shape[2]}, the DICOM image "
                            f"{ds.get('Rows')}x{ds.get('Columns')} (rows x columns)", path)
    return [_complete(ds) for ds in sources]


def _complete(ds: pydicom.Dataset) -> pydicom.Dataset:
    clean = copy.deepcopy(ds)
    for element in clean:
        if element.VR in _TIME_VRS and element.value not in (None, ""):
            try:
                _TIME_VRS[element.VR](str(element.value))
            except ValueError:
                element.value = ""
    for keyword in TYPE_2:
        if keyword not in clean:
            setattr(clean, keyword, "")
    return clean


def write_dicom_seg(target: Path, sources: Sequence[pydicom.Dataset], labels: np.ndarray,
                    classes: Sequence[Structure], path: Path, series: OutputSeries) -> Path:
    """A binary DICOM SEG of ``labels`` (one segment per class, referencing ``sources``) at ``target``.

    ``path`` names the input in errors. Segment numbers run 1..K in the order of ``classes``.
    """
    headers = source_headers(sources, labels, path)
    references = {str(ds.get("FrameOfReferenceUID", "")) for ds in headers}
    if len(references) > 1:
        raise DataError(f"one DICOM SEG covers images of one frame of reference; these {len(headers)} have "
                        f"{len(references)} different FrameOfReferenceUIDs", path)
    if labels.shape[0] > 1 and get_image_coordinate_system(headers[0]) is None:
        raise DataError(f"a DICOM SEG of {labels.shape[0]} frames needs images placed in a frame of reference "
                        "(FrameOfReferenceUID and image positions), which this one has not (usual for ultrasound "
                        "cines; highdicom issue #284): use --format png or nifti for its frames", path)
    lookup = np.zeros(max([255, *(c.value for c in classes)]) + 1, np.uint8)
    for number, structure in enumerate(classes, start=1):
        lookup[structure.value] = number
    algorithm = hd.AlgorithmIdentificationSequence(name=SOFTWARE, family=codes.DCM.ArtificialIntelligence,
                                                   version=__version__)
    segments = [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=structure.name[:64],
            segmented_property_category=structure.category, segmented_property_type=structure.concept,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
            display_color=hd.color.CIELabColor.from_rgb(*class_colour(structure.value)))
        for number, structure in enumerate(classes, start=1)
    ]
    try:
        seg = hd.seg.Segmentation(
            source_images=headers, pixel_array=lookup[labels], segment_descriptions=segments,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            series_instance_uid=series.uid_for(headers[0]), series_number=SERIES_NUMBER, sop_instance_uid=hd.UID(),
            instance_number=series.next_number(headers[0]),
            manufacturer=SOFTWARE, manufacturer_model_name=SOFTWARE, software_versions=__version__,
            device_serial_number="none", series_description=f"{SOFTWARE} segmentation")
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise DataError(f"cannot make a DICOM SEG of this image: {exc}", path) from None
    return write_with(target, lambda tmp: seg.save_as(tmp))
