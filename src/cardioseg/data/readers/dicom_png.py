"""The ``dicom_png`` layout of the LV-on-DICOM-MRI study: ``<stem>.dcm`` with its label ``<stem>.png``, split by folder.

    root/train/<stem>.dcm + root/train/<stem>.png       (also val/, or cases directly in root/)
    root/test/<stem>.dcm  + root/test/GT/<stem>.png     (the test labels kept apart, as the study ships them)

A label beside its image or in a ``GT/`` folder next to it counts; every image needs one. The
folder a case sits in (train, val, test) is its official split (``data.use_official_split``);
cases directly in the root have none and are split by ratios. The patient is the DICOM header's
PatientID, so the slices of one patient stay in one split; a file without one is its own patient.
"""

from __future__ import annotations

from pathlib import Path

from cardioseg.config import DataConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.readers.base import (
    case_from_ref,
    check_image,
    read_dicom,
    read_dicom_header,
    read_raster,
    require_cases,
)
from cardioseg.data.readers.folders import mask_to_labels
from cardioseg.errors import DataError

name = "dicom_png"
label_names: dict[int, str] = {}
orientation_fix = "none"

SPLIT_FOLDERS = ("train", "val", "test")
LABEL_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")


def _case_folders(root: Path) -> list[tuple[Path, str | None]]:
    """(folder, its split) for root's split folders, else the root itself without one."""
    split = [(root / s, s) for s in SPLIT_FOLDERS if (root / s).is_dir()]
    return split or [(root, None)]


def _label_of(image: Path) -> Path | None:
    for folder in (image.parent, image.parent / "GT"):
        for suffix in LABEL_SUFFIXES:
            candidate = folder / f"{image.stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.dcm") if p.is_file() and not p.name.startswith("."))


def looks_like(root: Path) -> bool:
    """A ``<stem>.dcm`` whose ``<stem>.png`` lies beside it or in ``GT/``, in the root or a split folder."""
    if not root.is_dir():
        return False
    return any(_label_of(image) is not None for folder, _ in _case_folders(root) for image in _images(folder)[:64])


def discover(root: Path, cfg: DataConfig) -> list[CaseRef]:
    if not root.is_dir():
        raise DataError("data folder not found", root)
    refs, unlabelled = [], []
    for folder, split in _case_folders(root):
        for image in _images(folder):
            label = _label_of(image)
            if label is None:
                unlabelled.append(image)
                continue
            case_id = image.stem if split is None else f"{split}_{image.stem}"
            refs.append(CaseRef(case_id, _patient(image), image, label))
    if unlabelled:
        names = ", ".join(p.name for p in unlabelled[:10]) + (f" and {len(unlabelled) - 10} more" if len(unlabelled) > 10 else "")
        raise DataError(f"{len(unlabelled)} DICOM image(s) without <stem>.png beside them or in GT/: {names}", root)
    return require_cases(refs, root, name)


def _patient(image: Path) -> str:
    patient = str(read_dicom_header(image).get("PatientID", "") or "").strip()
    return patient or image.stem


def load(ref: CaseRef, cfg: DataConfig) -> Case:
    image, spacing, _ = read_dicom(ref.image_path)
    check_image(image, ref.image_path)
    assert ref.label_path is not None  # discover pairs every case
    label = mask_to_labels(read_raster(ref.label_path, label=True), ref.label_path, image.shape, set(cfg.labels or ()))
    return case_from_ref(ref, image, label, spacing)


def official_splits(root: Path) -> dict[str, str] | None:
    """patient -> split from the folders; None when the cases sit directly in the root."""
    folders = [(f, s) for f, s in _case_folders(root) if s is not None]
    if not folders:
        return None
    splits: dict[str, str] = {}
    for folder, split in folders:
        for image in _images(folder):
            patient = _patient(image)
            if splits.setdefault(patient, split) != split:
                raise DataError(f"patient {patient} has images in both {splits[patient]}/ and {split}/", image)
    return splits
