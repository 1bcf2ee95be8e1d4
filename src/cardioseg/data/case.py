"""The one case representation every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Case:
    """One image (2D) or volume (3D) with its label map and geometry.

    ``image`` and ``label`` are in array order: (H, W) for 2D and (X, Y, Z) for NIfTI volumes as
    nibabel returns them, so that ``affine`` maps array indices to scanner millimetres.
    ``label`` holds integer class ids (0 is background), or is ``None`` for unlabelled data.
    ``spacing`` is the physical size of one array step along each axis in mm, or ``None``
    when unknown (metrics and volumes are then in pixel units).
    """

    case_id: str
    patient_id: str
    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, ...] | None
    affine: np.ndarray | None = None
    view: str | None = None
    phase: str | None = None
    image_path: Path | None = None
    label_path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return self.image.ndim


@dataclass(frozen=True)
class CaseRef:
    """A case found on disk but not yet loaded: enough to list, split and report on it.

    Readers discover every ``CaseRef`` up front (cheap), then load them one at a time, so a
    corrupt file surfaces as a ``DataError`` for that case alone and ``--skip-bad`` can go on.
    """

    case_id: str
    patient_id: str
    image_path: Path
    label_path: Path | None
    view: str | None = None
    phase: str | None = None
    meta: tuple[tuple[str, Any], ...] = ()
