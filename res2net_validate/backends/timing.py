"""Timing the way trtexec does it, for any backend that can launch one batch.

trtexec's recipe (and ours):

* the input stays resident on the device; host<->device copies are timed on their own;
* a warm-up period (200 ms by default) before anything is recorded;
* per iteration, GPU time from a pair of CUDA events around the launch and host latency
  from the wall clock around launch + wait;
* throughput = images / host wall time of the whole measured loop.

The loop and the statistics are plain Python/numpy so they are tested on CPU; a timer is
anything with ``record(launch) -> handle`` and ``elapsed_ms(handle) -> float`` (waits for
the handle).  ``WallClockTimer`` serves CPUs; ``CudaEventTimer`` wraps CUDA events of a
``cuda_runtime.CudaRuntime``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:  # only an annotation: timing itself never calls CUDA
    from .cuda_runtime import CudaRuntime

# ----------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks,
    the same definition as ``numpy.percentile(..., method="linear")``."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} is outside 0..100")
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("percentile of an empty sequence")
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds; what trtexec prints for each of its latency lines."""

    count: int
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"mean {self.mean:.3f} ms, median {self.median:.3f} ms, p99 {self.p99:.3f} ms "
            f"(min {self.min:.3f}, max {self.max:.3f}, n={self.count})"
        )


def summarize_latencies(milliseconds: Sequence[float]) -> LatencySummary:
    values = [float(v) for v in milliseconds]
    if not values:
        raise ValueError("no latencies to summarise")
    if any(math.isnan(v) or v < 0 for v in values):
        raise ValueError("latencies must be non-negative numbers")
    return LatencySummary(
        count=len(values),
        mean=float(np.mean(values)),
        median=percentile(values, 50),
        p90=percentile(values, 90),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        min=min(values),
        max=max(values),
    )


# ----------------------------------------------------------------------------- timers


class Timer(Protocol):
    def record(self, launch: Callable[[], None]) -> Any:
        """Run ``launch`` (which may return before the work is done) between two marks."""

    def elapsed_ms(self, handle: Any) -> float:
        """Wait for the work recorded in ``handle``; its duration in milliseconds."""


class WallClockTimer:
    """For synchronous (CPU) work: the launch itself is the work."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock

    def record(self, launch: Callable[[], None]) -> tuple[float, float]:
        start = self.clock()
        launch()
        return start, self.clock()

    def elapsed_ms(self, handle: tuple[float, float]) -> float:
        start, end = handle
        return (end - start) * 1e3


class CudaEventTimer:
    """A start/end CUDA event pair per iteration on one stream, reused round-robin."""

    def __init__(self, cuda: CudaRuntime, stream: Any):
        self.cuda = cuda
        self.stream = stream
        self.start_event = cuda.event_create()
        self.end_event = cuda.event_create()

    def record(self, launch: Callable[[], None]) -> tuple[Any, Any]:
        self.cuda.event_record(self.start_event, self.stream)
        launch()
        self.cuda.event_record(self.end_event, self.stream)
        return self.start_event, self.end_event

    def elapsed_ms(self, handle: tuple[Any, Any]) -> float:
        start, end = handle
        self.cuda.event_synchronize(end)
        return self.cuda.event_elapsed_ms(start, end)

    def close(self) -> None:
        self.cuda.event_destroy(self.start_event)
        self.cuda.event_destroy(self.end_event)


# ----------------------------------------------------------------------------- the loop


@dataclass
class LoopResult:
    iterations: int
    wall_s: float  # host wall time of the measured loop
    device_ms: list[float] = field(default_factory=list)  # per iteration, from the timer
    host_ms: list[float] = field(default_factory=list)  # per iteration, launch until done


def run_timed_loop(
    launch: Callable[[], None],
    timer: Timer,
    *,
    warmup_s: float = 0.2,
    duration_s: float = 3.0,
    min_iterations: int = 10,
    max_iterations: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> LoopResult:
    """trtexec's loop: warm up for ``warmup_s``, then iterate for at least ``duration_s``
    and ``min_iterations``.  One batch is in flight at a time, so the device time of an
    iteration is its compute latency and host time adds launch + synchronisation."""
    if duration_s < 0 or warmup_s < 0:
        raise ValueError("warm-up and duration must be >= 0 seconds")
    if min_iterations < 1:
        raise ValueError("min_iterations must be >= 1")
    if max_iterations is not None and max_iterations < min_iterations:
        raise ValueError("max_iterations must be >= min_iterations")

    warm_start = clock()
    while True:  # at least one warm-up launch, so lazy initialisation is never timed
        timer.elapsed_ms(timer.record(launch))
        if clock() - warm_start >= warmup_s:
            break

    result = LoopResult(iterations=0, wall_s=0.0)
    loop_start = clock()
    while True:
        host_start = clock()
        handle = timer.record(launch)
        result.device_ms.append(timer.elapsed_ms(handle))
        host_end = clock()
        result.host_ms.append((host_end - host_start) * 1e3)
        result.iterations += 1
        done_time = host_end - loop_start >= duration_s and result.iterations >= min_iterations
        if done_time or (max_iterations is not None and result.iterations >= max_iterations):
            break
    result.wall_s = clock() - loop_start
    return result


@dataclass
class ThroughputReport:
    """What the performance test records (``as_dict`` goes into benchmark.extra_info)."""

    batch_size: int
    iterations: int
    wall_s: float
    throughput: float  # images per second, from host wall time
    compute: LatencySummary  # device time per batch (CUDA events; wall clock on CPU)
    host_latency: LatencySummary  # launch until the result is ready, per batch
    h2d: LatencySummary | None = None  # input copy per batch, measured separately
    d2h: LatencySummary | None = None  # output copy per batch, measured separately
    cuda_graph: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "batch_size": self.batch_size,
            "iterations": self.iterations,
            "wall_s": round(self.wall_s, 6),
            "throughput_ips": round(self.throughput, 3),
            "compute_ms": self.compute.as_dict(),
            "host_latency_ms": self.host_latency.as_dict(),
            "cuda_graph": self.cuda_graph,
        }
        if self.h2d is not None:
            out["h2d_ms"] = self.h2d.as_dict()
        if self.d2h is not None:
            out["d2h_ms"] = self.d2h.as_dict()
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def describe(self) -> str:
        lines = [
            f"throughput {self.throughput:.2f} img/s (batch {self.batch_size}, {self.iterations} iterations, "
            f"{self.wall_s:.2f} s{', CUDA graph' if self.cuda_graph else ''})",
            f"compute: {self.compute.describe()}",
            f"host latency: {self.host_latency.describe()}",
        ]
        if self.h2d is not None:
            lines.append(f"H2D copy: {self.h2d.describe()}")
        if self.d2h is not None:
            lines.append(f"D2H copy: {self.d2h.describe()}")
        return "\n".join(lines + self.notes)


def throughput_report(
    loop: LoopResult,
    batch_size: int,
    *,
    h2d_ms: Sequence[float] = (),
    d2h_ms: Sequence[float] = (),
    cuda_graph: bool = False,
    notes: Sequence[str] = (),
) -> ThroughputReport:
    if loop.iterations < 1 or loop.wall_s <= 0:
        raise ValueError("the timed loop recorded nothing")
    return ThroughputReport(
        batch_size=batch_size,
        iterations=loop.iterations,
        wall_s=loop.wall_s,
        throughput=batch_size * loop.iterations / loop.wall_s,
        compute=summarize_latencies(loop.device_ms),
        host_latency=summarize_latencies(loop.host_ms),
        h2d=summarize_latencies(h2d_ms) if h2d_ms else None,
        d2h=summarize_latencies(d2h_ms) if d2h_ms else None,
        cuda_graph=cuda_graph,
        notes=list(notes),
    )


def time_repeated(work: Callable[[], None], timer: Timer, repeats: int) -> list[float]:
    """``repeats`` timings of ``work`` (e.g. one host->device copy), after one untimed call."""
    timer.elapsed_ms(timer.record(work))
    return [timer.elapsed_ms(timer.record(work)) for _ in range(repeats)]
