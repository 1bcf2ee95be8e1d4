"""The app as a person uses it, in a real headless Chromium: upload a real echo image, wait for the
mask, move the threshold slider, paint with the brush, download the mask and check the file.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; Playwright's own browser
download is never used (it fails offline).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cardioseg.app.server import create_app
from cardioseg.config import Config
from tests.app.conftest import live_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists():
    pytest.skip("Chromium not found (apt-get install chromium): browser test skipped", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def app_url(tiny_model: Path) -> Iterator[str]:
    with live_server(create_app(tiny_model, Config())) as url:
        yield url


def _area(page: sync_api.Page) -> str:
    return page.locator("#measurements .metric .value span").first.inner_text()


def test_upload_threshold_brush_download(app_url: str, camus_views: dict[str, Path], tmp_path: Path) -> None:
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(app_url)
            expect(page.locator("#model-info")).to_have_text("model: tiny.safetensors · plain_unet · class: LV endocardium")
            expect(page.locator("#threshold")).to_be_visible()  # a binary model: the threshold decides

            page.set_input_files("#file-input", str(camus_views["2CH_ED"]))
            expect(page.locator("#session-list li")).to_have_count(1, timeout=30_000)
            expect(page.locator("#measurements .metric")).to_have_count(1)
            canvas = page.locator("#cursor-canvas")
            expect(canvas).to_be_visible()
            predicted = _area(page)
            assert predicted != "0"  # the random tiny model sees foreground everywhere at 0.5

            slider = page.locator("#threshold")
            slider.focus()
            for _ in range(10):
                page.keyboard.press("ArrowRight")
            expect(page.locator("#threshold-value")).to_have_text("0.60")
            expect(page.locator("#measurements .metric .value span").first).to_have_text("0")

            box = canvas.bounding_box()
            assert box is not None
            page.locator("#brush-size").fill("4")
            expect(page.locator("#brush-size-value")).to_have_text("4 px")
            y = box["y"] + box["height"] * 0.5
            page.mouse.move(box["x"] + box["width"] * 0.3, y)
            page.mouse.down()
            for step in range(1, 11):
                page.mouse.move(box["x"] + box["width"] * (0.3 + 0.04 * step), y)
            page.mouse.up()
            expect(page.locator("#undo")).to_be_enabled()
            expect(page.locator("#measurements .metric .value span").first).not_to_have_text("0")
            painted = int(_area(page).replace(",", ""))

            with page.expect_download() as download_info:
                page.locator("#download-png").click()
            target = tmp_path / download_info.value.suggested_filename
            download_info.value.save_as(target)
            assert not errors, errors
        finally:
            browser.close()

    assert target.name == "patient0200_2CH_ED_mask.png"
    mask = np.asarray(Image.open(target))
    assert mask.shape == (224, 224) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert int(np.count_nonzero(mask)) == painted
    rows, cols = np.nonzero(mask.T)  # the file is transposed; the page shows it apex up
    assert np.ptp(cols) > 70 and np.ptp(rows) < 15  # a horizontal stroke of radius 4 across 40% of the image


def test_a_multiclass_model_hides_the_threshold_and_names_its_classes(tiny_multiclass_model: Path) -> None:
    """The threshold only decides for a binary model; a multi-class one takes the most likely class."""
    expect = sync_api.expect
    with live_server(create_app(tiny_multiclass_model, Config())) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            expect(page.locator("#model-info")).to_have_text(
                "model: tiny4.safetensors · plain_unet · classes: LV endocardium, LV myocardium, left atrium")
            expect(page.locator("#threshold")).to_be_hidden()
            expect(page.locator("#brush-class option")).to_have_count(3)
            expect(page.locator("#closing-radius")).to_be_visible()
        finally:
            browser.close()
