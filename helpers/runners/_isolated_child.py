"""The child side of `helpers.runners.isolated` (internal): patch first, run, report as data.

Run as ``python -m helpers.runners._isolated_child --patch|--no-patch CALL_FILE``. With
``--patch`` the very first thing this module does is ``gevent.monkey.patch_all()``, before it
imports anything that could take a reference to an unpatched ``socket``, ``threading`` or
``time.sleep``. The call (a module and function name, arguments) is read from CALL_FILE; the
result, or the traceback text, is pickled into the result file the call names. Nothing is
reported by printing.
"""

import sys

if __name__ == "__main__" and "--patch" in sys.argv[1:2]:
    from gevent import monkey

    monkey.patch_all()

import importlib  # noqa: E402 - after patching, on purpose
import os  # noqa: E402
import pickle  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

__all__: list[str] = []


def _run(call: dict) -> dict:
    from helpers.timeline import GreenletRecorder, Trace, TracedResult

    fn = getattr(importlib.import_module(call["module"]), call["name"])
    recorder = GreenletRecorder() if call["trace"] else None
    started = time.perf_counter()
    if recorder is not None:
        with recorder:
            value = fn(*call["args"], **call["kwargs"])
    else:
        value = fn(*call["args"], **call["kwargs"])
    seconds = time.perf_counter() - started
    trace = Trace()
    if recorder is not None:
        trace.extend(recorder.recording())
    if isinstance(value, TracedResult):
        trace.extend(value.recording)
        value = value.value
    return {"ok": True, "value": value, "seconds": seconds, "recording": trace}


def main(argv: list) -> int:
    with open(argv[2], "rb") as call_file:
        call = pickle.load(call_file)
    try:
        report = _run(call)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as text
        report = {"ok": False, "traceback": "".join(traceback.format_exception(exc))}
    partial = call["result"] + ".partial"
    with open(partial, "wb") as result_file:
        try:
            pickle.dump(report, result_file, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable return value is an error the parent can read
            result_file.seek(0)
            result_file.truncate()
            text = f"the return value could not be sent back to the notebook: {exc!r}"
            pickle.dump({"ok": False, "traceback": text}, result_file)
    os.replace(partial, call["result"])  # the parent sees a whole result or none
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
