"""Small real prepared datasets and hand-built evaluation folders, for the clinical and report tests.

No model is trained: the "predictions" are the reference masks eroded by one pixel (a known,
plausible error), scored with the project's metrics and written in the layout `cardioseg
evaluate` produces. Imported as fixtures by ``tests/clinical/conftest.py`` and ``tests/viz/conftest.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cardioseg.config import load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.clinical_outputs import clinical_outputs
from cardioseg.evaluation.metrics import MetricAccumulator, multiclass_case_metrics
from cardioseg.fileio import write_json, write_npz

CAMUS_PATIENTS = ["patient0001", "patient0002", "patient0003", "patient0004"]
MSD_VOLUMES = ["la_003", "la_004"]


def prepare(source: Path, out: Path, labels: dict[int, int] | None, size: int = 64) -> PreparedDataset:
    cfg = load_config(overrides={"data.source": source, "data.prepared": out, "data.labels": labels,
                                 "preprocess.size": [size, size]})
    prepare_dataset(cfg, progress=False)
    return PreparedDataset(out)


def copy_camus(camus224: Path, dest: Path, patients: list[str]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for patient in patients:
        for file in (camus224 / "train").glob(f"{patient}_*.png"):
            shutil.copy(file, dest / file.name)
    return dest


def crop_msd(msd: Path, dest: Path, volumes: list[str], margin: int = 6) -> Path:
    """An MSD-layout folder with each volume cropped around its atrium (the affine moved to match)."""
    for sub in ("imagesTr", "labelsTr"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for name in volumes:
        label = nib.load(msd / "labelsTr" / f"{name}.nii.gz")
        image = nib.load(msd / "imagesTr" / f"{name}.nii.gz")
        hits = np.argwhere(np.asarray(label.dataobj) > 0)
        low = np.maximum(hits.min(0) - margin, 0)
        high = np.minimum(hits.max(0) + margin + 1, label.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
        affine = image.affine.copy()
        affine[:3, 3] = image.affine[:3, :3] @ low + image.affine[:3, 3]
        for sub, img in (("imagesTr", image), ("labelsTr", label)):
            cropped = nib.Nifti1Image(np.asarray(img.dataobj)[box], affine, img.header)
            cropped.header.set_zooms(img.header.get_zooms())
            nib.save(cropped, dest / sub / f"{name}.nii.gz")
    descriptor = {"labels": {"0": "background", "1": "left atrium"},
                  "training": [{"image": f"./imagesTr/{v}.nii.gz", "label": f"./labelsTr/{v}.nii.gz"} for v in volumes]}
    (dest / "dataset.json").write_text(json.dumps(descriptor))
    return dest


def eroded_predictions(prepared: PreparedDataset) -> dict[str, np.ndarray]:
    """Every labelled case's reference with each class eroded by one pixel (in-plane for volumes)."""
    predictions = {}
    for case_id in prepared.cases:
        ref = prepared.original_label(case_id)
        structure = ndimage.generate_binary_structure(ref.ndim, 1)
        if ref.ndim == 3:
            structure[:, :, [0, 2]] = False  # no erosion across slices
        pred = np.zeros_like(ref)
        for class_id in np.unique(ref[ref > 0]):
            pred[ndimage.binary_erosion(ref == class_id, structure)] = class_id
        predictions[case_id] = pred
    return predictions


def write_evaluation(prepared: PreparedDataset, predictions: dict[str, np.ndarray], out: Path) -> Path:
    """An evaluation folder as `cardioseg evaluate` writes it (raw = post here), with clinical outputs."""
    out.mkdir(parents=True, exist_ok=True)
    names = {c: n for c, n in prepared.class_names.items() if c != 0}
    accumulator = MetricAccumulator()
    for case_id, pred in predictions.items():
        accumulator.add_classes(case_id, multiclass_case_metrics(pred, prepared.original_label(case_id), names,
                                                                 prepared.spacing(case_id)))
    frames = []
    for variant in ("raw", "post"):
        frame = accumulator.to_dataframe()
        frame.insert(1, "variant", variant)
        frames.append(frame)
    meta = pd.DataFrame([{"case_id": c, "patient_id": i["patient_id"], "view": i["view"], "phase": i["phase"]}
                         for c, i in prepared.cases.items()])
    per_case = pd.concat(frames, ignore_index=True).merge(meta, on="case_id", how="left")
    per_case.to_csv(out / "per_case.csv", index=False)
    records = accumulator.summary().to_dict("records")
    unit = "mm" if all(prepared.spacing(c) for c in predictions) else "px"
    summary = {"model": str(out / "no_model.safetensors"), "arch": "unet", "encoder": "resnet18",
               "parameters": 1_000_000, "model_file_mb": 4.0, "data": str(prepared.root), "split": "all",
               "n_cases": len(predictions), "n_images": len(predictions), "distance_unit": unit,
               "resolution": "original", "inference_ms_per_image": 1.0, "evaluation_seconds": 0.1,
               "postprocess": {"fill_holes": True, "largest_component": True, "closing_radius": 0, "min_slice_area": 0},
               "metrics": {"raw": records, "post": records}}
    summary["clinical"] = clinical_outputs(prepared, predictions, out)
    write_json(out / "summary.json", summary)
    write_npz(out / "predictions.npz", predictions)
    return out


@pytest.fixture(scope="session")
def camus_small(camus224: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """Four real camus224 patients (16 images), LV cavity only, prepared at 64x64."""
    root = tmp_path_factory.mktemp("camus_small")
    return prepare(copy_camus(camus224, root / "raw", CAMUS_PATIENTS), root / "prepared", {1: 1})


@pytest.fixture(scope="session")
def camus_multiclass(camus224: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """Two real camus224 patients with all three classes (LV, myocardium, atrium)."""
    root = tmp_path_factory.mktemp("camus_multiclass")
    return prepare(copy_camus(camus224, root / "raw", CAMUS_PATIENTS[:2]), root / "prepared", {1: 1, 2: 2, 3: 3})


@pytest.fixture(scope="session")
def msd_small(msd_heart_la: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """Two real MSD left-atrium volumes, cropped around the atrium, prepared at 64x64."""
    root = tmp_path_factory.mktemp("msd_small")
    return prepare(crop_msd(msd_heart_la, root / "raw", MSD_VOLUMES), root / "prepared", None)


@pytest.fixture(scope="session")
def camus_eval(camus_small: PreparedDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_evaluation(camus_small, eroded_predictions(camus_small), tmp_path_factory.mktemp("camus_eval"))


@pytest.fixture(scope="session")
def msd_eval(msd_small: PreparedDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_evaluation(msd_small, eroded_predictions(msd_small), tmp_path_factory.mktemp("msd_eval"))
