"""Fixtures of the web-app tests: tiny model files, the app on them (in a test client or a real
server), real echo images and an MRI crop."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")

from fastapi import FastAPI
from fastapi.testclient import TestClient

from cardioseg.app.server import create_app
from cardioseg.config import Config, ModelConfig, PreprocessConfig
from cardioseg.models.checkpoint import ModelBundle, save_bundle
from cardioseg.models.factory import build_model
from cardioseg.plan import ClassSpec, Plan

PATIENT = "patient0200"
ORIGIN = "http://127.0.0.1:8000"
"""Where the test clients say they talk to: a host the app answers under (TestClient's default,
"testserver", is refused like any unknown host)."""
CAMUS_CLASSES = (ClassSpec(id=0, name="background"), ClassSpec(id=1, name="LV endocardium", role="lv_cavity"),
                 ClassSpec(id=2, name="LV myocardium"), ClassSpec(id=3, name="left atrium", role="left_atrium"))


def tiny_model_file(folder: Path, name: str, classes: tuple[ClassSpec, ...], width: int = 8, size: int = 64) -> Path:
    """A plain U-Net with random weights, laid out like a camus224 model: enough for UI mechanics."""
    torch.manual_seed(0)
    model_cfg = ModelConfig(arch="plain_unet", encoder=None, classes=1 if len(classes) == 2 else len(classes),
                            options={"base": width, "depth": 3})
    plan = Plan(layout="camus_png", orientation="transpose", preprocess=PreprocessConfig(size=(size, size)),
                label_map={c.id: c.id for c in classes[1:]}, classes=classes)
    bundle = ModelBundle(model=build_model(model_cfg).eval(), model_cfg=model_cfg, plan=plan)
    return save_bundle(bundle, folder / name)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary (LV cavity) model of width 8."""
    return tiny_model_file(tmp_path_factory.mktemp("model"), "tiny.safetensors", CAMUS_CLASSES[:2])


@pytest.fixture(scope="session")
def tiny_multiclass_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-class (cavity, myocardium, atrium) model of width 8."""
    return tiny_model_file(tmp_path_factory.mktemp("model"), "tiny4.safetensors", CAMUS_CLASSES)


def page_client(app: FastAPI) -> TestClient:
    """A test client that talks like the app's page: a known Host and the page's X-Cardioseg header."""
    return TestClient(app, base_url=ORIGIN, headers={"X-Cardioseg": "1"})


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> Iterator[TestClient]:
    with page_client(create_app(tiny_model, Config())) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread of this process; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


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
