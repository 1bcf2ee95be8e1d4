"""The PACS round trip against a real Orthanc with its DICOMweb plugin, started here on 127.0.0.1.

Orthanc runs with HTTP basic authentication on free ports, a temporary configuration and storage
folder; real Sunnybrook slices are uploaded through its REST API, `cardioseg pacs` fetches,
segments and stores back, and the test reads the SEGs out of Orthanc.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.config import load_config
from cardioseg.inference.predict import predict_files
from cardioseg.models.checkpoint import save_bundle
from tests.inference.inference_helpers import CAMUS_PRE, camus_files, make_bundle, network_inputs

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "cardioseg", "not-a-real-secret"
STARTUP_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://127.0.0.1:PORT of a private Orthanc (DICOMweb under /dicom-web), stopped after the module."""
    if not (Path(ORTHANC).is_file() and DICOMWEB_PLUGIN.is_file()):
        pytest.skip("Orthanc or its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)")
    folder = tmp_path_factory.mktemp("orthanc")
    port = _free_port()
    config = {"Name": "cardioseg-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": port, "DicomServerEnabled": False, "DicomPort": _free_port(), "RemoteAccessAllowed": False,
              "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}, "Plugins": [str(DICOMWEB_PLUGIN)],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (folder / "orthanc.json").write_text(json.dumps(config))
    with open(folder / "orthanc.log", "wb") as log:
        process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(STARTUP_S * 10):  # a bounded number of polls, 0.1 s apart
            if process.poll() is not None:
                pytest.fail(f"Orthanc exited with {process.returncode}: {(folder / 'orthanc.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{base}/system", auth=(USER, PASSWORD), timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("Orthanc did not answer")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def checkpoint(camus224: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    images = network_inputs(camus_files(camus224, 8), CAMUS_PRE)
    return save_bundle(make_bundle("plain_unet", images, base=8), tmp_path_factory.mktemp("ckpt") / "lv.safetensors")


@pytest.fixture(scope="module")
def uploaded(orthanc: str, sunnybrook5: Path) -> list[Path]:
    """Four real slices of one patient (one series), uploaded with Orthanc's own REST API."""
    files = sorted((sunnybrook5 / "dicoms" / "SCD0000101").glob("*.dcm"))[:4]
    for path in files:
        requests.post(f"{orthanc}/instances", data=path.read_bytes(), auth=(USER, PASSWORD), timeout=30).raise_for_status()
    return files


def _token_file(tmp_path: Path) -> Path:
    token = tmp_path / "pacs.token"
    token.write_text("Authorization: Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() + "\n")
    token.chmod(0o600)
    return token


def test_pacs_round_trip_stores_segs_referencing_the_series(orthanc: str, uploaded: list[Path], checkpoint: Path,
                                                            tmp_path: Path) -> None:
    first = pydicom.dcmread(uploaded[0], stop_before_pixels=True)
    result = CliRunner().invoke(app, ["pacs", "--url", f"{orthanc}/dicom-web", "--study", first.StudyInstanceUID,
                                      "--model", str(checkpoint), "--token-file", str(_token_file(tmp_path)),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "4 image(s) of 1 series segmented, 4 DICOM SEG(s) stored" in " ".join(result.output.split())

    found = requests.get(f"{orthanc}/dicom-web/studies/{first.StudyInstanceUID}/series", params={"Modality": "SEG"},
                         auth=(USER, PASSWORD), timeout=30).json()
    assert len(found) == 1  # the four SEGs form one series
    seg_series = found[0]["0020000E"]["Value"][0]
    instances = requests.get(f"{orthanc}/dicom-web/studies/{first.StudyInstanceUID}/series/{seg_series}/instances",
                             auth=(USER, PASSWORD), timeout=30).json()
    assert len(instances) == 4

    png = tmp_path / "png"
    predict_files(uploaded, [checkpoint], load_config(overrides={"predict.out_dir": png}))
    by_source = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in uploaded}
    for instance in instances:
        sop = instance["00080018"]["Value"][0]
        raw = requests.get(f"{orthanc}/dicom-web/studies/{first.StudyInstanceUID}/series/{seg_series}/instances/{sop}",
                           headers={"Accept": 'multipart/related; type="application/dicom"'}, auth=(USER, PASSWORD),
                           timeout=30)
        raw.raise_for_status()
        body = raw.content
        start = body.index(b"DICM") - 128
        target = tmp_path / f"{sop}.dcm"
        target.write_bytes(body[start:])
        seg = hd.seg.segread(target)
        (series,) = seg.ReferencedSeriesSequence
        assert series.SeriesInstanceUID == first.SeriesInstanceUID
        (referenced,) = [i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence]
        assert referenced in by_source
        source = by_source.pop(referenced)
        mask = seg.get_pixels_by_source_instance([referenced], combine_segments=True, relabel=False)[0]
        np.testing.assert_array_equal(mask, np.asarray(Image.open(png / f"{source.stem}_mask.png")))
    assert not by_source  # every uploaded slice has its SEG


def test_without_credentials_the_server_refuses_with_a_clear_error(orthanc: str, uploaded: list[Path],
                                                                   checkpoint: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDIOSEG_PACS_TOKEN", raising=False)
    study = pydicom.dcmread(uploaded[0], stop_before_pixels=True).StudyInstanceUID
    result = CliRunner().invoke(app, ["pacs", "--url", f"{orthanc}/dicom-web", "--study", study,
                                      "--model", str(checkpoint), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    output = " ".join(result.output.split())
    assert "HTTP 401" in output and "--token-file" in output


def test_an_unknown_study_is_named(orthanc: str, uploaded: list[Path], checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["pacs", "--url", f"{orthanc}/dicom-web", "--study", "1.2.3.4",
                                      "--model", str(checkpoint), "--token-file", str(_token_file(tmp_path))])
    assert result.exit_code != 0 and "no study 1.2.3.4" in " ".join(result.output.split())


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    from cardioseg.errors import ConfigError
    from cardioseg.pacs.dicomweb import auth_headers

    token = _token_file(tmp_path)
    assert auth_headers(token) == {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    token.write_text("abc123")
    assert auth_headers(token) == {"Authorization": "Bearer abc123"}
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        auth_headers(token)
