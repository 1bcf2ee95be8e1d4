"""The app's resource limits hold: undo history counts in the memory budget, post-processing and
session creation wait for a worker, and a stalled upload is cut off with its partial file removed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import cardioseg.app.upload as upload_module
from cardioseg.app.server import create_app
from cardioseg.app.sessions import Session
from cardioseg.config import Config
from tests.app.conftest import live_server, page_client


def upload(client: TestClient, path: Path) -> str:
    response = client.post("/api/sessions", params={"name": path.name}, content=path.read_bytes())
    assert response.status_code == 200, response.text
    return response.json()["id"]


def stroke(client: TestClient, sid: str, x: int) -> dict:
    response = client.post(f"/api/sessions/{sid}/slices/0/strokes", json={"mode": "brush", "radius": 3, "points": [[x, 20]]})
    assert response.status_code == 200, response.text
    return response.json()


def test_undo_history_counts_in_the_memory_budget(tiny_model: Path, camus_views: dict[str, Path]) -> None:
    with page_client(create_app(tiny_model, Config())) as client:
        store = client.app.state.cardioseg.store
        sid = upload(client, camus_views["2CH_ED"])
        session = store.sessions[sid]
        step = session.edits[..., 0].nbytes  # one undo step: a copy of the 224 x 224 slice
        base = session.n_bytes
        store.memory_budget = base + 3 * step + step // 2  # room for three undo steps
        for x in range(10, 110, 10):
            stroke(client, sid, x)
        assert len(session.history) == 3  # the oldest seven were dropped
        assert session.n_bytes == base + 3 * step <= store.memory_budget
        for _ in range(3):
            assert client.post(f"/api/sessions/{sid}/undo").status_code == 200
        assert not client.get(f"/api/sessions/{sid}/slices/0").json()["can_undo"]
        assert list(store.sessions) == [sid]  # the session itself was kept


def test_undo_steps_go_before_other_sessions(tiny_model: Path, camus_views: dict[str, Path]) -> None:
    """Over the budget, an older session's undo steps are dropped, not the session with its corrections."""
    with page_client(create_app(tiny_model, Config())) as client:
        store = client.app.state.cardioseg.store
        first = upload(client, camus_views["2CH_ED"])
        for x in (10, 20, 30):
            stroke(client, first, x)
        second = upload(client, camus_views["4CH_ED"])
        step = store.sessions[first].edits[..., 0].nbytes
        store.memory_budget = store.n_bytes - 2 * step  # two steps too many
        stroke(client, second, 10)  # one more step: three over
        assert set(store.sessions) == {first, second}
        assert len(store.sessions[second].history) == 1 and len(store.sessions[first].history) == 0
        assert store.n_bytes <= store.memory_budget


def test_post_processing_and_session_creation_run_inside_the_worker_limit(
    tiny_model: Path, camus_views: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve.workers`` bounds every CPU-heavy step, not only the network: a closing of radius 20
    over a large volume costs as much as an inference."""
    with page_client(create_app(tiny_model, Config())) as client:
        limiter = client.app.state.cardioseg.inference
        borrowed: dict[str, list[int]] = {"create": [], "settings": []}
        original_post, original_apply = Session.__post_init__, Session.apply_settings

        def post_init(self: Session) -> None:
            borrowed["create"].append(limiter.borrowed_tokens)
            original_post(self)

        def apply_settings(self: Session, settings: object) -> None:
            borrowed["settings"].append(limiter.borrowed_tokens)
            original_apply(self, settings)

        monkeypatch.setattr(Session, "__post_init__", post_init)
        monkeypatch.setattr(Session, "apply_settings", apply_settings)
        sid = upload(client, camus_views["2CH_ES"])
        response = client.put(f"/api/sessions/{sid}/settings", json={"threshold": 0.4, "closing_radius": 20})
        assert response.status_code == 200
        assert borrowed == {"create": [1], "settings": [1]}
        assert limiter.borrowed_tokens == 0


def _send_part_and_stall(url: str, body: bytes, declared: int) -> bytes:
    """POST an upload that declares ``declared`` bytes, send ``body`` and then nothing; the server's answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        conn.sendall(f"POST /api/sessions?name=stall.png HTTP/1.1\r\nHost: {host}:{port}\r\nX-Cardioseg: 1\r\n"
                     f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n".encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = conn.recv(65536)
            if not part:
                break
            answer += part
    return answer


def test_a_stalled_upload_is_cut_off_and_its_partial_file_removed(
    tiny_model: Path, camus_views: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_module, "IDLE_SECONDS", 0.5)
    app = create_app(tiny_model, Config())
    sessions = Path(app.state.scratch.name) / "sessions"
    data = camus_views["2CH_ED"].read_bytes()
    with live_server(app) as url:
        answer = _send_part_and_stall(url, data[:5000], declared=len(data))  # before: no answer, a socket timeout
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"the upload stalled: no data for 0.5 s" in answer
        assert list(sessions.iterdir()) == []  # the partial upload is gone with its folder
        assert not app.state.cardioseg.store.sessions
