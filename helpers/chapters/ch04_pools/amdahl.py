"""Amdahl's law, measured: a job with a serial part and a parallel part, on 1…N pool workers.

    speed-up(n) = 1 / (f + (1 - f) / n)        f: the fraction of the work that stays serial

Data flow::

    total_seconds, serial_fraction ──> serial part: cpu_task in the kernel
                                       parallel part: n equal cpu_task chunks on a warm pool
    workers = 1, 2, … N  ──> time_job(pool, …) ──> wall times
                         ──> speed-ups over the whole job done in the kernel
    fit_serial_fraction(speed-ups for 1 < n ≤ cores) ──> f, the curve drawn through the points

Points beyond the number of cores are measured and drawn, but not fitted: there the limit is the
machine, not the serial part. On one core no point is fitted at all: the workers take turns on
it, every speed-up stays near 1×, and `AmdahlRun` says so instead of fitting a number.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from helpers.course import (
    QUICK,
    check_callable,
    check_float,
    check_int,
    check_start_method,
    check_timeout,
    usable_cores,
)
from helpers.runners import process_pool
from helpers.workloads import MAX_ITERATIONS, cpu_task, iterations_for

__all__ = ["AmdahlRun", "amdahl_speedup", "fit_serial_fraction", "measure_amdahl", "plot_amdahl",
           "time_job"]

# Enough work that a pool's dispatch (a few ms) is small next to it; quick mode keeps tests short.
DEFAULT_TOTAL_SECONDS = 0.3 if QUICK else 0.8
# A clearly visible serial part: with 20 % serial, 2 cores give at most 1.67×, 8 cores 3.3×.
DEFAULT_SERIAL_FRACTION = 0.2
# The curve is drawn to this many workers, to show where a bigger machine would end up.
_CURVE_WORKERS = 16
# amdahl_speedup's largest worker count: far past any machine; the limit itself is 1/f.
_MAX_WORKERS = 1_000_000
# A warm pool's dispatch adds a few percent to the fitted serial fraction; a fit more than this
# above the built-in fraction is not overhead but a busy machine.
_OVERHEAD_MARGIN = 0.1


def amdahl_speedup(serial_fraction: float, workers: int | float) -> float:
    """The best speed-up `workers` can give a job whose `serial_fraction` cannot be split."""
    check_float("serial_fraction", serial_fraction, 0.0, 1.0)
    check_float("workers", workers, 1, _MAX_WORKERS)  # the limit itself is 1/f
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / workers)


def fit_serial_fraction(workers: Sequence[int], speedups: Sequence[float]) -> float:
    """The serial fraction whose Amdahl curve best fits the measured points (least squares).

    Amdahl's law is linear in f once inverted: 1/S - 1/n = f (1 - 1/n), so f has a closed form.
    Points with n = 1 carry no information about f and are skipped. The fit is clamped to
    [0, 1]: a point above the ideal line (measurement noise) would otherwise give f < 0.
    """
    workers, speedups = list(workers), list(speedups)
    if len(workers) != len(speedups) or not workers:
        raise ValueError(f"workers and speedups must be non-empty lists of the same length, got "
                         f"{len(workers)} and {len(speedups)}")
    for n in workers:
        check_int("each of workers", n, 1, 10_000)
    for s in speedups:
        check_float("each of speedups", s, 1e-6, 10_000.0)
    pairs = [(n, s) for n, s in zip(workers, speedups) if n > 1]
    if not pairs:
        raise ValueError("workers must include at least one count above 1 to fit a fraction")
    num = sum((1 / s - 1 / n) * (1 - 1 / n) for n, s in pairs)
    den = sum((1 - 1 / n) ** 2 for n, s in pairs)
    return min(1.0, max(0.0, num / den))


@dataclass
class AmdahlRun:
    workers: list[int]
    seconds: list[float]
    serial_seconds: float  # the whole job in the kernel
    serial_fraction: float  # the fraction built into the job
    cores: int
    start_method: str

    @property
    def speedups(self) -> list[float]:
        return [self.serial_seconds / s for s in self.seconds]

    @property
    def fitted_fraction(self) -> float | None:
        """The serial fraction fitted on the points that had a core per worker; None where no
        point had (one core: the workers take turns, and the speed-ups say nothing about f)."""
        usable = [(n, s) for n, s in zip(self.workers, self.speedups)
                  if 1 < n <= self.cores]
        if not usable:
            return None
        return fit_serial_fraction(*zip(*usable))

    def __str__(self) -> str:
        measured = ", ".join(f"{n}: {s:.2f}×" for n, s in zip(self.workers, self.speedups))
        f = self.fitted_fraction
        if f is None:
            f0 = self.serial_fraction
            return (f"speed-up by workers — {measured}\n"
                    f"no serial fraction fitted: {self._why_no_fit()} With free cores the "
                    f"built-in {f0:.0%} would allow at most {amdahl_speedup(f0, 2):.2f}× on 2 "
                    f"workers, {amdahl_speedup(f0, 4):.2f}× on 4, and "
                    f"{1 / f0 if f0 else float('inf'):.1f}× however many workers.")
        # Pool overhead adds a few points to f; far more means the cores were not the job's own.
        why = ("the extra is pool overhead" if f <= self.serial_fraction + _OVERHEAD_MARGIN else
               "far above the built-in part: other programs were using the cores")
        return (f"speed-up by workers — {measured}\n"
                f"built-in serial fraction {self.serial_fraction:.0%}; fitted from the measurement "
                f"{f:.1%} ({why}); Amdahl's limit with that fraction: "
                f"{1 / f if f else float('inf'):.1f}×")

    def _why_no_fit(self) -> str:
        if self.cores == 1:
            return ("this machine gives the course one core (its affinity mask allows only "
                    "one), so the workers take turns on it and every speed-up stays near 1× "
                    "whatever the serial part — these points cannot tell f.")
        return (f"no point had more than one worker on a core of its own ({self.cores} cores, "
                f"workers {self.workers}).")


def time_job(pool, total: int, serial_fraction: float, workers: int, *,
             timeout: float = 120.0) -> float:
    """Seconds for one job of `total` iterations on `pool`: its serial part in the kernel, then
    the rest cut into `workers` equal parts, one per worker."""
    if not callable(getattr(pool, "map_async", None)):
        raise TypeError(f"pool must be a multiprocessing Pool, got {type(pool).__name__}")
    check_int("total", total, 0, MAX_ITERATIONS)
    check_float("serial_fraction", serial_fraction, 0.0, 1.0)
    check_int("workers", workers, 1, 64)
    timeout = check_timeout("timeout", timeout)
    serial = round(total * serial_fraction)
    share, extra = divmod(total - serial, workers)
    parts = [share + (1 if i < extra else 0) for i in range(workers)]
    started = time.perf_counter()
    cpu_task(serial)  # the part that cannot be split: the workers wait meanwhile
    pool.map_async(cpu_task, parts, chunksize=1).get(timeout)  # the rest, one part per worker
    return time.perf_counter() - started


def measure_amdahl(max_workers: int | None = None, *, start_method: str,
                   total_seconds: float = DEFAULT_TOTAL_SECONDS,
                   serial_fraction: float = DEFAULT_SERIAL_FRACTION,
                   progress: Callable[[float, str], None] | None = None) -> AmdahlRun:
    """Time the job on 1…`max_workers` warm pool workers (default: cores + 2)."""
    cores = usable_cores() or 1
    max_workers = cores + 2 if max_workers is None else max_workers
    start_method = _check_measure(max_workers, start_method, total_seconds, serial_fraction,
                                  progress)
    total = iterations_for(total_seconds)
    started = time.perf_counter()
    cpu_task(total)  # the whole job in the kernel: the baseline
    serial_seconds = time.perf_counter() - started
    counts, seconds = list(range(1, max_workers + 1)), []
    for n in counts:
        if progress is not None:
            progress(n / (max_workers + 1), f"{n} workers…")
        with process_pool(n, start_method) as pool:  # terminated at the end of the block
            pool.map_async(time.sleep, [0.02] * n, chunksize=1).get(60)  # all workers up
            seconds.append(time_job(pool, total, serial_fraction, n,
                                    timeout=60 + 20 * total_seconds))
    return AmdahlRun(counts, seconds, serial_seconds, serial_fraction, cores, start_method)


def _check_measure(max_workers, start_method, total_seconds, serial_fraction, progress) -> str:
    check_int("max_workers", max_workers, 1, 64)
    start_method = check_start_method(start_method)
    check_float("total_seconds", total_seconds, 0.01, 30.0)
    check_float("serial_fraction", serial_fraction, 0.0, 1.0)
    if progress is not None:
        check_callable("progress", progress)
    return start_method


def plot_amdahl(run: AmdahlRun, ax) -> list:
    """Measured points, the fitted Amdahl curve to 16 workers, its limit, and the core count.

    Where nothing can be fitted (one core), the curve drawn is the built-in fraction's, dashed
    and labelled as what free cores would show.
    """
    fitted = run.fitted_fraction
    f = run.serial_fraction if fitted is None else fitted
    curve = (f"Amdahl, fitted f = {f:.1%}" if fitted is not None else
             f"Amdahl for the built-in f = {f:.0%}: what free cores would show")
    xs = [1 + i * (_CURVE_WORKERS - 1) / 200 for i in range(201)]
    artists = [
        ax.plot(xs, xs, ":", color="#999999", label="ideal (no serial part)")[0],
        ax.plot(xs, [amdahl_speedup(f, x) for x in xs], "-" if fitted is not None else "--",
                color="#E69F00", lw=2, label=curve)[0],
        ax.plot(run.workers, run.speedups, "o", color="#0072B2", ms=9,
                label=f"measured ({run.start_method})")[0],
        ax.axvline(run.cores, color="#D55E00", alpha=0.5,
                   label=f"{run.cores} core{'s' if run.cores > 1 else ''} here"),
    ]
    if f > 0:
        artists.append(ax.axhline(1 / f, color="#E69F00", ls="--", alpha=0.6,
                                  label=f"limit 1/f = {1 / f:.1f}×"))
    ax.set_xlim(0.5, _CURVE_WORKERS + 0.5)
    ax.set_ylim(0, min(_CURVE_WORKERS, (1 / f if f else _CURVE_WORKERS)) * 1.15 + 0.5)
    ax.set_xlabel("workers", fontsize=12)
    ax.set_ylabel("speed-up over the kernel alone", fontsize=12)
    ax.grid(alpha=0.3)
    # Lower right stays empty for any f: the curve rises from (1, 1) and levels off below 1/f.
    artists.append(ax.legend(frameon=False, loc="lower right", fontsize=10))
    return artists
