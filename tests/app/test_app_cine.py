"""The app on a real ultrasound cine (pydicom's 30-frame YBR file): frames, the LV curve with ED/ES,
moving ED or ES and the EF following, the QC flag after each segmentation, the NIfTI of all frames."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.app.test_api import upload

FRAMES = 30


@pytest.fixture(scope="module")
def cine_file() -> Path:
    data = pytest.importorskip("pydicom.data")
    return Path(data.get_testdata_file("examples_ybr_color.dcm"))


def _radius(frame: int) -> int:
    """The cavity drawn on each frame: largest (40 px) at frame 5, smallest (28 px) at frame 20."""
    return round(34 + 6 * np.cos(2 * np.pi * (frame - 5) / FRAMES))


def _draw_cavities(client: TestClient, session: dict[str, Any]) -> None:
    """Every frame's model output replaced by a disc of known radius, by eraser and brush strokes."""
    sid, width, height = session["id"], session["width"], session["height"]
    wipe = {"mode": "eraser", "radius": 64, "points": [[x, y] for y in range(0, height + 60, 60)
                                                         for x in range(0, width + 60, 60)]}
    for frame in range(FRAMES):
        assert client.post(f"/api/sessions/{sid}/slices/{frame}/strokes", json=wipe).status_code == 200
        disc = {"mode": "brush", "radius": _radius(frame), "label": 1, "points": [[width // 2, height // 2]]}
        assert client.post(f"/api/sessions/{sid}/slices/{frame}/strokes", json=disc).status_code == 200


def test_a_cine_upload_has_frames_a_curve_and_movable_phases(client: TestClient, cine_file: Path) -> None:
    session = upload(client, cine_file, "echo_cine.dcm")
    assert session["kind"] == "cine" and session["slices"] == FRAMES
    assert (session["height"], session["width"]) == (320, 240)  # the model's transpose, like any 2D upload
    sid = session["id"]
    _draw_cavities(client, session)
    curve = client.get(f"/api/sessions/{sid}/cine").json()
    assert curve["available"] and curve["frames"] == FRAMES and len(curve["times_ms"]) == FRAMES
    assert (curve["ed"], curve["es"], curve["phase_source"]) == (5, 20, "detected")
    assert curve["area_unit"] == "mm²" and curve["volume_unit"] == "mL"
    spacing = session["spacing"]
    expected = np.pi * np.array([_radius(k) for k in range(FRAMES)], float) ** 2 * spacing[0] * spacing[1]
    np.testing.assert_allclose(curve["area"], expected, rtol=0.04)
    assert curve["ef"] == pytest.approx(100 * (1 - (28 / 40) ** 3), abs=2)  # discs: a sphere's volumes
    assert curve["qc"]["flag"] == "ok" and curve["frame_flags"] == ["ok"] * FRAMES

    moved = client.put(f"/api/sessions/{sid}/cine/phases", json={"ed": 5, "es": 12}).json()
    assert (moved["ed"], moved["es"], moved["phase_source"]) == (5, 12, "user")
    assert moved["ef"] == pytest.approx(100 * (1 - moved["volume"][12] / moved["volume"][5]))
    assert moved["ef"] < curve["ef"]
    assert client.get(f"/api/sessions/{sid}/cine").json()["es"] == 12  # kept for the session
    refused = client.put(f"/api/sessions/{sid}/cine/phases", json={"ed": 5, "es": 30})
    assert refused.status_code == 400 and "ES frame 30 does not exist" in refused.json()["detail"]

    mask = nib.Nifti1Image.from_bytes(gzip.decompress(client.get(f"/api/sessions/{sid}/mask.nii.gz").content))
    assert mask.shape == (240, 320, FRAMES)  # the file's own layout, every frame
    assert int(np.count_nonzero(np.asarray(mask.dataobj)[..., 5])) == pytest.approx(np.pi * 40**2, rel=0.03)


def test_every_segmentation_carries_a_qc_flag(client: TestClient, cine_file: Path,
                                              camus_views: dict[str, Path]) -> None:
    image = upload(client, camus_views["4CH_ED"])
    payload = client.get(f"/api/sessions/{image['id']}/slices/0").json()
    assert payload["qc"]["flag"] in ("ok", "check") and payload["qc"]["uncertainty"] is None
    wipe = {"mode": "eraser", "radius": 64, "points": [[x, y] for y in range(0, 300, 60) for x in range(0, 300, 60)]}
    erased = client.post(f"/api/sessions/{image['id']}/slices/0/strokes", json=wipe).json()
    assert erased["qc"] == {"flag": "check", "reasons": ["LV endocardium empty"], "uncertainty": None}
    cine = upload(client, cine_file)
    frame = client.get(f"/api/sessions/{cine['id']}/slices/3").json()
    assert frame["slice"] == 3 and frame["qc"]["flag"] in ("ok", "check")
    assert client.get(f"/api/sessions/{image['id']}/cine").status_code == 400  # a still image has no curve


def test_the_page_plays_a_cine_and_moves_es(tiny_model: Path, cine_file: Path) -> None:
    """In headless Chromium: the frame slider, play/pause, the curve, moving ES, the QC flag."""
    browser_test = pytest.importorskip("tests.app.test_browser", reason="Chromium or playwright missing")
    from cardioseg.app.server import create_app
    from cardioseg.config import Config
    from tests.app.conftest import live_server

    sync_api, expect = browser_test.sync_api, browser_test.sync_api.expect
    with live_server(create_app(tiny_model, Config())) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_test.CHROMIUM, args=browser_test.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            page.set_input_files("#file-input", str(cine_file))
            expect(page.locator("#session-list li .badge")).to_have_text("CINE", timeout=60_000)
            expect(page.locator("#cine-panel")).to_be_visible()
            expect(page.locator("#slice-label")).to_have_text("Frame")
            expect(page.locator("#qc .qc-flag")).to_be_visible()
            expect(page.locator("#cine-curve line.ed")).to_have_count(1)
            expect(page.locator("#cine-curve circle.measured")).not_to_have_count(0)

            start = page.locator("#slice-value").inner_text()
            page.locator("#play").click()
            expect(page.locator("#play")).to_have_text("Pause")
            expect(page.locator("#slice-value")).not_to_have_text(start, timeout=10_000)
            page.locator("#play").click()
            expect(page.locator("#play")).to_have_text("Play")

            page.locator("#slice").fill("9")
            expect(page.locator("#slice-value")).to_have_text(f"10 / {FRAMES}")
            page.locator("#set-es").click()
            expect(page.locator("#cine-phases")).to_contain_text("ES frame 10 (set by you)")
            assert not errors, errors
        finally:
            browser.close()
