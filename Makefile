# Cores & Coroutines: one virtual environment (.venv), built from the pinned lock.
#
#   make lab     open JupyterLab at chapter 00
#   make test    lint, then run the test suite (untimed tests side by side, then timed ones
#                alone, then the browser)
#   make bench   measure the course's figures on this machine and check them against their bars
#                (make bench BENCH="pools coroutines" runs some modules only)
#   make test-seam PYTHON=python3.13
#                the runners and their cleanup seam (fork, spawn, forkserver) on another
#                interpreter, in a venv of its own (.venv-3.13) from the same lock
#   make book    the course as a website in build/book/html: runs every notebook once at reader
#                defaults, then renders the pages (docs/build.py); make book BOOK="--only 00_start_here"
#                renders some chapters only. Serve it: python3 -m http.server -d build/book/html
#   make lint    ruff on helpers, tests, bench, the notebooks and docs
#   make strip   remove outputs and execution counts from notebooks/*.ipynb
#   make clean   remove .venv, caches, test artifacts and the built book
#
# The first target that needs .venv creates it with $(PYTHON) (3.10 or newer) and installs the
# package with its test extra, pinned by constraints.txt. A stamp file remembers that; it is
# older than pyproject.toml, constraints.txt or the lab settings only when those changed, so later
# runs skip it.

PYTHON ?= python3
# JupyterLab's first port; with it busy, the next free one of the 50 after it is taken.
PORT ?= 8888

VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
# ruff is given only the folders that exist, so a missing one is no lint error.
LINT_PATHS := $(wildcard helpers tests bench notebooks docs)
# Where `make lab` opens; the address it prints leads there too (default_url).
CHAPTER_00 := notebooks/00_start_here.ipynb
# JupyterLab refuses to start as root (a container, CI) unless told; only then is it told.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: all bootstrap lab test test-seam lint bench book strip clean

all: bootstrap

bootstrap: $(STAMP)

$(VPY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
	  echo "error: Cores & Coroutines needs Python 3.10 or newer; '$(PYTHON)' is" \
	    "$$(command -v $(PYTHON) >/dev/null && $(PYTHON) --version 2>&1 || echo 'not found')." >&2; \
	  echo "       Run e.g. 'make PYTHON=python3.12 $(MAKECMDGOALS)'." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt jupyter/overrides.json | $(VPY)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install -e ".[test]" -c constraints.txt
	mkdir -p $(LAB_SETTINGS)
	cp jupyter/overrides.json $(LAB_SETTINGS)/overrides.json
	touch $@

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(CHAPTER_00) --LabApp.default_url=/lab/tree/$(CHAPTER_00) \
	  --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) --ServerApp.port_retries=50 \
	  --ServerApp.root_dir=. $(ALLOW_ROOT)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)

# Three passes, so that no test measures time while others run: first every test that does not
# (unit tests and the headless notebooks) side by side in $(TEST_JOBS) processes, then the tests
# that measure time (marked `timing`) alone, then the browser tests, which open the notebooks the
# first pass executed, in JupyterLab and rendered as the book's site. Those two run side by side
# (neither measures time; each drives a Chromium of its own, and Playwright's sync API allows one
# per process): the book's report is printed when JupyterLab's is done, and `make test` fails if
# either failed. Each pass lists its ten slowest tests: where CI's minutes go.
TEST_JOBS ?= 4
BOOK_TEST_LOG := test-artifacts/book-test.log
test: lint
	$(VPY) -m pytest -m "not timing and not browser" -n $(TEST_JOBS) --dist worksteal --durations=10
	$(VPY) -m pytest -m "timing and not browser" --durations=10
	@mkdir -p test-artifacts
	@echo "$(VPY) -m pytest -m browser tests/book > $(BOOK_TEST_LOG) &  (reported after the next)"
	@echo "$(VPY) -m pytest -m browser tests/browser"
	@$(VPY) -m pytest -m browser tests/book > $(BOOK_TEST_LOG) 2>&1 & book=$$!; \
	$(VPY) -m pytest -m browser tests/browser; lab=$$?; \
	wait $$book; status=$$?; cat $(BOOK_TEST_LOG); \
	test $$lab -eq 0 && test $$status -eq 0

# The seam between the course and multiprocessing's internals is where a new Python breaks first:
# its tests (every pool kind timed out and interrupted under each start method) and the runners'
# run on any interpreter the lock supports, each in a venv named after its version.
SEAM_VENV = .venv-$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
test-seam:
	$(PYTHON) -m venv $(SEAM_VENV)
	$(SEAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SEAM_VENV)/bin/python -m pip install --quiet -e ".[test]" -c constraints.txt
	$(SEAM_VENV)/bin/python -m pytest -p no:cacheprovider tests/runners tests/timeline

bench: $(STAMP)
	$(VPY) -m bench $(BENCH)

# The test extra brings the book's tools (tests/book builds the site), so the stamp is enough.
book: $(STAMP)
	$(VPY) docs/build.py --execute $(BOOK)

# Clears what a run leaves in a notebook: outputs, execution counts and the saved widget state.
# Cell ids and every other field stay; the file is written the way JupyterLab writes it.
define STRIP_PY
import json, pathlib
for path in sorted(pathlib.Path("notebooks").glob("*.ipynb")):
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new, encoding="utf-8")
        print("stripped", path)
endef
export STRIP_PY

strip:
	@$(PYTHON) -c "$$STRIP_PY"

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .ruff_cache test-artifacts build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
