"""Fixtures of the web-app tests: a tiny model file, the app on it, real echo images and an MRI crop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from cardioseg.app.server import create_app
from cardioseg.config import Config, ModelConfig, PreprocessConfig
from cardioseg.models.checkpoint import ModelBundle, save_bundle
from cardioseg.models.factory import build_model
from cardioseg.plan import ClassSpec, Plan

PATIENT = "patient0200"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain U-Net of width 8 with random weights, laid out like a camus224 model: enough for UI mechanics."""
    torch.manual_seed(0)
    model_cfg = ModelConfig(arch="plain_unet", encoder=None, classes=1, options={"base": 8, "depth": 3})
    plan = Plan(layout="camus_png", orientation="transpose", preprocess=PreprocessConfig(size=(64, 64)),
                label_map={1: 1}, classes=(ClassSpec(id=0, name="background"),
                                           ClassSpec(id=1, name="LV endocardium", role="lv_cavity")))
    bundle = ModelBundle(model=build_model(model_cfg).eval(), model_cfg=model_cfg, plan=plan)
    return save_bundle(bundle, tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tiny_model, Config())) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def camus_views(camus224: Path) -> dict[str, Path]:
    """The four apical views of one real camus224 patient, by stem suffix ("2CH_ED", ...)."""
    return {f"{view}_{phase}": camus224 / "val" / f"{PATIENT}_{view}_{phase}.png"
            for view in ("2CH", "4CH") for phase in ("ED", "ES")}


@pytest.fixture(scope="session")
def msd_crop(msd_heart_la: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48x48x6 crop of a real MSD left-atrium MRI, its affine following the crop."""
    image = nib.load(msd_heart_la / "imagesTr" / "la_003.nii.gz")
    crop = image.slicer[100:148, 100:148, 60:66]
    path = tmp_path_factory.mktemp("msd") / "la_003_crop.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(crop.dataobj), crop.affine, crop.header), path)
    return path
