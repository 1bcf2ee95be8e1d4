"""What the page shows about a segmentation's trustworthiness and, for a cine, its heartbeat.

``session_qc``: the QC flag and reasons (``clinical.qc``) of what is on screen, corrections
included: a 2D image, the whole of a volume, or the displayed frame of a cine. The app runs one
model without test-time flips, so its uncertainty score is unknown; the rule-based checks hold.

``cine_payload``: the LV curve of a cine (``clinical.sequence``, from the corrected masks, apex up
as displayed), ED and ES (the user's, else the file's tags, else detected), the EF, and the cine's
QC (``inference.cine.cine_qc``). Moving ED or ES (``set_phases``) changes the EF, nothing else.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cardioseg.app.sessions import Session
from cardioseg.clinical.qc import QcResult, assess
from cardioseg.clinical.sequence import SequenceResult, cine_sequence
from cardioseg.clinical.volumes import ClinicalError
from cardioseg.errors import DataError
from cardioseg.inference.cine import cine_qc


def qc_json(result: QcResult) -> dict[str, Any]:
    return {"flag": result.flag, "reasons": list(result.reasons), "uncertainty": result.uncertainty}


def _assess(session: Session, labels: np.ndarray, spacing: tuple[float, ...] | None) -> QcResult:
    model = session.model
    return assess(labels, model.class_names, spacing, None, model.roles, view=session.view)


def session_qc(session: Session, index: int) -> dict[str, Any]:
    """QC of the image, the volume, or the cine frame ``index``, as the page shows it."""
    if session.scan.cine is not None:
        return qc_json(_assess(session, session.mask(index), session.plane_spacing()))
    if session.depth > 1:
        return qc_json(_assess(session, session.final(), session.scan.spacing))
    return qc_json(_assess(session, session.final()[..., 0], session.plane_spacing()))


def _sequence(session: Session) -> SequenceResult:
    cine = session.scan.cine
    if cine is None:
        raise DataError("this upload is not a cine (a multi-frame DICOM)")
    model = session.model
    frames = np.moveaxis(session.final(), 2, 0)
    tagged = cine.tagged if None not in cine.tagged else (None, None)
    sequence = cine_sequence(frames, model.cavity_label, session.plane_spacing(), atrium=model.atrium_label,
                             tagged=tagged, times_ms=cine.times_ms)
    return sequence if session.phases is None else sequence.with_phases(*session.phases)


def cine_payload(session: Session) -> dict[str, Any]:
    """The curve, ED/ES, EF and QC of a cine; ``available`` is false (with the reason) when nothing can be measured."""
    try:
        sequence = _sequence(session)
    except ClinicalError as exc:
        return {"available": False, "reason": exc.problem, "frames": session.depth}
    frames = np.moveaxis(session.final(), 2, 0)
    frame_qc = [_assess(session, frame, session.plane_spacing()) for frame in frames]
    return {
        "available": True, "frames": sequence.n_frames, "times_ms": _numbers(sequence.times_ms),
        "area": _numbers(sequence.area), "area_unit": sequence.area_unit,
        "volume": _numbers(sequence.volume), "volume_unit": sequence.volume_unit, "method": sequence.method,
        "smoothed": _numbers(sequence.smoothed), "ed": sequence.ed, "es": sequence.es,
        "phase_source": sequence.phase_source, "ef": _number(sequence.ef), "edv": _number(sequence.edv),
        "esv": _number(sequence.esv), "notes": list(sequence.notes),
        "frame_flags": [qc.flag for qc in frame_qc],
        "qc": qc_json(cine_qc(frame_qc, sequence, [None] * len(frame_qc))),
    }


def set_phases(session: Session, ed: int, es: int) -> dict[str, Any]:
    """Move ED and ES to the given frames; the answer is the new ``cine_payload``."""
    if session.scan.cine is None:
        raise DataError("this upload is not a cine (a multi-frame DICOM)")
    for name, frame in (("ED", ed), ("ES", es)):
        if not 0 <= frame < session.depth:
            raise DataError(f"{name} frame {frame} does not exist: this cine has frames 0-{session.depth - 1}")
    session.phases = (ed, es)
    return cine_payload(session)


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _numbers(values: np.ndarray | None) -> list[float | None] | None:
    return None if values is None else [_number(float(v)) for v in values]
