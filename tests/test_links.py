"""Every relative link in the notebooks' prose, README.md and CONTRIBUTING.md points at a file.

A link is ``[text](target)`` or ``<a href="target">``; web addresses (``scheme:``), in-page
anchors (``#…``) and links inside code (fenced blocks and backticks) are not files and are
skipped. A target is resolved from the folder of the file that holds the link.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|href=[\"']([^\"']+)[\"']")
_FENCE = re.compile(r"```.*?```", re.S)
_CODE = re.compile(r"`[^`\n]*`")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _markdown_of(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    return [path.read_text(encoding="utf-8")]


def relative_links(text: str) -> list[str]:
    """The relative link targets in markdown `text`, outside code."""
    text = _CODE.sub("", _FENCE.sub("", text))
    found = []
    for match in _LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if _SCHEME.match(target) or target.startswith("#"):
            continue
        found.append(unquote(target.split("#", 1)[0]))
    return [t for t in found if t]


def _documents() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb")) + [ROOT / "README.md",
                                                           ROOT / "CONTRIBUTING.md"]


def test_the_link_finder_sees_links_and_skips_the_rest():
    text = ("[a](01_processes.ipynb) [b](https://x.org) [c](#top) `[d](no.md)`\n"
            "```\n[e](nope.md)\n```\n<a href=\"docs/x.md#y\">f</a>")
    assert relative_links(text) == ["01_processes.ipynb", "docs/x.md"]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: p.name)
def test_every_relative_link_resolves(document: Path):
    if not document.exists():
        pytest.fail(f"{document.relative_to(ROOT)} is missing")
    broken = sorted({target for text in _markdown_of(document) for target in relative_links(text)
                     if not (document.parent / target).exists()})
    assert not broken, f"{document.relative_to(ROOT)} links to missing files: {broken}"
