"""No patient data stays on disk after the server: SIGTERM and SIGINT remove its scratch folder, and
a server that starts removes the folders of dead servers (never a live one's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cardioseg.app.scratch import OWNER_FILE, PREFIX, remove_stale
from tests.app.conftest import free_port

CLI = Path(sys.executable).with_name("cardioseg")


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def _scratch(parent: Path, name: str, owner: str | None) -> Path:
    folder = parent / f"{PREFIX}{name}"
    (folder / "sessions").mkdir(parents=True)
    (folder / "sessions" / "upload.nii.gz").write_bytes(b"patient data")
    if owner is not None:
        (folder / OWNER_FILE).write_text(owner)
    return folder


def test_only_folders_of_dead_owners_are_removed(tmp_path: Path) -> None:
    dead = _scratch(tmp_path, "dead", f"{_dead_pid()}\n")
    live = _scratch(tmp_path, "live", f"{os.getpid()}\n")
    reused = _scratch(tmp_path, "reused", f"{os.getpid()} 1\n")  # our pid, but a process started at another time
    unknown = _scratch(tmp_path, "unknown", None)
    garbled = _scratch(tmp_path, "garbled", "not a pid")
    (tmp_path / f"{PREFIX}link").symlink_to(dead)
    other = tmp_path / "not-ours"
    other.mkdir()
    (other / OWNER_FILE).write_text(f"{_dead_pid()}\n")

    removed = remove_stale(tmp_path)

    assert sorted(removed) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists()
    assert live.exists() and unknown.exists() and garbled.exists() and other.exists()


def _wait_for_health(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(600):  # model loading in a fresh interpreter: a few seconds
        if server.poll() is not None:
            pytest.fail(f"cardioseg serve exited with {server.returncode}: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2) as answer:
                if json.load(answer) == {"status": "ok"}:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail("cardioseg serve did not answer")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_server_leaves_no_upload_on_disk(
    tiny_model: Path, msd_crop: Path, tmp_path: Path, stop: signal.Signals
) -> None:
    if not CLI.exists():
        pytest.skip(f"the cardioseg command is not installed next to {sys.executable}")
    stale = _scratch(tmp_path, "stale", f"{_dead_pid()}\n")
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    server = subprocess.Popen([str(CLI), "serve", "--model", str(tiny_model), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_health(url, server)
        (scratch,) = (folder for folder in tmp_path.glob(f"{PREFIX}*") if folder != stale)
        owner = (scratch / OWNER_FILE).read_text() if (scratch / OWNER_FILE).exists() else ""

        request = urllib.request.Request(f"{url}/api/sessions?name=la_003_crop.nii.gz", data=msd_crop.read_bytes(),
                                         headers={"X-Cardioseg": "1", "Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert json.load(answer)["kind"] == "volume"
        assert len(list(scratch.glob("sessions/*/upload.nii.gz"))) == 1  # the scan, on disk while the session lives

        server.send_signal(stop)
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert not scratch.exists(), sorted(str(p) for p in scratch.rglob("*"))
    assert owner.split()[:1] == [str(server.pid)]
    assert not stale.exists()  # a dead server's folder, removed when this one started
