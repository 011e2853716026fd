"""A Dask cluster started the way it runs on many machines: one scheduler and worker processes
launched as commands, joined over TCP by address — here all on 127.0.0.1.

Data flow of `cli_cluster`::

    the kernel                      its own process group each (start_new_session=True)
    ----------                      ---------------------------------------------------
    Popen("dask scheduler --host 127.0.0.1 --port 0 --scheduler-file F --idle-timeout …")
      wait for F (the address) ───> scheduler listening on tcp://127.0.0.1:<port>
    Popen("dask worker tcp://127.0.0.1:<port> --name worker-a --death-timeout …")  ×N
                                    each: a nanny process + a worker process it starts
    Client(address) ── wait_for_workers(N) ──> registered
    ... the chapter's demos (kill_worker(name) = SIGKILL to that worker's whole group) ...
    finally: close the client; kill_process_group for every group, then reap

Nothing outlives the block: each command runs in its own session, so killing its process group
reaches the nanny and the worker it started; the ``finally`` does it after an error or an
interrupt too. `helpers.runners.cleanup.kill_process_group` spares the group's resource tracker
until it has unlinked the semaphores the group left in /dev/shm. Nothing of a demo's cluster is
worth a graceful shutdown: its results are already gathered, and its files are removed with it.
Should the kernel itself be killed, ``--idle-timeout`` stops the scheduler and
``--death-timeout`` stops each worker that lost it, so not even that leaves them running.
Their logs go to files in a temporary directory (shown on request), never to the cell.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.course import LOOPBACK, check_int, check_loopback_host, check_timeout
from helpers.runners.cleanup import kill_process_group
from helpers.runners.dask import quiet_dask

__all__ = ["CliCluster", "cli_cluster", "scheduler_command", "worker_command"]

# The most workers the demo starts: each is two processes (nanny and worker), so 4 workers on a
# 2-core laptop already show more processes than cores.
MAX_CLI_WORKERS = 4
# Seconds an idle scheduler waits before it exits on its own: far longer than any demo cell,
# short enough that a scheduler orphaned by a killed kernel does not linger.
_IDLE_TIMEOUT_SECONDS = 120
# Seconds a worker that lost its scheduler keeps trying before it exits on its own.
_DEATH_TIMEOUT_SECONDS = 30
# A `dask scheduler` or `dask worker` command starts in 1-3 s (mostly imports) on a laptop.
_START_SECONDS = 60.0
# The client's close, and reaping a killed process, take far less than this: past it the block
# goes on (kill_process_group has already waited for the whole group).
_STOP_SECONDS = 1.0
# How often the kernel looks for the scheduler file while the scheduler starts.
_POLL_SECONDS = 0.05
# Letters for worker names: `worker-a`, `worker-b`, ... read more easily than numbers on a lane.
_NAMES = "abcdefgh"


def _dask_cli() -> list[str]:
    """The `dask` command of this interpreter's environment (its console script, or -m dask)."""
    script = Path(sys.executable).with_name("dask")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dask"]


def scheduler_command(scheduler_file: str, *, dashboard: bool = True) -> list[str]:
    """The scheduler's command line: 127.0.0.1, a free port, its address written to a file."""
    if not isinstance(scheduler_file, str) or not scheduler_file.endswith(".json") or \
            not Path(scheduler_file).parent.is_dir():
        raise ValueError("scheduler_file must be the path of a .json file in a folder that "
                         f"exists, got {scheduler_file!r}")
    return [*_dask_cli(), "scheduler", "--host", LOOPBACK, "--port", "0",
            "--scheduler-file", scheduler_file,
            *(["--dashboard-address", f"{LOOPBACK}:0"] if dashboard else ["--no-dashboard"]),
            "--idle-timeout", f"{_IDLE_TIMEOUT_SECONDS}s"]


def worker_command(address: str, name: str, threads: int = 1) -> list[str]:
    """One worker's command line: joins the scheduler at `address`, listens on 127.0.0.1."""
    check_int("threads", threads, 1, 4)
    host, _, port = address.removeprefix("tcp://").rpartition(":") \
        if isinstance(address, str) and address.startswith("tcp://") else ("", "", "")
    if not port.isdigit():
        raise ValueError(f"address must be a scheduler address such as 'tcp://127.0.0.1:8786', "
                         f"got {address!r}")
    check_loopback_host("address", host)  # the course's clusters never leave this machine
    if not isinstance(name, str) or not name.replace("-", "").isalnum() or len(name) > 40:
        raise ValueError(f"name must be a worker name of letters, digits and '-' (at most 40), "
                         f"got {name!r}")
    return [*_dask_cli(), "worker", address, "--name", name, "--nthreads", str(threads),
            "--nworkers", "1", "--host", LOOPBACK, "--no-dashboard",
            "--death-timeout", f"{_DEATH_TIMEOUT_SECONDS}s", "--memory-limit", "0"]


@dataclass
class CliCluster:
    """A running command-line cluster: its address, its processes, and a client connected to it."""

    address: str
    client: Any
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    logs: Path | None = None
    start_seconds: float = 0.0

    def worker_address(self, name: str) -> str:
        """The TCP address the scheduler knows worker `name` by."""
        for address, info in self.client.scheduler_info()["workers"].items():
            if info.get("name") == name:
                return address
        raise ValueError(f"name must be a running worker ({', '.join(self.worker_names())}), "
                         f"got {name!r}")

    def worker_names(self) -> list[str]:
        return sorted(info.get("name") for info in
                      self.client.scheduler_info()["workers"].values())

    def kill_worker(self, name: str) -> None:
        """SIGKILL worker `name` and its nanny at once, as if its machine lost power.

        Their resource tracker (multiprocessing's, started by the nanny) is spared by
        `kill_process_group` until it has unlinked the named semaphores they left in /dev/shm: a
        machine that lost power takes those with it; this one would keep them for ever.
        """
        process = self.processes.get(name)
        if process is None or not name.startswith("worker"):
            raise ValueError(f"name must be one of the workers {sorted(self.processes)[1:]}, "
                             f"got {name!r}")
        if process.poll() is None:
            kill_process_group(process.pid)  # its own session: the group id is its pid
        process.wait(_STOP_SECONDS)

    def log(self, name: str) -> str:
        """What process `name` logged (for a curious reader; the cell never shows it)."""
        return (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def pids(self) -> dict[str, list[int]]:
        """Each command's process and the processes it started (a worker's nanny starts one)."""
        import psutil

        found = {}
        for name, process in self.processes.items():
            try:
                top = psutil.Process(process.pid)
                found[name] = [process.pid] + [p.pid for p in top.children(recursive=True)]
            except psutil.Error:
                found[name] = []
        return found


def _stop_all(processes: dict[str, subprocess.Popen]) -> None:
    """Kill every command's process group and reap its leader: nothing is left, whatever its
    state."""
    for process in processes.values():
        # A group may outlive its leader (the nanny's worker): kill it even if the leader is gone.
        kill_process_group(process.pid)  # its own session: the group id is its pid
        try:
            process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass


def _start(name: str, command: list[str], logs: Path) -> subprocess.Popen:
    # Dask's processes keep spilled data and lock files in a scratch folder, by default a
    # shared ``dask-scratch-space`` in the temporary folder that outlives them: this one is
    # inside the cluster's own folder, removed with it.
    scratch = logs / "scratch"
    with open(logs / f"{name}.log", "wb") as log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1",
                                     "DASK_TEMPORARY_DIRECTORY": str(scratch)})


def _wait_for_address(path: Path, scheduler: subprocess.Popen, deadline: float) -> str:
    while time.monotonic() < deadline:
        if scheduler.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with code {scheduler.returncode}")
        try:
            return json.loads(path.read_text(encoding="utf-8"))["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(_POLL_SECONDS)
    raise TimeoutError(f"dask scheduler did not write {path.name} within the time limit")


@contextmanager
def cli_cluster(workers: int = 2, threads: int = 1, *,
                timeout: float = _START_SECONDS) -> Iterator[CliCluster]:
    """Start ``dask scheduler`` and `workers` ``dask worker`` commands, yield a connected cluster.

    Workers are named ``worker-a``, ``worker-b``, …; every process is stopped when the block
    ends, however it ends (see the module docstring).
    """
    check_int("workers", workers, 1, MAX_CLI_WORKERS)
    check_int("threads", threads, 1, 4)
    timeout = check_timeout("timeout", timeout)
    from distributed import Client

    logs = Path(tempfile.mkdtemp(prefix="cc-dask-"))
    processes: dict[str, subprocess.Popen] = {}
    commands: dict[str, list[str]] = {}
    client = None
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    try:
        with quiet_dask():
            file = logs / "scheduler.json"
            commands["scheduler"] = scheduler_command(str(file))
            processes["scheduler"] = _start("scheduler", commands["scheduler"], logs)
            address = _wait_for_address(file, processes["scheduler"], deadline)
            for letter in _NAMES[:workers]:
                name = f"worker-{letter}"
                commands[name] = worker_command(address, name, threads)
                processes[name] = _start(name, commands[name], logs)
            client = Client(address, timeout=max(1.0, deadline - time.monotonic()))
            client.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
            cluster = CliCluster(address, client, processes, commands, logs,
                                 time.perf_counter() - started)
        yield cluster
    finally:
        try:
            if client is not None:
                with quiet_dask():
                    client.close(timeout=_STOP_SECONDS)
        finally:
            _stop_all(processes)
            shutil.rmtree(logs, ignore_errors=True)
