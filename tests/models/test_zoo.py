"""The ready-trained models: shipped with their card and licence, small, and segmenting real unseen data by name."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.models.checkpoint import load_bundle
from cardioseg.models.zoo import pretrained_models, resolve_model

SHIPPED = {"echo-lv", "echo-3class", "la-mri", "lv-sax-mri"}
MAX_MB = 5.0
CLI = Path(sys.executable).parent / "cardioseg"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1, int(a.sum() + b.sum()))


def test_every_shipped_model_has_its_card_licence_and_half_precision_weights() -> None:
    zoo = pretrained_models()
    assert SHIPPED <= set(zoo)
    for name, entry in zoo.items():
        card = entry.card
        assert {"task", "data", "licence", "citation", "validation", "recipe"} <= set(card), name
        assert card["licence"] in entry.files.licence.read_text(encoding="utf-8")
        assert entry.files.model.stat().st_size < MAX_MB * 1e6, name
        with safe_open(str(entry.files.model), "pt") as weights:
            dtypes = {str(weights.get_tensor(key).dtype) for key in weights.keys()}
        assert "torch.float16" in dtypes and "torch.float32" not in dtypes, (name, dtypes)
        bundle = load_bundle(entry.files.model)  # into the float32 network
        assert all(p.dtype.is_floating_point and str(p.dtype) == "torch.float32" for p in bundle.model.parameters())
        assert bundle.plan.recipe is not None  # trained with the planned recipe, which the plan keeps
        assert all(0.0 < v <= 1.0 for v in card["validation"]["dice"].values())


def test_the_cli_lists_them_and_takes_a_name_where_a_file_goes(tmp_path: Path) -> None:
    listed = CliRunner().invoke(app, ["models", "--pretrained"])
    assert listed.exit_code == 0 and all(name in listed.output for name in SHIPPED)
    shown = CliRunner().invoke(app, ["plan", "show", "la-mri"])
    assert shown.exit_code == 0 and "2.5D" in shown.output
    assert resolve_model("echo-lv") == pretrained_models()["echo-lv"].files.model
    own = tmp_path / "echo-lv"
    own.mkdir()
    assert resolve_model(own) == own  # a path that exists is the user's, never replaced by a name
    missing = CliRunner().invoke(app, ["predict", "-m", "echo-lvv", str(tmp_path), "-o", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "echo-lvv" in missing.output and "echo-lv," in missing.output
    assert missing.exception is None or isinstance(missing.exception, SystemExit)  # a message, not a traceback


@pytest.mark.parametrize(("name", "labels"), [("echo-lv", {1: 1}), ("echo-3class", {1: 1, 2: 2, 3: 3})])
def test_echo_models_segment_unseen_camus_patients(camus224: Path, tmp_path: Path, name: str,
                                                   labels: dict[int, int]) -> None:
    """Patients of the official validation split (the models never trained on them), all four views."""
    images = sorted(p for p in (camus224 / "val").glob("patient0341_*.png") if not p.stem.endswith("_gt"))
    assert len(images) == 4
    out = tmp_path / name
    result = CliRunner().invoke(app, ["predict", "-m", name, *map(str, images), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    for image in images:
        predicted = np.asarray(Image.open(out / f"{image.stem}_mask.png"))
        reference = np.asarray(Image.open(image.with_name(f"{image.stem}_gt.png")))
        for source, target in labels.items():
            score = dice(predicted == target, reference == source)
            assert score > (0.8 if target == 1 else 0.6), (image.name, target, score)


def test_la_mri_segments_a_volume_it_never_saw_on_its_grid(msd_heart_la: Path, tmp_path: Path) -> None:
    held_out = pretrained_models()["la-mri"].card["validation"]["case_ids"]
    source = msd_heart_la / "imagesTr" / f"{held_out[0]}.nii.gz"
    result = CliRunner().invoke(app, ["predict", "-m", "la-mri", str(source), "-o", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    mask, original = nib.load(tmp_path / f"{held_out[0]}_mask.nii.gz"), nib.load(source)
    assert mask.shape == original.shape and np.allclose(mask.affine, original.affine)
    reference = np.asarray(nib.load(msd_heart_la / "labelsTr" / source.name).dataobj) > 0
    assert dice(np.asarray(mask.dataobj) > 0, reference) > 0.75


def test_serve_takes_a_name(camus224: Path, tmp_path: Path) -> None:
    if not CLI.exists():
        pytest.skip(f"the cardioseg command is not installed next to {sys.executable}")
    from tests.app.conftest import free_port
    from tests.app.test_shutdown import _wait_for_health

    port = free_port()
    server = subprocess.Popen([str(CLI), "serve", "-m", "echo-lv", "--port", str(port)],
                              env={**os.environ, "TMPDIR": str(tmp_path)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_health(url, server)
        image = camus224 / "val" / "patient0341_4CH_ED.png"
        request = urllib.request.Request(f"{url}/api/sessions?name={image.name}", data=image.read_bytes(),
                                         headers={"X-Cardioseg": "1", "Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            session = json.load(answer)
        with urllib.request.urlopen(f"{url}/api/sessions/{session['id']}/slices/0", timeout=60) as answer:
            payload = json.load(answer)
    finally:
        server.terminate()
        server.wait(timeout=60)
    mask = np.frombuffer(base64.b64decode(payload["mask"]), np.uint8).reshape(payload["height"], payload["width"])
    reference = np.asarray(Image.open(image.with_name(f"{image.stem}_gt.png"))).T == 1  # the app shows it apex up
    assert dice(mask == 1, reference) > 0.8
