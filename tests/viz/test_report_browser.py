"""The report in a real headless Chromium: it loads offline without errors, its media render, tables sort.

Needs Debian's ``chromium`` (/usr/bin/chromium) and the ``playwright`` Python package, driving that
browser (never ``playwright install``, which downloads one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CARDIOSEG_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CARDIOSEG_CHROMIUM)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package drives Chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def open_page(browser: Any, report: Path) -> tuple[Any, list[str], list[str]]:
    """The loaded page, its console errors and every URL it requested other than itself and data: URIs."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    fetched: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: fetched.append(request.url)
            if not request.url.startswith("data:") and request.url != report.as_uri() else None)
    page.goto(report.as_uri(), wait_until="load")
    return page, errors, fetched


def test_echo_report_renders_offline(browser: Any, echo_report: Path) -> None:
    page, errors, fetched = open_page(browser, echo_report)
    page.wait_for_function("() => [...document.querySelectorAll('video')].every(v => v.readyState >= 2)", timeout=10_000)
    assert errors == [] and fetched == []
    widths = page.evaluate("() => [...document.images].map(img => img.naturalWidth)")
    assert len(widths) >= 5 and all(w > 0 for w in widths)
    videos = page.evaluate("() => [...document.querySelectorAll('video')].map(v => [v.videoWidth, v.duration])")
    assert len(videos) == 4 and all(width > 0 and duration > 0 for width, duration in videos)
    page.close()


def test_per_case_table_sorts_on_header_click(browser: Any, echo_report: Path) -> None:
    page, errors, _ = open_page(browser, echo_report)
    table = page.locator("#per-case table")
    header = table.locator("th", has_text="Dice post")
    column = page.evaluate("() => [...document.querySelectorAll('#per-case th')].findIndex(th => th.textContent === 'Dice post')")

    def values() -> list[float]:
        return [float(v) for v in table.locator(f"tbody tr td:nth-child({column + 1})").all_inner_texts()]

    original = values()
    header.click()
    assert values() == sorted(original) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert values() == sorted(original, reverse=True) and header.get_attribute("aria-sort") == "descending"
    assert errors == []
    page.close()


def test_mri_report_draws_the_3d_view(browser: Any, mri_report: Path) -> None:
    page, errors, fetched = open_page(browser, mri_report)
    page.wait_for_selector("#view3d-plot .main-svg", timeout=15_000)  # plotly drew its scene
    assert page.evaluate("() => document.getElementById('view3d-plot').data.length") == 2
    widths = page.evaluate("() => [...document.images].map(img => img.naturalWidth)")
    assert widths and all(w > 0 for w in widths)
    assert errors == [] and fetched == []
    page.close()
