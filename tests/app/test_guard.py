"""Cross-site requests and foreign Host names are refused (CSRF, DNS rebinding); the page's own pass."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cardioseg.app.server import create_app
from cardioseg.config import Config, ServeConfig
from tests.app.conftest import ORIGIN


@pytest.fixture(scope="module")
def bare(tiny_model: Path) -> Iterator[TestClient]:
    """A client that sends only what each test gives: no X-Cardioseg header by default."""
    with TestClient(create_app(tiny_model, Config()), base_url=ORIGIN) as test_client:
        yield test_client


def test_a_cross_site_text_plain_upload_is_refused(bare: TestClient, camus_views: dict[str, Path]) -> None:
    """What a form or fetch on any page the clinician visits could send without a preflight."""
    data = camus_views["2CH_ED"].read_bytes()
    headers = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    response = bare.post("/api/sessions", params={"name": "a.png"}, content=data, headers=headers)
    assert response.status_code == 403
    assert "cross-site" in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"  # refusals carry the security headers too
    assert not bare.app.state.cardioseg.store.sessions


def test_a_state_change_needs_the_page_header_or_its_origin(bare: TestClient, camus_views: dict[str, Path]) -> None:
    data = camus_views["2CH_ED"].read_bytes()
    anonymous = bare.post("/api/sessions", params={"name": "a.png"}, content=data)
    assert anonymous.status_code == 403
    assert "X-Cardioseg" in anonymous.json()["detail"]

    same_origin = bare.post("/api/sessions", params={"name": "a.png"}, content=data, headers={"Origin": ORIGIN})
    assert same_origin.status_code == 200, same_origin.text
    sid = same_origin.json()["id"]
    for method, url, body in [("PUT", f"/api/sessions/{sid}/settings", {"threshold": 0.4}),
                              ("PATCH", f"/api/sessions/{sid}", {"view": "2CH", "phase": "ED"}),
                              ("DELETE", f"/api/sessions/{sid}/edits", None),
                              ("DELETE", f"/api/sessions/{sid}", None)]:
        foreign = bare.request(method, url, json=body, headers={"Origin": "http://127.0.0.1:9999"})  # another port
        assert foreign.status_code == 403, (method, url)
        assert bare.request(method, url, json=body, headers={"X-Cardioseg": "1"}).status_code == 200, (method, url)
    assert bare.get("/api/info").status_code == 200  # reading needs no header


@pytest.mark.parametrize("origin", ["null", "http://127.0.0.1:8000.evil.example", "https://127.0.0.1:8000", "file://"])
def test_look_alike_origins_are_foreign(bare: TestClient, origin: str) -> None:
    assert bare.post("/api/ef", json={"sessions": []}, headers={"Origin": origin, "X-Cardioseg": "1"}).status_code == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io:8000", "evil@127.0.0.1:8000",
                                  "10.0.0.5:8000"])
def test_a_foreign_host_name_is_not_served(bare: TestClient, host: str) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: it must read nothing, not even /api/info."""
    response = bare.get("/api/info", headers={"Host": host})
    assert response.status_code == 400
    assert "DNS rebinding" in response.json()["detail"]
    assert bare.get("/", headers={"Host": host}).status_code == 400


@pytest.mark.parametrize("host", ["localhost:8000", "LOCALHOST", "127.0.0.1", "[::1]:8000"])
def test_loopback_names_are_served(bare: TestClient, host: str) -> None:
    assert bare.get("/api/health", headers={"Host": host}).status_code == 200


def test_bound_to_every_interface_the_machines_names_and_addresses_pass(tiny_model: Path) -> None:
    cfg = Config(serve=ServeConfig(host="0.0.0.0"))
    with TestClient(create_app(tiny_model, cfg), base_url=ORIGIN) as client:
        for host in (socket.gethostname(), "192.168.1.20:8000", "[fe80::1]:8000"):
            assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
        assert client.get("/api/health", headers={"Host": "evil.example"}).status_code == 400


def test_a_named_bound_host_passes(tiny_model: Path) -> None:
    cfg = Config(serve=ServeConfig(host="review.hospital.example"))
    with TestClient(create_app(tiny_model, cfg), base_url="http://review.hospital.example:8000") as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/health", headers={"Host": "10.0.0.5"}).status_code == 400  # not bound to all
