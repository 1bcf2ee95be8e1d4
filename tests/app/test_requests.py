"""Request details the page depends on: download names in any script, finite stroke points, and
the model described by its architecture and classes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from cardioseg.app.server import create_app
from cardioseg.config import Config
from tests.app.conftest import page_client


def upload(client: TestClient, path: Path, name: str) -> str:
    response = client.post("/api/sessions", params={"name": name}, content=path.read_bytes())
    assert response.status_code == 200, response.text
    return response.json()["id"]


@pytest.mark.parametrize(("name", "fallback"), [("Łukasz.png", "_ukasz"), ("患者.png", "__"),
                                                ("Müller 4CH ED.png", "M_ller_4CH_ED")])
def test_a_unicode_upload_name_gives_an_rfc6266_download_name(
    client: TestClient, camus_views: dict[str, Path], name: str, fallback: str
) -> None:
    sid = upload(client, camus_views["2CH_ED"], name)
    stem = name.removesuffix(".png")
    for url, suffix in ((f"/api/sessions/{sid}/mask.png", "_mask.png"), (f"/api/sessions/{sid}/mask.nii.gz", "_mask.nii.gz")):
        response = client.get(url)
        assert response.status_code == 200
        disposition = response.headers["content-disposition"]
        assert disposition.startswith(f'attachment; filename="{fallback}{suffix}"; filename*=UTF-8\'\'')
        encoded = re.search(r"filename\*=UTF-8''(\S+)$", disposition).group(1)  # type: ignore[union-attr]
        assert unquote(encoded, errors="strict") == stem + suffix


def test_an_ascii_name_keeps_the_plain_header(client: TestClient, camus_views: dict[str, Path]) -> None:
    sid = upload(client, camus_views["2CH_ED"], "patient0200_2CH_ED.png")
    disposition = client.get(f"/api/sessions/{sid}/mask.png").headers["content-disposition"]
    assert disposition == 'attachment; filename="patient0200_2CH_ED_mask.png"'


@pytest.mark.parametrize("point", ["[NaN, 5]", "[5, Infinity]", "[-Infinity, 5]", "[1e999, 5]"])
def test_non_finite_stroke_points_are_400(client: TestClient, camus_views: dict[str, Path], point: str) -> None:
    """Python's JSON parser takes NaN and Infinity; such a point used to paint an arbitrary pixel."""
    sid = upload(client, camus_views["2CH_ED"], "a.png")
    before = client.get(f"/api/sessions/{sid}/slices/0").json()["mask"]
    body = f'{{"mode": "brush", "radius": 3, "points": [[10, 10], {point}]}}'
    response = client.post(f"/api/sessions/{sid}/slices/0/strokes", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "points" in response.json()["detail"] and "finite" in response.json()["detail"]
    after = client.get(f"/api/sessions/{sid}/slices/0").json()
    assert after["mask"] == before and not after["can_undo"]


def test_info_describes_a_binary_model(client: TestClient) -> None:
    info = client.get("/api/info").json()
    assert (info["model"], info["architecture"], info["encoder"], info["binary"]) == (
        "tiny.safetensors", "plain_unet", None, True)
    assert info["parameters"] > 1000
    assert info["classes"] == [{"label": 1, "name": "LV endocardium", "colour": [255, 80, 80]}]  # the palette's class 1


@pytest.fixture(scope="module")
def multiclass(tiny_multiclass_model: Path) -> Iterator[TestClient]:
    with page_client(create_app(tiny_multiclass_model, Config())) as test_client:
        yield test_client


def test_info_describes_a_multiclass_model(multiclass: TestClient, camus_views: dict[str, Path]) -> None:
    info = multiclass.get("/api/info").json()
    assert (info["architecture"], info["binary"]) == ("plain_unet", False)
    assert [c["name"] for c in info["classes"]] == ["LV endocardium", "LV myocardium", "left atrium"]
    sid = upload(multiclass, camus_views["4CH_ED"], "patient0200_4CH_ED.png")
    areas = multiclass.get(f"/api/sessions/{sid}/slices/0").json()["measurements"]["areas"]
    assert [a["label"] for a in areas] == [1, 2, 3]
