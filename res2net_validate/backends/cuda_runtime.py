"""``CudaRuntime``: the small slice of the CUDA runtime (cuda-python) the TensorRT backend and the
timing code need -- device memory, pinned host memory, a stream, events and CUDA graphs -- as
checked calls that raise ``CudaError``.  Being one small class lets the backend's glue run against
a fake (tests/unit/fake_tensorrt.py) on machines without a GPU.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import CudaError


def import_cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6+), else ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


class CudaRuntime:
    """Thin, checked wrappers over cuda-python's runtime API (the calls TensorRT needs)."""

    def __init__(self, cudart=None):
        self.rt = cudart or import_cudart()

    def _check(self, result, what: str):
        # cuda-python returns (error, *values)
        err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if int(err) != 0:
            name = getattr(err, "name", str(err))
            try:
                detail = self.rt.cudaGetErrorString(err)[1]
                detail = detail.decode() if isinstance(detail, bytes) else str(detail)
            except Exception:  # the error string is a courtesy
                detail = ""
            # A failed call also leaves its error as CUDA's last error (an invalidated capture, a refused
            # instantiation, ...), where the next cudaGetLastError -- torch's and TensorRT's launch checks --
            # would find it long after it was reported here: clear it now (sticky errors stay regardless).
            try:
                self.rt.cudaGetLastError()
            except Exception:  # best effort, like the error string
                pass
            raise CudaError(f"{what} failed: {name} {detail}".strip())
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    # device
    def device_count(self) -> int:
        return int(self._check(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))

    def device_properties(self) -> tuple[str, tuple[int, int]]:
        device = self._check(self.rt.cudaGetDevice(), "cudaGetDevice")
        props = self._check(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        name = props.name
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
        return str(name).strip(), (int(props.major), int(props.minor))

    def driver_version(self) -> int:
        return int(self._check(self.rt.cudaDriverGetVersion(), "cudaDriverGetVersion"))

    # memory
    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc"))

    def free(self, pointer: int) -> None:
        self._check(self.rt.cudaFree(pointer), "cudaFree")

    def pinned_empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A numpy array in page-locked host memory (fast, truly asynchronous copies)."""
        import ctypes

        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        pointer = int(self._check(self.rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost"))
        buffer = (ctypes.c_byte * max(nbytes, 1)).from_address(pointer)
        return np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def pinned_free(self, array: np.ndarray) -> None:
        self._check(self.rt.cudaFreeHost(array.ctypes.data), "cudaFreeHost")

    def copy_htod_async(self, device_pointer: int, host: np.ndarray, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(device_pointer, host.ctypes.data, host.nbytes, kind, stream), "H2D copy")

    def copy_dtoh_async(self, host: np.ndarray, device_pointer: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, device_pointer, host.nbytes, kind, stream), "D2H copy")

    def copy_dtod_async(self, destination: int, source: int, nbytes: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self._check(self.rt.cudaMemcpyAsync(destination, source, int(nbytes), kind, stream), "D2D copy")

    # streams and events
    def stream_create(self):
        flags = self.rt.cudaStreamNonBlocking  # capture-friendly: no implicit sync with the legacy stream
        return self._check(self.rt.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")

    def stream_handle(self, stream) -> int:
        return int(stream)

    def stream_synchronize(self, stream) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream) -> None:
        self._check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def event_create(self):
        return self._check(self.rt.cudaEventCreate(), "cudaEventCreate")

    def event_record(self, event, stream) -> None:
        self._check(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def event_synchronize(self, event) -> None:
        self._check(self.rt.cudaEventSynchronize(event), "cudaEventSynchronize")

    def event_elapsed_ms(self, start, end) -> float:
        return float(self._check(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def event_destroy(self, event) -> None:
        self._check(self.rt.cudaEventDestroy(event), "cudaEventDestroy")

    # CUDA graphs
    def capture_graph(self, stream, enqueue: Callable[[], None]):
        """Capture what ``enqueue`` puts on ``stream`` into an instantiated graph.

        Every failure (the enqueue, cudaStreamEndCapture, cudaGraphInstantiate) ends the capture,
        destroys what it made and clears CUDA's last error before raising, as trtexec does, so the
        stream and the next checked call work for plain launches afterwards (``_check`` clears the
        error of any failed call; ``_abandon_capture`` handles a failed enqueue)."""
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        except BaseException:
            self._abandon_capture(stream)
            raise
        graph = self._check(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        try:
            try:
                result = self.rt.cudaGraphInstantiate(graph, 0)
            except TypeError:  # cuda-python 11.x: (graph, error-node buffer, flags)
                result = self.rt.cudaGraphInstantiate(graph, b"", 0)
            graph_exec = self._check(result, "cudaGraphInstantiate")
        finally:
            self.rt.cudaGraphDestroy(graph)  # the executable graph does not need it
        if isinstance(graph_exec, tuple):
            graph_exec = graph_exec[0]
        return graph_exec

    def _abandon_capture(self, stream) -> None:
        """What trtexec does when enqueueing fails under capture: end the capture, destroy
        whatever graph it returned and clear the error it left, so the stream is usable for
        plain launches afterwards.  Errors here are not reported: the enqueue error is."""
        result = self.rt.cudaStreamEndCapture(stream)
        err, graph = (result[0], result[1] if len(result) > 1 else None) if isinstance(result, tuple) else (result, None)
        if int(err) == 0 and graph is not None:
            self.rt.cudaGraphDestroy(graph)
        self.rt.cudaGetLastError()

    def graph_launch(self, graph_exec, stream) -> None:
        self._check(self.rt.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")

    def graph_destroy(self, graph_exec) -> None:
        self._check(self.rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
