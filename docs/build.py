"""Build the course as a website: a static folder of HTML pages, one per chapter notebook.

    notebooks/*.ipynb ──(--execute: nbclient, reader defaults, once)──▶ build/book/executed/
                                                                       or --executed DIR
    executed notebooks ──_pages: widgets → their last picture; the caveat note──▶ build/book/src/
    docs/conf.py, docs/index.md, docs/teachers-guide.md, docs/_static/ ───────────┘  (staged)
    build/book/src ──Sphinx + myst-nb (nb_execution_mode "off": no re-run)──▶ build/book/html

    python docs/build.py --execute                  # what `make book` does
    python docs/build.py --executed test-artifacts/notebooks --quick   # CI: the notebook test's
                                                    # executed copies (quick parameters)

Why Sphinx with myst-nb, and not Jupyter Book 2 / mystmd: mystmd fetches its HTML theme from the
web when it builds, and the course must build offline (a classroom, a CI machine without
internet). Sphinx, myst-nb and sphinx-book-theme come from PyPI with every asset in their wheels;
the site's pages load nothing from another host (`_external_loads` checks the built HTML, and
tests/book/ checks it in a browser).

The order of the chapters is the table of contents of ``notebooks/00_start_here.ipynb``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pages import add_caveat, has_outputs, static_widgets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = ROOT / "notebooks"
START = "00_start_here"
DEFAULT_OUT = ROOT / "build" / "book"
# One cell at reader defaults may run for minutes (chapter 08's matrix on a slow laptop); a hung
# cell still ends the build.
_CELL_TIMEOUT_SECONDS = 1800
_CHAPTERS_MARK = "<!-- chapters -->"
_TOC_LINK = re.compile(r"\]\((\d\d[a-z]?_[A-Za-z0-9_]+)\.ipynb\)")
# A load from another host: a src= of any element, or a <link href=> (stylesheets, fonts,
# preloads). Plain <a href> links are the reader's to follow and load nothing by themselves.
_EXTERNAL_LOAD = re.compile(
    r"""(?:\bsrc\s*=\s*["']|<link\b[^>]*\bhref\s*=\s*["']|url\(\s*["']?)((?:https?:)?//[^"')\s]+)""",
    re.IGNORECASE)
_LOCAL_HOSTS = ("//127.0.0.1", "//localhost")


def chapter_order() -> list[str]:
    """The notebook stems in reading order: chapter 00, then its table of contents."""
    nb = json.loads((NOTEBOOKS / f"{START}.ipynb").read_text(encoding="utf-8"))
    order = [START]
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for stem in _TOC_LINK.findall("".join(cell["source"])):
                if stem not in order and (NOTEBOOKS / f"{stem}.ipynb").exists():
                    order.append(stem)
    on_disk = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))
    return order + [stem for stem in on_disk if stem not in order]


def _toc_table() -> str:
    """The chapter table of chapter 00, its links pointing at the site's pages."""
    nb = json.loads((NOTEBOOKS / f"{START}.ipynb").read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and text.startswith("## The course"):
            table = [line for line in text.splitlines() if line.startswith("|")]
            body = "\n".join(table)
            body = body.replace("**start here** (this page)",
                                f"[start here](notebooks/{START}.ipynb)")
            return _TOC_LINK.sub(r"](notebooks/\1.ipynb)", body)
    raise SystemExit(f"no '## The course' table in {START}.ipynb: the chapter order comes from it")


def execute(stems: list[str], into: Path) -> None:
    """Run each notebook once at reader defaults, the way tests/notebooks does, into `into`."""
    import nbclient
    import nbformat

    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cc-book-") as private:
        # The kernel imports this checkout's helpers; the reader's files and temporary files of
        # the run go to a private folder removed afterwards. No CC_QUICK: reader defaults.
        os.environ.pop("CC_QUICK", None)
        os.environ["PYTHONPATH"] = str(ROOT)
        os.environ["CC_WORK"] = str(Path(private) / "work")
        os.environ["TMPDIR"] = str(Path(private) / "tmp")
        Path(os.environ["TMPDIR"]).mkdir()
        failed = []
        for stem in stems:
            started = dt.datetime.now()
            print(f"executing {stem} ...", flush=True)
            nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
            client = nbclient.NotebookClient(
                nb, timeout=_CELL_TIMEOUT_SECONDS, kernel_name="python3", allow_errors=True,
                resources={"metadata": {"path": str(NOTEBOOKS)}})
            client.execute()
            nbformat.write(nb, into / f"{stem}.ipynb")
            errors = [f"{stem} cell {i}: {o.get('ename')}: {o.get('evalue')}"
                      for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
                      if o.get("output_type") == "error"]
            failed += errors
            print(f"  {stem}: {(dt.datetime.now() - started).total_seconds():.0f} s", flush=True)
    if failed:
        raise SystemExit("notebooks raised errors (executed copies kept in "
                         f"{into}):\n  " + "\n  ".join(failed))


def _caveat(quick: bool, executed_on: dt.date) -> str:
    """The note on each page. It describes the machine running the build: the executed notebooks
    come from it (`make book`, or the notebook test earlier in the same CI run)."""
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    params = ("the tests' quick parameters (`CC_QUICK=1`: smaller sizes than yours)" if quick
              else "the chapter's reader defaults")
    return (
        "Every timeline, table and number on this page was measured for this site, "
        f"on {platform.system()} {platform.machine()} with {cores} logical cores "
        f"({usable} usable), Python {platform.python_version()}, on "
        f"{executed_on.isoformat()}, with {params}. Your machine will draw other pictures: "
        "open the chapter in JupyterLab (`make lab`) to measure yours. The live panels are "
        "shown as the picture they drew."
    )


def stage(executed: Path, src: Path, stems: list[str], quick: bool) -> list[str]:
    """Lay out the Sphinx source folder; returns the stems that made it onto pages."""
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    (src / "docs").mkdir()
    shutil.copy(DOCS / "conf.py", src / "conf.py")
    shutil.copytree(DOCS / "_static", src / "_static")
    shutil.copy(DOCS / "teachers-guide.md", src / "docs" / "teachers-guide.md")
    newest = max((executed / f"{stem}.ipynb").stat().st_mtime for stem in stems)
    caveat = _caveat(quick, dt.date.fromtimestamp(newest))
    staged = []
    for stem in stems:
        nb = json.loads((executed / f"{stem}.ipynb").read_text(encoding="utf-8"))
        if not has_outputs(nb):
            raise SystemExit(f"{executed / stem}.ipynb has no outputs: give executed notebooks")
        static_widgets(nb)
        add_caveat(nb, caveat)
        (src / "notebooks" / f"{stem}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
        staged.append(stem)
    toctree = "\n".join(f"notebooks/{stem}" for stem in staged)
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    index = index.replace(_CHAPTERS_MARK, _toc_table())
    index = index.replace("{{chapters}}", toctree)
    (src / "index.md").write_text(index, encoding="utf-8")
    return staged


def _external_loads(html_dir: Path) -> list[str]:
    found = []
    for path in sorted(html_dir.rglob("*")):
        if path.suffix not in (".html", ".css", ".js") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for url in _EXTERNAL_LOAD.findall(text):
            if not url.startswith(_LOCAL_HOSTS) and not url.startswith(
                    tuple("http:" + h for h in _LOCAL_HOSTS)):
                found.append(f"{path.relative_to(html_dir)}: {url}")
    return found


def build(executed: Path, out: Path, *, allow_missing: bool = False, quick: bool = False,
          only: list[str] | None = None) -> Path:
    """Build ``out/html`` from the executed notebooks in `executed`; returns that folder."""
    stems = only or chapter_order()
    missing = [s for s in stems if not (executed / f"{s}.ipynb").exists()]
    if missing and not allow_missing:
        raise SystemExit(f"{executed} lacks {', '.join(missing)} (--allow-missing builds the rest)")
    stems = [s for s in stems if s not in missing]
    if not stems:
        raise SystemExit(f"no executed notebook in {executed}")
    staged = stage(executed, out / "src", stems, quick)
    html_dir = out / "html"
    if html_dir.exists():
        shutil.rmtree(html_dir)
    # A chapter left out leaves links to it dangling: with --allow-missing or --only, expected.
    partial = set(staged) != set(chapter_order())
    quiet = ["-D", "suppress_warnings=myst.xref_missing"] if partial else []
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", *quiet,
               "-d", str(out / "doctrees"), str(out / "src"), str(html_dir)]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"Sphinx failed: {' '.join(command)}")
    loads = _external_loads(html_dir)
    if loads:
        raise SystemExit("the site would load from another host:\n  " + "\n  ".join(loads))
    print(f"built {len(staged)} chapter pages: {html_dir / 'index.html'}"
          + (f" (missing: {', '.join(missing)})" if missing else ""))
    return html_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--executed", type=Path, help="a folder of executed notebooks")
    source.add_argument("--execute", action="store_true",
                        help="execute the notebooks at reader defaults into OUT/executed first")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="build folder (default build/book); the site goes to OUT/html")
    parser.add_argument("--allow-missing", action="store_true",
                        help="build the chapters present, skip the others")
    parser.add_argument("--quick", action="store_true",
                        help="the notebooks ran with CC_QUICK=1: each page says so")
    parser.add_argument("--only", nargs="+", metavar="STEM", help="these chapters only")
    args = parser.parse_args(argv)
    executed = args.executed
    if args.execute:
        executed = args.out / "executed"
        execute(args.only or chapter_order(), executed)
    build(executed, args.out, allow_missing=args.allow_missing, quick=args.quick, only=args.only)


if __name__ == "__main__":
    main()
