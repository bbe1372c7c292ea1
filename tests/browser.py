"""Headless Chromium (Debian's package) driven by Playwright, for the browser tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, REQUIRE_ALL

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("SEGSQL_ARTIFACTS", REPO / "test-artifacts"))
# Every Playwright wait is bounded, so a stuck page fails the test instead of hanging the run.
ACTION_TIMEOUT_MS = 60_000
NAVIGATION_TIMEOUT_MS = 60_000
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def require_chromium() -> str:
    if CHROMIUM is None:
        if REQUIRE_ALL:
            pytest.fail("chromium is not installed (SEGSQL_REQUIRE_ALL=1): apt-get install chromium")
        pytest.skip("chromium is not installed")
    return CHROMIUM


@contextmanager
def browser_page() -> Iterator[Any]:
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS,
                                             timeout=NAVIGATION_TIMEOUT_MS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(ACTION_TIMEOUT_MS)
            page.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def evaluate(page: Any, script: str, timeout_ms: int) -> Any:
    """`page.evaluate(script)` for a script returning a promise, bounded: Playwright's evaluate has
    no timeout (a JupyterLab command once hung a loaded run for 11 minutes), so the promise races a
    timer and a stuck one fails with an error instead."""
    bounded = (f"() => Promise.race([Promise.resolve(({script})()), new Promise((_, reject) => setTimeout("
               f"() => reject(new Error('no result within {timeout_ms} ms')), {timeout_ms}))])")
    return page.evaluate(bounded)
