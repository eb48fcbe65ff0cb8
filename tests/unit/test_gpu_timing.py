"""trtexec-style statistics and timing loop (pure python), and the cuda-python wrapper."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from res2net_validate.backends.cuda_runtime import CudaRuntime
from res2net_validate.backends.timing import (
    LoopResult,
    WallClockTimer,
    percentile,
    run_timed_loop,
    summarize_latencies,
    throughput_report,
    time_repeated,
)
from res2net_validate.errors import CudaError


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_percentile_matches_numpy_linear(n):
    values = np.random.default_rng(n).exponential(3.0, size=n)
    for q in (0, 1, 25, 50, 90, 95, 99, 99.9, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12, abs=1e-12)


def test_percentile_rejects_nonsense():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary():
    summary = summarize_latencies([4.0, 1.0, 3.0, 2.0, 100.0])
    assert (summary.count, summary.min, summary.max, summary.median) == (5, 1.0, 100.0, 3.0)
    assert summary.mean == pytest.approx(22.0)
    assert summary.p99 == pytest.approx(np.percentile([1, 2, 3, 4, 100], 99))
    assert "median 3.000 ms" in summary.describe()
    for bad in ([], [1.0, -1.0], [float("nan")]):
        with pytest.raises(ValueError):
            summarize_latencies(bad)


class StepClock:
    """A clock that advances a fixed step every time it is read."""

    def __init__(self, step: float):
        self.ticks = itertools.count()
        self.step = step

    def __call__(self) -> float:
        return next(self.ticks) * self.step


class FakeDeviceTimer:
    """Reports a fixed device time per launch and counts launches."""

    def __init__(self, ms: float):
        self.ms, self.launches = ms, 0

    def record(self, launch):
        launch()
        self.launches += 1
        return self.launches

    def elapsed_ms(self, handle):
        return self.ms


def test_loop_warms_up_then_runs_for_duration_and_min_iterations():
    launched = []
    timer = FakeDeviceTimer(2.5)
    # every clock read advances 10 ms: warm-up of 0.05 s, measurement of 0.2 s
    loop = run_timed_loop(
        lambda: launched.append(1), timer, warmup_s=0.05, duration_s=0.2, min_iterations=3, clock=StepClock(0.01)
    )
    warmups = len(launched) - loop.iterations
    assert warmups >= 1
    assert loop.iterations >= 3 and loop.device_ms == [2.5] * loop.iterations
    assert all(ms == pytest.approx(10.0) for ms in loop.host_ms)  # one clock step between start and end reads
    assert loop.wall_s >= 0.2


def test_loop_respects_min_and_max_iterations():
    timer = FakeDeviceTimer(1.0)
    assert run_timed_loop(lambda: None, timer, warmup_s=0, duration_s=0, min_iterations=4).iterations == 4
    loop = run_timed_loop(
        lambda: None, timer, warmup_s=0, duration_s=100, min_iterations=2, max_iterations=6, clock=StepClock(0.001)
    )
    assert loop.iterations == 6
    with pytest.raises(ValueError):
        run_timed_loop(lambda: None, timer, min_iterations=0)
    with pytest.raises(ValueError):
        run_timed_loop(lambda: None, timer, min_iterations=5, max_iterations=2)


def test_throughput_is_images_over_host_wall_time():
    loop = LoopResult(iterations=10, wall_s=0.5, device_ms=[40.0] * 10, host_ms=[50.0] * 10)
    report = throughput_report(loop, 32, h2d_ms=[1.0, 2.0], d2h_ms=[0.1], cuda_graph=True, notes=["n"])
    assert report.throughput == pytest.approx(32 * 10 / 0.5)
    data = report.as_dict()
    assert data["throughput_ips"] == pytest.approx(640.0) and data["cuda_graph"] is True
    assert data["compute_ms"]["median"] == 40.0 and data["h2d_ms"]["mean"] == 1.5 and data["d2h_ms"]["count"] == 1
    assert "throughput 640.00 img/s" in report.describe()
    assert "h2d_ms" not in throughput_report(loop, 32).as_dict()
    with pytest.raises(ValueError):
        throughput_report(LoopResult(0, 0.0), 32)


def test_wall_clock_timer_and_repeats():
    timer = WallClockTimer(clock=StepClock(0.002))
    calls = []
    times = time_repeated(lambda: calls.append(1), timer, 3)
    assert len(calls) == 4 and times == pytest.approx([2.0, 2.0, 2.0])


# ----------------------------------------------------------------------------- CudaRuntime


def test_cuda_runtime_raises_named_errors_from_the_real_cuda_python():
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-python is not installed")
    from res2net_validate.backends.devices import gpu_skip_reason

    if gpu_skip_reason() is None:
        pytest.skip("a GPU is present; this checks the error path")
    with pytest.raises(CudaError, match=r"cudaGetDeviceCount failed: cudaError"):
        CudaRuntime().device_count()


class FakeCudart:
    """Mimics cuda-python's calling convention: every call returns (error, *values)."""

    class Err(int):
        @property
        def name(self):
            return {0: "cudaSuccess", 700: "cudaErrorIllegalAddress", 900: "cudaErrorStreamCaptureUnsupported",
                    901: "cudaErrorStreamCaptureInvalidated"}[int(self)]

    cudaStreamCaptureMode = SimpleNamespace(cudaStreamCaptureModeThreadLocal=1)

    def __init__(self, old_instantiate=False, fail_at=None):
        self.old_instantiate = old_instantiate
        self.fail_at = fail_at  # "end" or "instantiate": that call returns an error, as the real one does
        self.calls = []

    def cudaGetErrorString(self, err):
        return self.Err(0), b"an illegal memory access was encountered"

    def cudaStreamBeginCapture(self, stream, mode):
        self.calls.append(("begin", mode))
        return (self.Err(0),)

    def cudaStreamEndCapture(self, stream):
        self.calls.append("end")
        if self.fail_at == "end":  # cudaErrorStreamCaptureInvalidated: no graph comes back
            return self.Err(901), None
        return self.Err(0), "graph"

    def cudaGraphInstantiate(self, graph, *args):
        if self.old_instantiate and len(args) == 1:
            raise TypeError("cudaGraphInstantiate() takes exactly 3 positional arguments")
        self.calls.append(("instantiate", args))
        if self.fail_at == "instantiate":
            return self.Err(900), None
        return (self.Err(0), "exec", "node") if self.old_instantiate else (self.Err(0), "exec")

    def cudaGraphDestroy(self, graph):
        self.calls.append(("destroy", graph))
        return (self.Err(0),)

    def cudaGetLastError(self):
        self.calls.append("clear")
        return (self.Err(0),)

    def cudaMalloc(self, size):
        return self.Err(700), None


@pytest.mark.parametrize("old", [False, True])
def test_capture_graph_handles_both_cuda_python_instantiate_signatures(old):
    cudart = FakeCudart(old_instantiate=old)
    enqueued = []
    graph_exec = CudaRuntime(cudart).capture_graph("stream", lambda: enqueued.append(1))
    assert graph_exec == "exec" and enqueued == [1]
    assert cudart.calls[0] == ("begin", 1) and cudart.calls[1] == "end"
    assert cudart.calls[-1] == ("destroy", "graph")  # the template graph; the executable one is kept


def test_a_failed_enqueue_under_capture_ends_it_destroys_the_graph_and_clears_the_error():
    cudart = FakeCudart()

    def enqueue():
        raise RuntimeError("TensorRT execute_async_v3 failed")

    with pytest.raises(RuntimeError, match="execute_async_v3 failed"):
        CudaRuntime(cudart).capture_graph("stream", enqueue)
    assert cudart.calls == [("begin", 1), "end", ("destroy", "graph"), "clear"]  # as trtexec recovers


@pytest.mark.parametrize(
    "fail_at, error, calls",
    [
        ("end", "cudaStreamEndCapture failed: cudaErrorStreamCaptureInvalidated", [("begin", 1), "end", "clear"]),
        ("instantiate", "cudaGraphInstantiate failed: cudaErrorStreamCaptureUnsupported",
         [("begin", 1), "end", ("instantiate", (0,)), "clear", ("destroy", "graph")]),
    ],
)  # fmt: skip
def test_a_failed_end_of_capture_or_instantiation_clears_the_last_error(fail_at, error, calls):
    cudart = FakeCudart(fail_at=fail_at)
    with pytest.raises(CudaError, match=error):
        CudaRuntime(cudart).capture_graph("stream", lambda: None)
    assert cudart.calls == calls  # "clear" is cudaGetLastError: the next checked call does not see a stale error


def test_cuda_errors_carry_name_and_description():
    cudart = FakeCudart()
    with pytest.raises(CudaError, match="cudaMalloc failed: cudaErrorIllegalAddress an illegal memory access"):
        CudaRuntime(cudart).malloc(16)
    assert cudart.calls == ["clear"]  # every failed checked call clears CUDA's last error, not only a capture's
