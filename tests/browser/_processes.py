"""Process bookkeeping: every process the browser tests start must be gone when they end."""

from __future__ import annotations

import contextlib
import os
import secrets

import psutil

PROCESS_EXIT_SECONDS = 10.0  # a shut-down kernel or closed renderer exits in well under 1 s


class ProcessGuard:
    """Remembers every process the browser tests started, to prove at the end that none is left.

    Two nets: the descendants of pytest seen along the way, and every process carrying this
    session's mark in its environment (the server, kernels, their workers, Chromium), which
    also finds orphans whose parent died and who were re-parented away from pytest.
    """

    MARK = "CC_BROWSER_SESSION"

    def __init__(self) -> None:
        self.baseline = {p.pid for p in psutil.Process().children(recursive=True)}
        self.seen: dict[int, psutil.Process] = {}
        self.mark = f"{os.getpid()}-{secrets.token_hex(6)}"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this environment) with the session's mark added."""
        return {**(os.environ if base is None else base), self.MARK: self.mark}

    def marked(self) -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter():
            if p.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if p.environ().get(self.MARK) == self.mark and is_alive(p):
                    found.append(p)
        return found

    def track(self, *roots: psutil.Process | int | None) -> list[psutil.Process]:
        """Note `roots` and all their descendants now; returns the newly seen ones."""
        new = []
        for root in roots:
            if root is None:
                continue
            try:
                proc = root if isinstance(root, psutil.Process) else psutil.Process(root)
                family = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                continue
            for p in family:
                if p.pid not in self.seen:
                    self.seen[p.pid] = p
                    new.append(p)
        return new

    def track_own_children(self) -> None:
        """Note every descendant of pytest that was not there before the browser tests."""
        for p in psutil.Process().children(recursive=True):
            if p.pid not in self.baseline:
                self.track(p)

    def leftovers(self, timeout: float = PROCESS_EXIT_SECONDS) -> list[str]:
        """Wait for the tracked processes to exit; kill and describe the ones that do not."""
        self.track_own_children()
        self.track(*self.marked())
        alive = [p for p in self.seen.values() if is_alive(p)]
        _, alive = psutil.wait_procs(alive, timeout=timeout)
        described = []
        for p in alive:
            with contextlib.suppress(psutil.Error):
                described.append(f"pid {p.pid}: {' '.join(p.cmdline())[:160]}")
                p.kill()
        return described


def is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(procs: list[psutil.Process], timeout: float = PROCESS_EXIT_SECONDS) -> list[str]:
    """Wait for `procs` to exit; kill and describe the ones that do not."""
    _, alive = psutil.wait_procs([p for p in procs if is_alive(p)], timeout=timeout)
    out = []
    for p in alive:
        with contextlib.suppress(psutil.Error):
            out.append(f"pid {p.pid}: {' '.join(p.cmdline())[:160]}")
            p.kill()
    return out
