"""Self-checks for the exercises: they say what is right and what is wrong, not just pass/fail.

In a chapter::

    answer = ...                      # the student edits this cell
    check("00.1", answer)             # ✓ / ✗ lines, with a hint for each ✗

and, after it, the solution in a markdown cell: a collapsed ``<details>`` block, "Solution (open
it after you have tried)", holding the code in a fenced python block, so Run All never runs it
(the chapter's tests read it from the notebook and put it through its check).

A point is right (✓), wrong (✗) or inconclusive (?): a check that measures something the machine
cannot show right now (a speed-up on a busy or one-core machine) says so with ``Point.unsure``,
and the whole answer is then "inconclusive" — never "all right!" for a program it could not judge.

Each chapter's checks live in ``helpers/exercises/chNN.py`` and register themselves with
`exercise`; `check` imports the chapter's module on first use. A check is a function that takes the
answer and returns `Point` items, one per thing it looked at.

Under the test suite (``CC_QUICK=1``) a check of a real answer that is wrong raises
`AssertionError`, so a solution that stopped being right fails CI (an inconclusive one does not: it
was not judged); a reader never sees an exception from a check.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from helpers.course import QUICK, usable_cores

__all__ = ["Feedback", "Point", "check", "exercise"]

_CHECKS: dict[str, tuple[str, Callable[[Any], Iterable[Point]]]] = {}


@dataclass(frozen=True)
class Point:
    """One thing a check looked at: whether it is right (True), wrong (False) or could not be
    judged on this machine right now (None), and what to tell the student."""

    ok: bool | None
    message: str

    @classmethod
    def unsure(cls, message: str) -> Point:
        """A point the machine could not decide (busy, one core): says why, never ✓ or ✗."""
        return cls(None, message)


_MARKS = {True: ("✓", "✅"), False: ("✗", "❌"), None: ("?", "❔")}


@dataclass
class Feedback:
    """What a check found. Shows as a ✓/✗ list in a notebook; truthy when everything is right."""

    exercise: str
    title: str
    points: list[Point] = field(default_factory=list)
    answered: bool = True

    @property
    def passed(self) -> bool:
        return self.answered and all(p.ok is True for p in self.points)

    @property
    def wrong(self) -> bool:
        """Some point is definitely wrong."""
        return self.answered and any(p.ok is False for p in self.points)

    @property
    def inconclusive(self) -> bool:
        """Nothing is wrong, but some point could not be judged: neither right nor wrong."""
        return self.answered and not self.wrong and any(p.ok is None for p in self.points)

    def __bool__(self) -> bool:
        return self.passed

    def _summary(self) -> str:
        if not self.answered:
            return f"Exercise {self.exercise}: not answered yet — replace the ... with your answer."
        if self.passed:
            return f"Exercise {self.exercise}: all right!"
        if self.inconclusive and usable_cores() < 2:  # waiting for a quieter moment won't help
            return (f"Exercise {self.exercise}: inconclusive — this machine could not tell (see "
                    "?); it gives the course one core, so what needs two cores can only be "
                    "judged on a machine with more.")
        if self.inconclusive:
            return (f"Exercise {self.exercise}: inconclusive — this machine could not tell right "
                    "now (see ?); run the check again when it is quieter.")
        wrong = sum(p.ok is False for p in self.points)
        return f"Exercise {self.exercise}: {wrong} of {len(self.points)} not right yet."

    def __repr__(self) -> str:
        lines = [self._summary()]
        lines += [f"  {_MARKS[p.ok][0]} {p.message}" for p in self.points]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = ("#2e7d32" if self.passed else "#666666" if not self.answered or self.inconclusive
                  else "#c62828")
        items = "".join(
            f"<li style='list-style:none'>{_MARKS[p.ok][1]} {html.escape(p.message)}</li>"
            for p in self.points
        )
        return (
            f"<div class='cc-feedback'><b style='color:{colour}'>"
            f"{html.escape(self._summary())}</b><ul>{items}</ul></div>"
        )


def exercise(exercise_id: str, title: str):
    """Register the decorated function as the check of `exercise_id` (like ``"05.2"``)."""

    def register(fn: Callable[[Any], Iterable[Point]]):
        _CHECKS[exercise_id] = (title, fn)
        return fn

    return register


def _load(exercise_id: str) -> tuple[str, Callable[[Any], Iterable[Point]]]:
    if not isinstance(exercise_id, str):
        raise TypeError(f"exercise_id must be a string like '05.2', got {exercise_id!r}")
    if exercise_id not in _CHECKS:
        chapter = exercise_id.split(".", 1)[0]
        module = f"{__name__}.ch{chapter}"
        if chapter.isalnum() and importlib.util.find_spec(module) is not None:
            # Imported only when it exists: a ModuleNotFoundError raised *inside* a check module
            # is a real error of that module and must not read as "unknown exercise".
            importlib.import_module(module)
    if exercise_id not in _CHECKS:
        known = ", ".join(sorted(_CHECKS)) or "none loaded"
        raise ValueError(f"exercise must be a known exercise id ({known}), got {exercise_id!r}")
    return _CHECKS[exercise_id]


def check(exercise_id: str, answer: Any) -> Feedback:
    """Check `answer` to exercise `exercise_id` and say what is right and what is not."""
    title, fn = _load(exercise_id)
    if answer is ...:
        return Feedback(exercise_id, title, answered=False)
    try:
        points = list(fn(answer))
    except Exception as exc:  # a malformed answer is feedback, not a crash
        points = [Point(False, f"the check could not read this answer: {exc!r}")]
    feedback = Feedback(exercise_id, title, points)
    if QUICK and feedback.wrong:
        raise AssertionError(repr(feedback))
    return feedback
