"""The parameter panel every chapter uses to re-run its main demo with other settings.

A chapter declares its controls and a demo function, and gets a panel::

    panel = Panel(
        "Threads vs processes",
        [Int("workers", 1, 4, default=2), Choice("start_method", ["spawn", "fork"])],
        demo,              # demo(fig, progress, workers=..., start_method=...) -> str | None
    )
    panel.run()                    # first picture, with the defaults
    panel                          # the widgets: controls, Run, progress, picture, errors

What it does for the reader, and why:

- sliders only send a value when released (``continuous_update=False``): a demo starts processes,
  and re-running it on every pixel of a drag would queue dozens of runs;
- the bounds of every control are the demo's valid range, so a value outside it cannot be sent,
  and `Panel.run` validates again for calls from code (``ValueError`` naming the parameter);
- the Run button is disabled while a run is going, and a progress bar moves for long runs;
- errors from the demo land in an ``Output`` under the picture: exceptions raised in widget
  callbacks are otherwise invisible (ipywidgets#2612);
- the picture is an ``Image`` widget updated in place, so the timeline redraws where it was.

CSS classes for tests and styling: ``cc-panel``, ``cc-control``, ``cc-run``, ``cc-plot``.
"""

from __future__ import annotations

import io
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from helpers.course import check_choice, check_float, check_int

__all__ = ["Choice", "Demo", "Float", "Int", "Panel", "Progress", "no_progress"]

_FIGSIZE = (11, 4)  # inches: fills a notebook column; 12 pt text reads on a projector
_DPI = 90


@dataclass(frozen=True)
class Int:
    """An integer slider from `low` to `high`."""

    name: str
    low: int
    high: int
    default: int
    step: int = 1
    label: str | None = None

    def widget(self) -> w.Widget:
        return w.IntSlider(value=self.default, min=self.low, max=self.high, step=self.step,
                           description=self.label or self.name, continuous_update=False,
                           style={"description_width": "initial"})

    def validate(self, value: object) -> int:
        return check_int(self.name, value, self.low, self.high)


@dataclass(frozen=True)
class Float:
    """A number slider from `low` to `high`."""

    name: str
    low: float
    high: float
    default: float
    step: float = 0.01
    label: str | None = None

    def widget(self) -> w.Widget:
        return w.FloatSlider(value=self.default, min=self.low, max=self.high, step=self.step,
                             description=self.label or self.name, continuous_update=False,
                             readout_format=".3g", style={"description_width": "initial"})

    def validate(self, value: object) -> float:
        return check_float(self.name, value, self.low, self.high)


@dataclass(frozen=True)
class Choice:
    """A dropdown of `options` (strings, numbers or booleans)."""

    name: str
    options: Sequence[Any]
    default: Any = None
    label: str | None = None

    def widget(self) -> w.Widget:
        value = self.options[0] if self.default is None else self.default
        return w.Dropdown(options=list(self.options), value=value,
                          description=self.label or self.name,
                          style={"description_width": "initial"})

    def validate(self, value: object) -> object:
        return check_choice(self.name, value, list(self.options))


# The one progress protocol of the course: a demo calls ``progress(fraction, text)`` with a
# fraction from 0 to 1 and a short status ("starting the pool…"); the panel moves its bar.
Progress = Callable[[float, str], None]
# demo(fig, progress, **values) -> a one-line summary (str) or None; draws on `fig`.
Demo = Callable[..., Any]


class Panel:
    """Controls, a Run button, a progress bar and the demo's picture, redrawn in place."""

    def __init__(self, title: str, controls: Sequence[Int | Float | Choice], demo: Demo) -> None:
        names = [c.name for c in controls]
        if len(set(names)) != len(names):
            raise ValueError(f"controls must have distinct names, got {names}")
        for control in controls:
            control.validate(control.default if not isinstance(control, Choice)
                             else (control.default if control.default is not None
                                   else control.options[0]))
        self.title = title
        self.controls = list(controls)
        self.demo = demo
        self.result: Any = None
        self.runs = 0

        self._inputs = {c.name: c.widget() for c in self.controls}
        for widget in self._inputs.values():
            widget.add_class("cc-control")
        self._button = w.Button(description="Run", button_style="primary", icon="play",
                                tooltip="Run the demo with these settings")
        self._button.add_class("cc-run")
        self._button.on_click(self._on_click)
        self._progress = w.FloatProgress(value=0.0, min=0.0, max=1.0,
                                         layout=w.Layout(width="50%"))
        self._status = w.Label("")
        self._image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self._image.add_class("cc-plot")
        self._summary = w.HTML("")
        self._errors = w.Output()
        controls_box = w.HBox(list(self._inputs.values()) + [self._button],
                              layout=w.Layout(flex_flow="row wrap", align_items="center"))
        self.widget = w.VBox([
            w.HTML(f"<h4 style='margin:4px 0'>{title}</h4>"),
            controls_box,
            w.HBox([self._progress, self._status]),
            self._image,
            self._summary,
            self._errors,
        ])
        self.widget.add_class("cc-panel")

    # -- values -------------------------------------------------------------------------------
    @property
    def values(self) -> dict[str, Any]:
        """The values the controls show now."""
        return {name: widget.value for name, widget in self._inputs.items()}

    def _validated(self, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = set(overrides) - set(self._inputs)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}; "
                             f"this panel has {sorted(self._inputs)}")
        values = {**self.values, **overrides}
        return {c.name: c.validate(values[c.name]) for c in self.controls}

    # -- running ------------------------------------------------------------------------------
    def _report(self, fraction: float, text: str | None = None) -> None:
        self._progress.value = min(max(float(fraction), 0.0), 1.0)
        if text is not None:
            self._status.value = text

    def run(self, **overrides: Any) -> Any:
        """Run the demo with the controls' values (or `overrides`, which the controls then show).

        Raises what the demo raises; the Run button shows it in the panel instead.
        """
        values = self._validated(overrides)
        for name, value in overrides.items():
            self._inputs[name].value = value
        self._button.disabled = True
        self._errors.clear_output()
        self._report(0.0, "running…")
        started = time.perf_counter()
        try:
            fig = Figure(figsize=_FIGSIZE, layout="constrained")
            self.result = self.demo(fig, self._report, **values)
            self._image.value = _png(fig)
            self._summary.value = "" if self.result is None else f"<p>{self.result}</p>"
            self.runs += 1
            self._report(1.0, f"done in {time.perf_counter() - started:.2f} s")
            return self.result
        finally:
            self._button.disabled = False

    def _on_click(self, _button: w.Button) -> None:
        try:
            self.run()
        except KeyboardInterrupt:
            self._report(0.0, "interrupted — the demo stopped its workers")
        except Exception:
            self._report(0.0, "failed — see the error below")
            with self._errors:
                traceback.print_exc()

    # -- display ------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"Panel({self.title!r}, values={self.values}, runs={self.runs})"


def no_progress(fraction: object, text: object = None) -> None:
    """A `Progress` that shows nothing: for demos called from code, outside a panel.

    Like the panel's own, it accepts whatever a demo reports (the panel clamps the fraction).
    """
    return None


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)  # attach a raster canvas: no pyplot, no global backend change
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
