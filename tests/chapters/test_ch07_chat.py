"""Chapter 07's chat server, its handler files, exercise 07.1, the plots and the panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from helpers.chapters.ch07_socket_server import (
    ChatClient,
    make_panel,
    plot_bad_clients,
    plot_load,
    plot_memory,
    plot_rps,
    plot_scaling,
    plot_served_by,
    plot_waits,
    start_chat,
)
from helpers.exercises import check

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "07a_socket_server.ipynb"


def test_a_line_goes_to_every_other_client_and_leaving_is_announced():
    server = start_chat()
    try:
        port = server.info["port"]
        with ChatClient(port) as a, ChatClient(port) as b, ChatClient(port) as c:
            assert a.read(0.2)[0].startswith("* welcome, guest1")
            b.read(0.2), c.read(0.2)
            a.say("hello")
            assert (a.read(0.2), b.read(0.2), c.read(0.2)) == ([], ["guest1: hello"],
                                                                ["guest1: hello"])
            b.close()
            assert a.read(0.2) == ["* guest2 left"] == c.read(0.2)
    finally:
        value = server.stop()
    events = [(event, name) for _, event, name, _ in value["transcript"]]
    assert events[:4] == [("join", "guest1"), ("join", "guest2"), ("join", "guest3"),
                          ("line", "guest1")]
    assert value["errors"] == []


def test_clients_that_leave_before_the_stop_are_in_the_transcript():
    """Stopping waits for the clients leaving just then (the notebook's transcript shows them)."""
    with start_chat() as server:
        port = server.info["port"]
        with ChatClient(port) as a, ChatClient(port) as b:
            assert b.read(0.3)[0].startswith("* welcome, guest2")  # both are in the room
            a.say("hi")
            assert b.read(0.3) == ["guest1: hi"]
    events = [(event, name) for _, event, name, _ in server.value["transcript"]]
    assert events[-2:] in ([("leave", "guest1"), ("leave", "guest2")],
                           [("leave", "guest2"), ("leave", "guest1")])


def test_a_handler_that_raises_loses_its_line_not_the_server(tmp_path):
    handler = tmp_path / "broken.py"
    handler.write_text("def on_line(chat, client, line):\n    raise KeyError(line)\n")
    server = start_chat(handler=handler)
    try:
        with ChatClient(server.info["port"]) as a, ChatClient(server.info["port"]) as b:
            a.say("boom")
            a.say("again")
            assert b.read(0.3) == ["* welcome, guest2; 1 other(s) here"]
    finally:
        value = server.stop()
    assert value["errors"] == ["on_line: KeyError('boom')", "on_line: KeyError('again')"]


def test_a_missing_handler_file_is_a_value_error():
    with pytest.raises(ValueError, match="handler must be an existing Python file"):
        start_chat(handler="no/such/file.py")


@pytest.mark.parametrize(("options", "message"), [
    ({"port": 70_000}, "port must be an integer from 1 to 65535"),
    ({"port": 0}, "port must be an integer from 1"),  # a client needs the server's port
    ({"port": 9, "timeout": float("inf")}, "timeout must be a number"),
    ({"port": 9, "timeout": 0}, "timeout must be a number"),
])
def test_a_chat_client_refuses_a_bad_port_or_timeout_before_it_connects(options, message):
    with pytest.raises(ValueError, match=message):
        ChatClient(**options)


def test_plot_served_by_needs_the_books_of_a_server():
    with pytest.raises(ValueError, match="books must be a non-empty list"):
        plot_served_by([], Figure().add_subplot())


def _solution() -> str:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    for cell in cells:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "<details>" in text and "/nick" in text:
            return re.search(r"```python\n%%writefile \{WORK\}/nick_chat.py\n(.*?)```", text,
                             re.S)[1]
    raise AssertionError("no solution of 07.1 in the notebook")


def _template() -> str:
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and text.startswith("%%writefile {WORK}/nick_chat.py"):
            return text.split("\n", 1)[1]
    raise AssertionError("no %%writefile cell of 07.1 in the notebook")


def test_exercise_solution_passes_and_the_template_and_blank_do_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not check("07.1", ...).answered
    Path("nick_chat.py").write_text(_template())
    monkeypatch.setattr("helpers.exercises.QUICK", False)  # a failing check reports, not raises
    feedback = check("07.1", "nick_chat.py")
    assert not feedback.passed
    assert feedback.points[0].ok  # the template still broadcasts plain lines
    assert "split(" not in repr(feedback) and "names()" not in repr(feedback)  # no code shown
    Path("nick_chat.py").write_text(_solution())
    feedback = check("07.1", "nick_chat.py")
    assert feedback.passed, repr(feedback)
    assert not check("07.1", "missing.py").passed


def _figures():
    load = {"requests": 10, "seconds": 1.0, "rps": 10.0, "p50 us": 50.0, "p90 us": 80.0,
            "p99 us": 90.0, "max us": 99.0, "sample us": [10.0 * i for i in range(200)],
            "connections": 10, "message bytes": 64, "errors": 0, "error kinds": {}}
    book = {"pid": 7, "spans": [(1, 0, 5_000_000, 3, "closed by client")]}
    return load, book


def test_every_plot_draws_on_the_axes_it_is_given():
    load, book = _figures()
    fig = Figure()
    axes = fig.subplots(2, 3).ravel()
    assert plot_load({"gevent": load, "threads": load}, axes[:2])
    assert plot_memory({"models": {"gevent": {"rows": [(0, 1), (10, 2)],
                                              "KiB per connection": 0.1}}}, axes[2])
    assert plot_scaling({"rows": {1: load, 2: load}, "cores": 2, "cpu_ms": 1.0}, axes[3])
    assert plot_served_by([book, {**book, "pid": 8}], axes[4])
    assert plot_bad_clients({"spans": {"good client": [("ping", "run", 0, 10)]}}, axes[5])
    from helpers.timeline import Event, Trace
    waits = {"models": {"plain": {}},
             "trace": Trace([Event("plain: client A", "x", "run", 0, 10),
                             Event("plain: client B", "y", "wait", 1, 10)])}
    assert plot_waits(waits, Figure().subplots())


def test_the_panel_loads_a_server_and_says_what_it_measured():
    panel = make_panel()
    summary = panel.run(model="gevent", connections=10, message_size=16, workers=2)
    assert "gevent, 2 worker(s)" in summary and "0 errors" in summary
    with pytest.raises(ValueError, match="connections must be an integer from 1 to 1000"):
        panel.run(connections=0)


@pytest.mark.parametrize("plot", [plot_load, plot_rps])
def test_a_plot_of_no_results_says_what_it_needs(plot):
    figure = Figure()
    axes = [figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)]
    with pytest.raises(ValueError, match="results must hold at least one model's figures"):
        plot({}, axes if plot is plot_load else axes[0])
