"""Clinical numbers from masks: volumes, biplane LV volumes, ejection fraction, agreement.

Plain values in (label maps as arrays, spacings, view and phase tags, class ids found by role),
numbers and tables out: no file is read or written here. A prepared dataset is turned into these
inputs by ``cardioseg.evaluation.clinical_outputs``.
"""

from cardioseg.clinical.simpson import (
    BiplaneResult,
    PatientEF,
    ViewGeometry,
    biplane_volume,
    ejection_fraction,
    patient_ef,
    view_geometry,
)
from cardioseg.clinical.volumes import ClinicalError, VolumeResult, agreement_stats, mask_volume, volume_agreement

__all__ = [
    "BiplaneResult",
    "ClinicalError",
    "PatientEF",
    "ViewGeometry",
    "VolumeResult",
    "agreement_stats",
    "biplane_volume",
    "ejection_fraction",
    "mask_volume",
    "patient_ef",
    "view_geometry",
    "volume_agreement",
]
