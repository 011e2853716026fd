"""JupyterLab in headless Chromium: one server and one browser for the whole session.

    pytest ──start──▶ jupyter lab (127.0.0.1, free port, random token, isolated HOME/config/data,
      │                 │          root = notebooks/, CC_QUICK=1, news prompt and autosave off)
      │                 └─spawns──▶ one ipykernel per opened chapter (inherits CC_QUICK=1)
      └─Playwright──▶ Debian's /usr/bin/chromium ──http/ws──▶ the server

- `lab` (session): the server on ``test-artifacts/notebooks/``, where tests/notebooks left each
  chapter executed (the chapters themselves come from ``notebooks/``, or `CC_BROWSER_NOTEBOOKS`).
  Ready when ``/api/status`` answers with the token; stopped with ``POST /api/shutdown`` (which
  also shuts the kernels down), then SIGTERM, then SIGKILL of its process group and of every
  descendant seen, because kernels run in sessions of their own and outlive a killed server.
- `chromium` (session): skips without Playwright or Chromium, or fails when ``CI=true``.
- `open_page` (function): a factory of fresh browser contexts and pages, each wrapped in a
  `LabDriver`; afterwards it closes them, shuts the kernels down and waits for their processes to
  exit. On failure it keeps a screenshot, the browser console and the server log in
  ``test-artifacts/browser/``. `start_lab` starts an extra server for self-tests.
- `_process_guard` (session): after the server and the browser are gone, fails the session if any
  process they started is still alive (the suite-wide `no_leftovers` fixture skips browser tests),
  found as descendants of pytest or by a mark in their environment (orphans too).
- Chapters come from `pytest_generate_tests`: every ``notebooks/NN_*.ipynb`` at collection time.

Only the fixtures and hooks are here; the machinery is in this folder's underscored modules:
`_paths` (chapters, artifacts), `_processes` (`ProcessGuard`), `_server` (`LabServer`),
`_browser` (launching Chromium, skip or fail without it) and `_notebook_driver` (`LabDriver`,
what a test does with a page, the way a reader would).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The modules beside this file are imported by their plain names: tests/browser is no package.
# pytest's default import mode puts this folder on sys.path already; this keeps other modes working.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from _browser import VIEWPORT, launch_chromium  # noqa: E402
from _notebook_driver import LabDriver  # noqa: E402
from _paths import ARTIFACTS, EXECUTED, chapters  # noqa: E402
from _processes import ProcessGuard  # noqa: E402
from _server import LabServer  # noqa: E402

_REPORTS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(request) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


def _digests(directory: Path) -> dict[Path, str]:
    """Path -> content digest of every notebook directly in `directory`."""
    return {p.resolve(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.glob("*.ipynb"))}


@pytest.fixture(scope="session")
def _process_guard() -> Iterator[ProcessGuard]:
    guard = ProcessGuard()
    yield guard
    left = guard.leftovers()
    if left:
        pytest.fail("browser tests left processes behind (now killed):\n  " + "\n  ".join(left),
                    pytrace=False)


@pytest.fixture(scope="session")
def chromium(_process_guard):
    """Debian's Chromium under Playwright, shared by the session (no `playwright install`)."""
    with launch_chromium(_process_guard) as browser:
        yield browser


def _start_lab(root: Path, base: Path, guard: ProcessGuard) -> LabServer:
    base.mkdir(parents=True, exist_ok=True)
    return LabServer(root, base, guard).start()


@pytest.fixture(scope="session")
def lab(chromium, _process_guard, tmp_path_factory) -> Iterator[LabServer]:
    """The server on the executed chapters (after `chromium`, so a skip starts nothing)."""
    EXECUTED.mkdir(parents=True, exist_ok=True)
    root = EXECUTED.resolve()
    before = _digests(root)
    had_checkpoints = (root / ".ipynb_checkpoints").exists()
    server = _start_lab(root, tmp_path_factory.mktemp("jupyterlab"), _process_guard)
    try:
        yield server
    finally:
        server.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copyfile(server.log_path, ARTIFACTS / "jupyterlab.log")
    # Autosave is off and checkpoints go to the temporary dir: an opened chapter must be as it
    # was (only opened ones are compared, so an editor saving another chapter meanwhile is fine).
    after = _digests(root)
    changed = sorted(p.name for p in server.opened if p in before and after.get(p) != before[p])
    if changed or (root / ".ipynb_checkpoints").exists() and not had_checkpoints:
        pytest.fail(f"the browser run wrote into {root}: changed {changed}; "
                    f"checkpoints there: {(root / '.ipynb_checkpoints').exists()}", pytrace=False)


@pytest.fixture(scope="session")
def start_lab(chromium, _process_guard, tmp_path_factory):
    """Start another server on a directory of its own (for self-tests); stopped by the caller."""
    def start(root: Path) -> LabServer:
        return _start_lab(root, tmp_path_factory.mktemp("jupyterlab-extra"), _process_guard)
    return start


@pytest.fixture
def open_page(chromium, _process_guard, request):
    """Factory: a fresh context and page on a server, as a LabDriver; cleaned up after the test.

    On failure: a screenshot, the browser console and the server log go to test-artifacts/.
    """
    opened: list[tuple[object, LabDriver, list[str]]] = []
    callspec = getattr(request.node, "callspec", None)  # a chapter's artifacts carry its name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", callspec.id if callspec else request.node.name)
    for stale in (f"{name}-FAILED.png", f"{name}-console.log", f"{name}-jupyterlab.log"):
        with contextlib.suppress(OSError):
            (ARTIFACTS / stale).unlink()

    def open_(lab: LabServer) -> LabDriver:
        context = chromium.new_context(viewport=VIEWPORT)
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
        page.on("crash", lambda _: console.append("[crash] the page crashed"))
        driver = LabDriver(page, lab)
        opened.append((context, driver, console))
        return driver

    yield open_
    failed = _failed(request)
    problems = []
    for context, driver, console in opened:
        if failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(Exception):
                driver.page.screenshot(path=str(ARTIFACTS / f"{name}-FAILED.png"), timeout=10_000)
            (ARTIFACTS / f"{name}-console.log").write_text("\n".join(console) + "\n")
            (ARTIFACTS / f"{name}-jupyterlab.log").write_text(driver.lab.log_tail(200_000))
        _process_guard.track_own_children()
        context.close()
        problems += driver.lab.shutdown_kernels()
    if problems:
        pytest.fail("processes of this test's kernels did not exit (now killed):\n  "
                    + "\n  ".join(problems), pytrace=False)


def pytest_generate_tests(metafunc):
    """`chapter`: every chapter notebook, globbed at collection time so new ones are covered."""
    if "chapter" in metafunc.fixturenames:
        found = chapters()
        metafunc.parametrize("chapter", found, ids=[p.stem for p in found])


def pytest_collection_modifyitems(session, config, items):
    """Browser tests last: their server and Chromium live until the session ends, and no other
    test should run beside them (the suite-wide leftover check would see Chromium's spare
    renderers come and go)."""
    browser = [item for item in items if item.get_closest_marker("browser")]
    if browser:
        others = [item for item in items if not item.get_closest_marker("browser")]
        items[:] = others + browser
