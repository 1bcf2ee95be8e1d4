"""The app's HTTP API as the page uses it: uploads and their safety rules, re-thresholding, edits,
measurements, EF over four real CAMUS views, downloads, and a health check during inference."""

from __future__ import annotations

import base64
import gzip
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import cardioseg.app.api as api
from cardioseg.app.server import create_app
from cardioseg.config import Config
from tests.app.conftest import page_client
from tests.app.test_bad_files import dicom_bytes


def upload(client: TestClient, path: Path, name: str | None = None) -> dict[str, Any]:
    response = client.post("/api/sessions", params={"name": name or path.name}, content=path.read_bytes())
    assert response.status_code == 200, response.text
    return response.json()


def mask_of(payload: dict[str, Any]) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(payload["mask"]), np.uint8)
    return raw.reshape(payload["height"], payload["width"])


def area(payload: dict[str, Any]) -> int:
    return payload["measurements"]["areas"][0]["pixels"]


def erase_all(client: TestClient, session: dict[str, Any]) -> None:
    """One eraser stroke zig-zagging over the whole image."""
    step = 60
    points = [[x, y] for y in range(0, session["height"] + step, step)
              for x in (range(0, session["width"] + step, step))]
    stroke = {"mode": "eraser", "radius": 64, "points": points}
    assert client.post(f"/api/sessions/{session['id']}/slices/0/strokes", json=stroke).status_code == 200


# ---------- uploads: limits, sniffing, names ----------


def test_upload_over_the_limit_is_refused_with_413(tiny_model: Path, camus_views: dict[str, Path]) -> None:
    cfg = Config()
    cfg.serve.max_upload_mb = 0.01  # 10 KB; a camus224 PNG is larger
    data = camus_views["2CH_ED"].read_bytes()
    assert len(data) > 0.01 * 2**20
    with page_client(create_app(tiny_model, cfg)) as small:
        declared = small.post("/api/sessions", params={"name": "a.png"}, content=data)
        assert declared.status_code == 413
        assert "limit of 0.01 MB" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            for start in range(0, len(data), 4096):
                yield data[start : start + 4096]

        streamed = small.post("/api/sessions", params={"name": "a.png"}, content=chunks())
        assert streamed.status_code == 413
        assert "serve.max_upload_mb" in streamed.json()["detail"]


def test_type_is_judged_by_content_not_name(client: TestClient, camus_views: dict[str, Path], tmp_path: Path) -> None:
    png_as_dcm = tmp_path / "scan.dcm"
    png_as_dcm.write_bytes(camus_views["2CH_ED"].read_bytes())
    assert upload(client, png_as_dcm)["format"] == "png"

    text_as_png = client.post("/api/sessions", params={"name": "scan.png"}, content=b"hello, I am text " * 100)
    assert text_as_png.status_code == 400
    assert "not a PNG, JPEG, DICOM or NIfTI" in text_as_png.json()["detail"]


def test_broken_image_gives_a_clear_400(client: TestClient, camus_views: dict[str, Path]) -> None:
    truncated = camus_views["2CH_ED"].read_bytes()[:2000]
    response = client.post("/api/sessions", params={"name": "cut.png"}, content=truncated)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "cannot read image file" in detail
    assert "/tmp" not in detail and "upload.png" not in detail  # no server path in the message


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..\\secret.png"])
def test_path_like_names_are_refused(client: TestClient, camus_views: dict[str, Path], name: str) -> None:
    response = client.post("/api/sessions", params={"name": name}, content=camus_views["2CH_ED"].read_bytes())
    assert response.status_code == 400
    assert "plain name" in response.json()["detail"]


@pytest.mark.parametrize("url", ["/api/sessions/..%2F..%2Fetc%2Fpasswd", "/api/sessions/%2Fetc%2Fpasswd/mask.png",
                                 "/static/..%2F..%2Fserver.py", "/api/sessions/" + "0" * 32])
def test_no_route_reaches_a_server_path(client: TestClient, url: str) -> None:
    assert client.get(url).status_code in (400, 404)


def test_empty_upload_and_invalid_settings_are_400(client: TestClient, camus_views: dict[str, Path]) -> None:
    assert client.post("/api/sessions", params={"name": "x.png"}, content=b"").status_code == 400
    session = upload(client, camus_views["2CH_ED"])
    bad = client.put(f"/api/sessions/{session['id']}/settings", json={"threshold": 1.5})
    assert bad.status_code == 400
    assert "threshold" in bad.json()["detail"]
    huge = client.put(f"/api/sessions/{session['id']}/settings", json={"closing_radius": 10_000})
    assert huge.status_code == 400


# ---------- 2D images: re-thresholding, strokes, download ----------


def test_rethresholding_runs_no_inference(
    client: TestClient, camus_views: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = api.segment_file
    monkeypatch.setattr(api, "segment_file", lambda *args: calls.append(1) or original(*args))
    session = upload(client, camus_views["4CH_ED"])
    assert (session["width"], session["height"], session["slices"]) == (224, 224, 1)
    areas = []
    for threshold in (0.3, 0.5, 0.7):
        payload = client.put(f"/api/sessions/{session['id']}/settings?slice=0",
                             json={"threshold": threshold, "fill_holes": True, "largest_component": True,
                                   "closing_radius": 1}).json()
        areas.append(area(payload))
        assert set(np.unique(mask_of(payload))) <= {0, 1}
    assert areas == sorted(areas, reverse=True) and areas[0] > areas[-1]
    assert len(calls) == 1


def test_brush_eraser_undo_and_png_download(client: TestClient, camus_views: dict[str, Path]) -> None:
    session = upload(client, camus_views["2CH_ES"])
    sid = session["id"]
    erase_all(client, session)
    assert area(client.get(f"/api/sessions/{sid}/slices/0").json()) == 0
    # a horizontal brush stroke on the displayed (apex-up) image, rows 100..110, columns 50..150
    painted = client.post(f"/api/sessions/{sid}/slices/0/strokes",
                          json={"mode": "brush", "radius": 5, "points": [[55, 105], [145, 105]]}).json()
    shown = mask_of(painted)
    assert shown[105, 55:146].all() and not shown[:90].any()
    assert painted["can_undo"]
    undone = client.post(f"/api/sessions/{sid}/undo").json()
    assert area(undone) == 0
    client.post(f"/api/sessions/{sid}/slices/0/strokes", json={"mode": "brush", "radius": 5, "points": [[55, 105], [145, 105]]})

    download = client.get(f"/api/sessions/{sid}/mask.png")
    assert download.headers["content-disposition"] == 'attachment; filename="patient0200_2CH_ES_mask.png"'
    saved = np.asarray(Image.open(io.BytesIO(download.content)))
    assert saved.shape == (224, 224) and saved.dtype == np.uint8
    assert set(np.unique(saved)) == {0, 1}
    np.testing.assert_array_equal(saved, shown.T)  # back in the file's own (transposed) layout

    cleared = client.delete(f"/api/sessions/{sid}/edits").json()
    assert not cleared["can_undo"]
    assert client.post(f"/api/sessions/{sid}/slices/0/strokes", json={"mode": "brush", "radius": 2, "label": 2,
                                                                      "points": [[5, 5]]}).status_code == 400


def test_dicom_gives_areas_in_mm2(client: TestClient, camus_views: dict[str, Path], tmp_path: Path) -> None:
    pixels = np.asarray(Image.open(camus_views["4CH_ES"]))
    path = tmp_path / "echo"  # no suffix: the DICM marker is what counts
    path.write_bytes(dicom_bytes(pixels, spacing=(0.3, 0.2)))
    session = upload(client, path)
    assert session["format"] == "dicom"
    assert session["spacing"] == pytest.approx([0.2, 0.3])  # transposed with the image
    payload = client.get(f"/api/sessions/{session['id']}/slices/0").json()
    (row,) = payload["measurements"]["areas"]
    assert row["mm2"] == pytest.approx(row["pixels"] * 0.06)
    assert payload["measurements"]["volumes"] is None


# ---------- volumes ----------


def test_nifti_volume_slices_volume_and_download(client: TestClient, msd_crop: Path) -> None:
    source = nib.load(msd_crop)
    session = upload(client, msd_crop)
    assert session["kind"] == "volume" and session["format"] == "nifti_gz"
    assert session["slices"] == 6
    payload = client.get(f"/api/sessions/{session['id']}/slices/3").json()
    assert (payload["height"], payload["width"]) == (48, 48)
    (volume,) = payload["measurements"]["volumes"]
    voxel_ml = float(np.prod(source.header.get_zooms()[:3])) / 1000
    assert volume["ml"] == pytest.approx(volume["voxels"] * voxel_ml)

    download = client.get(f"/api/sessions/{session['id']}/mask.nii.gz")
    assert download.headers["content-disposition"].endswith('la_003_crop_mask.nii.gz"')
    mask = nib.Nifti1Image.from_bytes(gzip.decompress(download.content))
    np.testing.assert_allclose(mask.affine, source.affine)
    assert mask.shape == source.shape
    data = np.asarray(mask.dataobj)
    assert set(np.unique(data)) <= {0, 1} and int(np.count_nonzero(data)) == volume["voxels"]
    assert client.get(f"/api/sessions/{session['id']}/slices/6").status_code == 400
    image = client.get(f"/api/sessions/{session['id']}/slices/3/image.png")
    assert Image.open(io.BytesIO(image.content)).size == (48, 48)


# ---------- EF ----------


def test_four_views_give_an_ef_that_follows_the_corrections(client: TestClient, camus_views: dict[str, Path]) -> None:
    sessions = {key: upload(client, path) for key, path in camus_views.items()}
    assert {(s["patient"], s["view"], s["phase"]) for s in sessions.values()} == {
        ("patient0200", v, p) for v in ("2CH", "4CH") for p in ("ED", "ES")}
    for key, session in sessions.items():  # a cavity drawn by hand: wider at end-diastole
        erase_all(client, session)
        radius = 30 if key.endswith("ED") else 22
        stroke = {"mode": "brush", "radius": radius, "points": [[112, 50], [112, 170]]}
        assert client.post(f"/api/sessions/{session['id']}/slices/0/strokes", json=stroke).status_code == 200
    ids = [s["id"] for s in sessions.values()]
    (result,) = client.post("/api/ef", json={"sessions": ids}).json()["patients"]
    assert result["patient"] == "patient0200" and len(result["views"]) == 4
    assert result["unit"] == "px^3"  # camus224 PNGs carry no spacing
    assert 20 < result["ef"] < 60 and result["edv"] > result["esv"] > 0

    client.patch(f"/api/sessions/{sessions['4CH_ES']['id']}", json={"patient": "someone else", "view": "4CH", "phase": "ES"})
    patients = client.post("/api/ef", json={"sessions": ids}).json()["patients"]
    assert [p["ef"] for p in patients] == [None, None]
    assert "missing 4CH ES" in patients[0]["notes"][0]


# ---------- concurrency ----------


def test_health_answers_while_an_inference_runs(
    client: TestClient, camus_views: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    started, original = threading.Event(), api.segment_file

    def slow(*args: Any) -> Any:
        started.set()
        time.sleep(2.0)
        return original(*args)

    monkeypatch.setattr(api, "segment_file", slow)
    worker = threading.Thread(target=upload, args=(client, camus_views["2CH_ED"]))
    worker.start()
    assert started.wait(10)
    begun = time.perf_counter()
    assert client.get("/api/health").json() == {"status": "ok"}
    assert time.perf_counter() - begun < 1.0
    assert worker.is_alive()  # the inference was still running
    worker.join(20)
