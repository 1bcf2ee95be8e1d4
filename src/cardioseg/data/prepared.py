"""The prepared-dataset format, read side: a manifest plus cached arrays that load fast.

Layout of a prepared directory::

    dataset.json     the plan (layout, classes and roles, preprocessing, orientation, slice axis) and counts
    manifest.csv     one row per 2D sample (sample, case, patient, volume, slice, view, phase,
                     split, spacing, source files, original size, crop box, content hash)
    images.npy       (N, H, W) float32, preprocessed network input
    labels.npy       (N, H, W) uint8 class ids at network resolution; 255 where the class is unknown
                     (background, or a class the case's annotators did not draw)
    originals.npz    every case at its original resolution (2D image or whole 3D volume), after
                     the orientation fix: the reference label under its case id, for honest
                     evaluation, and the raw image under ``image:<case id>``, for figures
    cases.json       per case: geometry (shape, spacing, affine, slice axis) and reader metadata
    config.yaml      the resolved configuration that produced it
    bad_files.csv    files skipped with --skip-bad, and why (only when there were some)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardioseg.artifacts import PreparedFiles, prepared_plan, read_prepared_info
from cardioseg.config import PreprocessConfig
from cardioseg.data.preprocess import Geometry
from cardioseg.errors import DataError
from cardioseg.plan import Plan


@dataclass
class PreparedDataset:
    """Read access to a prepared directory; arrays are memory-mapped, not loaded."""

    root: Path
    _originals: tuple[int, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise DataError("prepared dataset not found (run `cardioseg prepare` first)", self.root)
        self.files = PreparedFiles(self.root)
        missing = [path.name for path in self.files.required if not path.is_file()]
        if missing:
            raise DataError(f"not a complete prepared dataset: missing {', '.join(missing)}", self.root)

    @cached_property
    def info(self) -> dict[str, Any]:
        return read_prepared_info(self.root)

    @cached_property
    def plan(self) -> Plan:
        return prepared_plan(self.info, self.files.dataset)

    @cached_property
    def manifest(self) -> pd.DataFrame:
        return pd.read_csv(self.files.manifest, keep_default_na=False,
                           dtype={"patient_id": str, "case_id": str, "unannotated_classes": str})

    @cached_property
    def cases(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.files.cases.read_text())

    @cached_property
    def images(self) -> np.ndarray:
        return np.load(self.files.images, mmap_mode="r")

    @cached_property
    def labels(self) -> np.ndarray:
        return np.load(self.files.labels, mmap_mode="r")

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.plan.preprocess

    @property
    def class_ids(self) -> list[int]:
        return [c.id for c in self.plan.classes]

    @property
    def class_names(self) -> dict[int, str]:
        """Every class id -> name, background included."""
        return {c.id: c.name for c in self.plan.classes}

    @property
    def is_3d(self) -> bool:
        return self.plan.is_3d

    def unannotated(self, case_id: str) -> list[int]:
        """Class ids not drawn on this case: its pixels of value 255 may belong to them."""
        return [int(c) for c in self.cases[case_id].get("unannotated_classes") or []]

    def indices(self, split: str | None) -> np.ndarray:
        """Row indices of one split (all rows for ``None``)."""
        if split is None:
            return np.arange(len(self.manifest))
        return np.flatnonzero(self.manifest["split"].to_numpy() == split)

    def _original(self, key: str) -> np.ndarray:
        store = self._originals_store()
        if key not in store:
            raise DataError(f"nothing stored under {key!r}", self.files.originals)
        return store[key]

    def _originals_store(self) -> Any:
        """originals.npz, opened once per process: each opening reads its whole directory (two entries per case),
        which made reading every test case's reference cost more than the network's pass over them."""
        pid = os.getpid()
        if self._originals is None or self._originals[0] != pid:
            self._originals = (pid, np.load(self.files.originals))
        return self._originals[1]

    def original_label(self, case_id: str) -> np.ndarray:
        return self._original(case_id)

    def original_image(self, case_id: str) -> np.ndarray:
        return self._original(f"image:{case_id}")

    def geometry(self, row: int) -> Geometry:
        record = self.manifest.iloc[row]
        return Geometry(
            (int(record.orig_h), int(record.orig_w)),
            (int(record.crop_y0), int(record.crop_y1), int(record.crop_x0), int(record.crop_x1)),
        )

    def spacing(self, case_id: str) -> tuple[float, ...] | None:
        spacing = self.cases[case_id].get("spacing")
        return tuple(spacing) if spacing else None


def context_rows(manifest: pd.DataFrame, rows: np.ndarray, context: int) -> np.ndarray:
    """(len(rows), 2 * context + 1) manifest rows: each row's plane with its ``context`` neighbours on each side in
    the same volume, in slice order. Neighbours past a volume's end repeat its last plane (as a 2D case repeats
    itself), so the network never sees a plane of another case or a blank one."""
    cases = manifest["case_id"].to_numpy()
    slices = manifest["slice_index"].to_numpy().astype(int)
    lookup = {(case, plane): row for row, (case, plane) in enumerate(zip(cases, slices))}
    by_case = manifest.groupby("case_id")["slice_index"]
    low, high = by_case.transform("min").to_numpy().astype(int), by_case.transform("max").to_numpy().astype(int)
    out = np.empty((len(rows), 2 * context + 1), np.int64)
    for column, offset in enumerate(range(-context, context + 1)):
        planes = np.clip(slices[rows] + offset, low[rows], high[rows])
        out[:, column] = [lookup[(case, plane)] for case, plane in zip(cases[rows], planes)]
    return out
