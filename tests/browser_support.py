"""Playwright driving Debian's Chromium (``/usr/bin/chromium``, from the packages chromium and
chromium-driver that ``make test-tools`` installs): no browser is downloaded at test time.
Without Chromium or the playwright package the browser tests skip, saying why.

Screenshots of the pages the tests pass through are kept as test artifacts in
``test-artifacts/console/`` (or ``$MAILHUB_TEST_ARTIFACTS/console/``), one PNG per page and
screen size, named after the test's step.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MAILHUB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MAILHUB_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts")) / "console"
PHONE = {"width": 390, "height": 844}  # a common phone screen, in CSS pixels
DESKTOP = {"width": 1280, "height": 900}


def launch():
    """(playwright, browser), or skip the test when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"{CHROMIUM} is missing (Debian packages chromium and chromium-driver: make test-tools)")
    playwright = sync_playwright().start()
    try:
        # Site isolation off: headless screenshots leave a sandboxed (opaque-origin, so
        # out-of-process) iframe blank, e.g. the invitation's HTML part in the preview.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-features=IsolateOrigins,site-per-process"])
    except Exception:
        playwright.stop()
        raise
    return playwright, browser


def screenshot(page, name: str) -> Path:
    """Keep a full-page PNG of ``page`` as ``<artifacts>/console/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
