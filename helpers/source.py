"""Show the code that runs: the exact source of a function, class or module, highlighted.

The course's rule is that where a pattern is the lesson, the reader sees it. Code that must reach
another process lives in a module (spawn and forkserver import it there), so the cell cannot hold
it; instead the cell shows it, right above the output it makes::

    notebook cell                                   what the reader sees
    -------------                                   --------------------
    show_source(workers.produce, workers.consume)   # helpers/chapters/ch02_ipc/pipeline.py
    run = run_pipeline(...)                         def produce(queue, count, ...):
                                                        ...
                                                    <the run's printout and timeline>

`show_source` reads the source with `inspect` at the moment it is called, so what is shown is
what runs (edit the module, restart the kernel, and the cell shows the edit). A file the reader
wrote with ``%%writefile`` is shown by its path.

A shown piece of code should fit a screen: about 40 lines. Where a helper is longer, the lesson's
part becomes its own short function that the page shows, and the bookkeeping (recording, cleanup,
validation) stays behind it. ``tests/test_code_on_page.py`` holds every notebook to that.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from pathlib import Path

__all__ = ["show_source", "source_of"]

# The folder above the package, so a shown file reads "helpers/chapters/..." rather than a path
# that starts at the reader's home: the path a reader can open in JupyterLab's file browser.
_PROJECT = Path(__file__).resolve().parents[1]


def source_of(obj: object) -> tuple[str, str]:
    """(where, code): the file `obj` is defined in, relative to the course where it can be, and its
    exact source. `obj` is a function, class, method or module, or the path of a ``.py`` file."""
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if path.suffix != ".py" or not path.is_file():
            raise ValueError(f"obj must be a function, class, module or the path of a .py file, "
                             f"got {obj!r}")
        return _relative(path), path.read_text(encoding="utf-8")
    target = inspect.unwrap(obj) if callable(obj) else obj
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.ismodule(target)
            or inspect.ismethod(target)):
        raise TypeError(f"obj must be a function, class, module or the path of a .py file, "
                        f"got {obj!r}")
    try:
        code = inspect.getsource(target)
        where = inspect.getsourcefile(target) or "?"
    except (OSError, TypeError) as error:  # defined in a cell, or a built-in
        raise ValueError(f"no source to show for {obj!r}: {error}") from None
    return _relative(Path(where)), textwrap.dedent(code)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(_PROJECT))
    except ValueError:
        return str(path)


class _Source:
    """Pieces of source shown one under the other, each headed by the file it comes from.

    In JupyterLab it renders highlighted (pygments, which JupyterLab already has); as plain text
    (a terminal, a headless run, ``print``) it is the code itself, ready to copy.
    """

    def __init__(self, pieces: list[tuple[str, str]]) -> None:
        self.pieces = pieces

    @property
    def text(self) -> str:
        return "\n\n".join(f"# {where}\n{code.rstrip()}" for where, code in self.pieces) + "\n"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.text)

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        # Inline styles: the output looks the same in JupyterLab, in an exported page and in a
        # static site, whatever theme CSS each of them carries.
        formatter = HtmlFormatter(noclasses=True, nowrap=False, style="default")
        return "".join(
            "<div class='cc-source'>"
            f"<div style='font-family:monospace;font-size:85%;color:#666'># {_escape(where)}</div>"
            f"{highlight(code.rstrip(), PythonLexer(), formatter)}</div>"
            for where, code in self.pieces
        )


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def show_source(*objects: object) -> _Source:
    """The exact source of each object (function, class, method, module or ``.py`` path), to show
    in a cell: ``show_source(produce, consume)`` as the cell's last line, or ``display(...)``."""
    if not objects:
        raise ValueError("show_source needs at least one function, class, module or path")
    return _Source([source_of(obj) for obj in objects])
