"""Headless Chromium for tests: Debian's /usr/bin/chromium driven by Playwright's Python API.

Never a browser downloaded by ``playwright install``: CI installs the distribution package
(``.ci/run``). Screenshots go to ``tests/artifacts/`` (git-ignored) so a failed run leaves them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("FIN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def artifact_path(name: str) -> Path:
    """Where a test keeps a screenshot or page dump."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


@pytest.fixture
def browser_page() -> Iterator[object]:
    """A Playwright page in headless Chromium; skipped (failed under FIN_REQUIRE_SERVICES=1)
    when Chromium is not installed."""
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("FIN_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            yield page
        finally:
            browser.close()
