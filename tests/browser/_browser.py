"""Debian's Chromium under Playwright (no `playwright install`), and what to do without it:
skip on a developer's machine, fail in CI."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _processes import ProcessGuard

CHROMIUM = Path(os.environ.get("CC_CHROMIUM", "/usr/bin/chromium"))
# Flags for a root user on a machine without a GPU or internet: no sandbox (root), no GPU process,
# nothing that phones home (QUIC, component updates, sync, background fetches), no first-run UI.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}  # wide enough for the panel's 11-inch figure


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _missing(what: str) -> None:
    """Skip on a developer's machine; fail in CI, where a skipped browser test proves nothing."""
    if _in_ci():
        pytest.fail(f"{what} (CI=true: the browser tests must run here)", pytrace=False)
    pytest.skip(what)


@contextlib.contextmanager
def launch_chromium(guard: ProcessGuard) -> Iterator[object]:
    """Launch Chromium with the session's mark in its environment; close it on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright; the browser "
                 "itself comes from Debian: sudo apt-get install chromium)")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _missing(f"no Chromium at {CHROMIUM}: sudo apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             env=guard.env(), timeout=60_000)
        guard.track_own_children()
        try:
            yield browser
        finally:
            guard.track_own_children()
            browser.close()
