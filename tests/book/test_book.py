"""The rendered edition, built from the notebook test's executed copies and read in Chromium.

    test-artifacts/notebooks/*.ipynb (written by tests/notebooks, CC_QUICK=1)
        │ docs/build.py --executed ... --quick   (nothing executes again)
        ▼
    <tmp>/html ◀── http.server on 127.0.0.1 (a thread of pytest) ◀── Chromium (Playwright)
                                                  every request to another host is recorded
                                                  and aborted

Checks: every chapter page shows its figures (each <img> loaded, naturalWidth > 0, at least as
many as the notebook drew, the live panels as their picture), says the caveat once, links
between chapters lead to the right pages, the search page finds a word, present mode hides the
prose and enlarges the figures, and nothing is requested from another host.

Runs after tests/notebooks (marker ``book``): without an executed copy of every chapter it
skips, saying which are missing.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXECUTED = ROOT / "test-artifacts" / "notebooks"
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from _browser import VIEWPORT, launch_chromium  # noqa: E402
from _processes import ProcessGuard  # noqa: E402


def _load_build():
    """docs/build.py, under a name of its own (``build`` is also a PyPI package's name)."""
    spec = importlib.util.spec_from_file_location("cc_book_build", ROOT / "docs" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _load_build()

# `browser` too: Chromium starts helper processes while a test runs and ends them at its own
# pace, so the suite's per-test leftover check stands aside (as for tests/browser) and the
# `browser` fixture checks at the end that Chromium left nothing.
pytestmark = [pytest.mark.book, pytest.mark.browser, pytest.mark.timeout(600)]

CHAPTERS = BUILD.chapter_order()
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_LOAD_TIMEOUT_MS = 30_000
# A word every search index of the course must know (chapter 03a's title and many cells).
_SEARCH_WORD = "semaphore"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _expected_pictures(path: Path) -> tuple[int, int]:
    """(pictures, live panels) the executed notebook at `path` holds: its PNG outputs and the
    PNGs its widgets held when it was saved."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    models = (nb.get("metadata", {}).get("widgets", {})
              .get("application/vnd.jupyter.widget-state+json", {}).get("state", {}))

    def pictures_under(model_id: str, seen: set[str]) -> int:
        if model_id in seen or model_id not in models:
            return 0
        seen.add(model_id)
        model = models[model_id]
        count = int(model.get("model_name") == "ImageModel" and bool(model.get("buffers")))
        for child in model.get("state", {}).get("children", []):
            count += pictures_under(str(child).removeprefix("IPY_MODEL_"), seen)
        return count

    pictures = panels = 0
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            pictures += "image/png" in data
            if _WIDGET_VIEW in data:
                held = pictures_under(data[_WIDGET_VIEW]["model_id"], set())
                pictures += held
                panels += held > 0
    return pictures, panels


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [s for s in CHAPTERS if not (EXECUTED / f"{s}.ipynb").exists()]
    if missing:
        pytest.skip(f"no executed copy in {EXECUTED.relative_to(ROOT)} of {', '.join(missing)}: "
                    "run tests/notebooks first (it writes them)")
    try:
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as error:
        message = f"the book's packages are not installed ({error}): pip install -e '.[book]'"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("book")
    subprocess.run([sys.executable, str(ROOT / "docs" / "build.py"), "--executed", str(EXECUTED),
                    "--out", str(out), "--quick"], check=True, timeout=300)
    return out / "html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports what matters itself
        pass


@pytest.fixture(scope="module")
def server(site: Path):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="book-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(server):
    guard = ProcessGuard()
    with launch_chromium(guard) as chromium:
        yield chromium
    left = guard.leftovers()
    assert not left, f"Chromium left processes behind: {left}"


@pytest.fixture
def page(browser, server):
    """A fresh page; any request to another host is aborted, and fails the test afterwards."""
    context = browser.new_context(viewport=VIEWPORT)
    foreign: list[str] = []
    ours = urlsplit(server).netloc

    def route(route_, request):
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != ours:
            foreign.append(request.url)
            route_.abort()
        else:
            route_.continue_()

    context.route("**/*", route)
    errors: list[str] = []
    page_ = context.new_page()
    page_.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page_
    finally:
        with contextlib.suppress(Exception):
            context.close()
    assert not foreign, f"the site requested from another host: {sorted(set(foreign))}"
    assert not errors, f"JavaScript errors on the site: {errors}"


def _open(page, url: str) -> None:
    response = page.goto(url, wait_until="load", timeout=_LOAD_TIMEOUT_MS)
    assert response is not None and response.ok, f"{url}: {response and response.status}"


def _images(page) -> list[dict]:
    return page.eval_on_selector_all(
        "article img",
        "els => els.map(e => ({src: e.getAttribute('src'), complete: e.complete,"
        " width: e.naturalWidth, shown: e.getBoundingClientRect().width}))")


@pytest.mark.parametrize("stem", CHAPTERS)
def test_every_chapter_page_shows_its_figures_and_links_on(page, server, stem):
    pictures, panels = _expected_pictures(EXECUTED / f"{stem}.ipynb")
    _open(page, f"{server}/notebooks/{stem}.html")
    page.evaluate("() => Promise.all([...document.images].map(i => i.decode().catch(() => 0)))")
    images = _images(page)
    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"{stem}: pictures that did not load: {broken}"
    assert len(images) >= pictures, (
        f"{stem}: {len(images)} pictures shown, the notebook drew {pictures}")
    notes = page.locator(".cc-panel-note").count()
    assert notes >= panels, (
        f"{stem}: {panels} live panels drew a picture, {notes} say how to run them live")
    assert page.locator(".cc-caveat").count() == 1, f"{stem}: the caveat is not said once"
    assert page.locator("div.cell .cell_input").count() > 0, f"{stem}: no code cell on the page"
    # Every link to another page of the site answers, and "next" leads on in the chapters' order.
    links = page.eval_on_selector_all("article a.reference.internal, a.right-next",
                                      "els => els.map(e => e.href)")
    for link in sorted({h.split("#")[0] for h in links}):
        with urlopen(link, timeout=10) as answer:
            assert answer.status == 200, f"{stem}: {link} answers {answer.status}"
    following = CHAPTERS.index(stem) + 1
    if following < len(CHAPTERS):
        next_page = urlsplit(page.locator("a.right-next").get_attribute("href") or "").path
        assert next_page == f"{CHAPTERS[following]}.html", (
            f"'next' on {stem} leads to {next_page!r}, not {CHAPTERS[following]}")


def test_the_landing_page_leads_to_every_chapter(page, server):
    _open(page, f"{server}/index.html")
    hrefs = page.eval_on_selector_all("article a.reference.internal", "els => els.map(e => e.href)")
    pages = {urlsplit(h).path for h in hrefs}
    for stem in CHAPTERS:
        assert f"/notebooks/{stem}.html" in pages, f"the landing page has no link to {stem}"
    assert "/docs/teachers-guide.html" in pages, "the landing page has no link to the guide"
    with urlopen(f"{server}/docs/teachers-guide.html", timeout=10) as answer:
        guide = answer.read().decode("utf-8")
    # Each part has a section headed by its number, as in the chapters' table: "<h2>03a · ...".
    missing = [s for s in CHAPTERS if f"<h2>{s.split('_')[0]} · " not in guide]
    assert not missing, f"the teacher's guide has no section for {missing}"
    # A reader's click, not only an address: the first chapter opens with its title.
    page.click(f"article a.reference.internal[href='notebooks/{CHAPTERS[0]}.html']")
    page.wait_for_load_state("load")
    assert urlsplit(page.url).path == f"/notebooks/{CHAPTERS[0]}.html"
    assert page.locator("article h1").first.inner_text().startswith("00")


def test_search_page_finds_a_word(page, server):
    _open(page, f"{server}/search.html?q={_SEARCH_WORD}")
    results = page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=_LOAD_TIMEOUT_MS)
    assert results.count() > 0
    hrefs = results.locator("a").evaluate_all("els => els.map(e => e.href)")
    found = {urlsplit(h).path for h in hrefs}
    assert "/notebooks/03b_primitives.html" in found, f"'{_SEARCH_WORD}' not found in 03b: {found}"


def test_present_mode_hides_the_prose_and_enlarges_the_figures(page, server):
    _open(page, f"{server}/notebooks/00_start_here.html")
    prose = page.locator("article section > p").first
    figure = page.locator("article .cell_output img").first
    assert prose.is_visible()
    width_reading = figure.bounding_box()["width"]
    page.click(".cc-present-toggle")
    assert not prose.is_visible(), "present mode left the prose on the page"
    assert page.locator(".bd-sidebar-primary").is_hidden()
    assert page.locator(".cc-caveat").is_visible(), "present mode hid the caveat"
    width_present = figure.bounding_box()["width"]
    assert width_present > width_reading * 1.1, (width_reading, width_present)
    # The choice follows the reader to the next chapter, and the "p" key turns it off.
    page.click("a.right-next")
    page.wait_for_load_state("load")
    assert not page.locator("article section > p").first.is_visible()
    page.keyboard.press("p")
    assert page.locator("article section > p").first.is_visible()
