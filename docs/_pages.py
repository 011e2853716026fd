"""Turn an executed chapter notebook into a page of the rendered edition.

    executed notebook (outputs + saved widget state)
        │  static_widgets: each widget output ──> what it showed when the notebook ran:
        │                  its title, the settings it ran with, its picture (the PNG the Image
        │                  widget held), its summary, and a note on how to run it live
        │  add_caveat:     one note after the title: these figures come from the machine that
        │                  built the site, not the reader's
        ▼
    notebook for myst-nb (no widget state left, so the page loads no widget JavaScript)

A widget needs a kernel: on a static page the live panel cannot run, but the state nbclient saved
in the notebook's metadata holds what it last drew (an ``ImageModel``'s value is a PNG in its
``buffers``), so the page shows that picture instead of an empty box.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

__all__ = ["CAVEAT_CLASS", "PANEL_CLASS", "add_caveat", "has_outputs", "static_widgets"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# CSS classes the site's stylesheet, its present mode and the browser test look for.
CAVEAT_CLASS = "cc-caveat"
PANEL_CLASS = "cc-panel-static"
_LIVE_NOTE = (
    "<p class='cc-panel-note'><em>A live panel in JupyterLab</em>: this is the picture it drew "
    "when the site was built, with the settings above. To move the controls and press "
    "<strong>Run</strong>, open this chapter in JupyterLab (<code>make lab</code>) and run its "
    "cells from the top.</p>"
)
_CONTROLS = {"IntSliderModel", "FloatSliderModel", "DropdownModel", "ToggleButtonsModel",
             "CheckboxModel", "RadioButtonsModel", "SelectModel"}
_TAGS = re.compile(r"<[^>]+>")


def has_outputs(nb: dict) -> bool:
    """Whether any code cell of `nb` has an output (an unexecuted notebook has none)."""
    return any(cell.get("outputs") for cell in nb["cells"] if cell["cell_type"] == "code")


def _models(nb: dict) -> dict[str, dict]:
    widgets = nb.get("metadata", {}).get("widgets", {})
    return widgets.get(WIDGET_STATE, {}).get("state", {})


def _walk(models: dict[str, dict], model_id: str, seen: set[str]):
    """The models under `model_id` (itself first), depth first, in the order they are drawn."""
    if model_id in seen or model_id not in models:
        return
    seen.add(model_id)
    yield models[model_id]
    for child in models[model_id].get("state", {}).get("children", []):
        yield from _walk(models, str(child).removeprefix("IPY_MODEL_"), seen)


def _setting(state: dict) -> str | None:
    label = state.get("description") or ""
    if "_options_labels" in state:
        index = state.get("index")
        labels = state["_options_labels"]
        value = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else None
    else:
        value = state.get("value")
    if value is None:
        return None
    return f"{html.escape(str(label))} = <code>{html.escape(str(value))}</code>"


def _html_output(text: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": text}}


def _widget_outputs(models: dict[str, dict], model_id: str) -> list[dict] | None:
    """The static outputs standing for one widget, or None when its state was not saved."""
    if model_id not in models:
        return None
    texts: list[str] = []
    settings: list[str] = []
    pictures: list[dict] = []
    inner: list[dict] = []
    for model in _walk(models, model_id, set()):
        name, state = model.get("model_name"), model.get("state", {})
        if name == "HTMLModel" and _TAGS.sub("", state.get("value", "")).strip():
            texts.append(state["value"])
        elif name == "LabelModel" and state.get("value"):
            texts.append(html.escape(state["value"]))
        elif name in _CONTROLS:
            setting = _setting(state)
            if setting:
                settings.append(setting)
        elif name == "ImageModel":
            for buffer in model.get("buffers", []):
                if buffer.get("path") == ["value"] and buffer.get("encoding") == "base64":
                    base64.b64decode(buffer["data"], validate=True)  # a broken picture fails here
                    pictures.append({"output_type": "display_data", "metadata": {},
                                     "data": {"image/png": buffer["data"]}})
        elif name == "OutputModel":
            inner.extend(state.get("outputs", []))
    head = "".join(f"<div>{text}</div>" for text in texts[:1])
    if settings:
        head += "<p class='cc-panel-settings'>Settings: " + ", ".join(settings) + "</p>"
    outputs = [_html_output(f"<div class='{PANEL_CLASS}'>{head}</div>")] if head else []
    outputs += pictures + inner
    outputs += [_html_output(f"<div>{text}</div>") for text in texts[1:]]
    if pictures or settings:
        outputs.append(_html_output(f"<div class='{PANEL_CLASS}'>{_LIVE_NOTE}</div>"))
    return outputs


def static_widgets(nb: dict) -> int:
    """Replace every widget output of `nb` by what it showed; drop the saved widget state.

    Returns how many widget outputs were replaced.
    """
    models = _models(nb)
    replaced = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        new_outputs: list[dict[str, Any]] = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                new_outputs.append(output)
                continue
            replaced += 1
            static = _widget_outputs(models, view.get("model_id", ""))
            if static is None:
                static = [_html_output(
                    f"<div class='{PANEL_CLASS}'><p><em>An interactive widget: it needs a running "
                    "kernel. Open this chapter in JupyterLab (<code>make lab</code>) to use it."
                    "</em></p></div>")]
            new_outputs.extend(static)
        if "outputs" in cell:
            cell["outputs"] = new_outputs
    nb.get("metadata", {}).pop("widgets", None)
    return replaced


def add_caveat(nb: dict, text: str) -> None:
    """Put `text` (markdown) in a note right after the first markdown cell (the title)."""
    note = {
        "cell_type": "markdown",
        "id": "cc-book-caveat",
        "metadata": {},
        "source": f"```{{admonition}} Measured on the machine that built this site\n"
                  f":class: {CAVEAT_CLASS}\n\n{text}\n```\n",
    }
    first = next((i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"), -1)
    nb["cells"].insert(first + 1, note)
