"""Where the browser tests find the chapters and leave their artifacts."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Screenshots, browser consoles and server logs, kept for a reader to look at after a run.
ARTIFACTS = ROOT / "test-artifacts" / "browser"

# The chapters: the same set tests/notebooks/ executes headless, found at collection time.
NOTEBOOK_GLOB = "[0-9][0-9]*_*.ipynb"


# The chapters as tests/notebooks left them, executed: the browser opens these, so no chapter
# runs twice in one test session.
EXECUTED = ROOT / "test-artifacts" / "notebooks"


def notebooks_dir() -> Path:
    """Where the chapters are: the repo's notebooks/, or $CC_BROWSER_NOTEBOOKS for development."""
    return Path(os.environ.get("CC_BROWSER_NOTEBOOKS") or ROOT / "notebooks").resolve()


def chapters() -> list[Path]:
    return sorted(notebooks_dir().glob(NOTEBOOK_GLOB))


def executed_copy(chapter: Path) -> Path | None:
    """The headless test's executed copy of `chapter`, if it is there and not older than it."""
    copy = EXECUTED / chapter.name
    if copy.is_file() and copy.stat().st_mtime >= chapter.stat().st_mtime:
        return copy.resolve()
    return None
