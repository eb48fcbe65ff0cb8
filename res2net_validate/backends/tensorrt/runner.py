"""TensorRTRunner: one execution context on its own stream, for scoring and for timing.

Timing follows trtexec: the input resident on the device, a captured CUDA graph when
capture works, compute from CUDA events, H2D/D2H copies of one batch timed separately.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...errors import ValidateError
from ..cuda_runtime import CudaRuntime
from ..timing import CudaEventTimer, ThroughputReport, run_timed_loop, throughput_report, time_repeated
from ..base import PrecisionProof, RunnerInfo
from .inspector import GraphConvolutions, engine_information, engine_precision_proof, parse_engine_information


class TensorRTRunner:
    """One execution context on its own stream; buffers sized for the profile's max batch."""

    def __init__(self, trt, cuda: CudaRuntime, engine, precision: str, device_name: str):
        self.trt, self.cuda, self.engine = trt, cuda, engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f"expected one input and one output tensor, engine has {inputs} -> {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        for name in names:
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise ValidateError(
                    f"engine tensor {name!r} is {engine.get_tensor_dtype(name)}, not float32: build the "
                    "FP16 graph with keep_io_types=True so that inputs and logits stay float32"
                )
        self.input_chw = tuple(int(d) for d in engine.get_tensor_shape(self.input_name))[1:]
        profile_shapes = engine.get_tensor_profile_shape(self.input_name, 0)  # (min, opt, max)
        self.opt_batch, self.max_batch = int(profile_shapes[1][0]), int(profile_shapes[2][0])
        self.context = engine.create_execution_context()
        self.stream = cuda.stream_create()
        self._closed = False
        self._device: list[int] = []
        self._pinned: list[np.ndarray] = []
        self._graphs: list[Any] = []

        self._set_shape(self.max_batch)
        self.output_item_shape = tuple(int(d) for d in self.context.get_tensor_shape(self.output_name))[1:]
        self.d_input = self._malloc(self.max_batch * int(np.prod(self.input_chw)) * 4)
        self.d_output = self._malloc(self.max_batch * int(np.prod(self.output_item_shape)) * 4)
        self.host_input = self._pinned_empty((self.max_batch, *self.input_chw))
        self.host_output = self._pinned_empty((self.max_batch, *self.output_item_shape))
        self.info = RunnerInfo(backend="tensorrt", precision=precision, device=device_name, extra={})
        self._proof_inputs: tuple[GraphConvolutions, Path, str] | None = None

    def bind_proof(self, graph: GraphConvolutions, onnx_path: Path, typing: str) -> None:
        """What ``precision_proof`` compares the engine with: the graph it was built from."""
        self._proof_inputs = (graph, Path(onnx_path), typing)

    def precision_proof(self) -> PrecisionProof:
        """Inspect this runner's engine through its own execution context."""
        self._require_open()
        if self._proof_inputs is None:
            raise RuntimeError("TensorRTRunner.precision_proof needs bind_proof(graph, onnx_path, typing) first")
        graph, onnx_path, typing = self._proof_inputs
        self._set_shape(self.opt_batch)  # the shapes the engine was tuned for
        layers = parse_engine_information(engine_information(self.trt, self.engine, self.context))
        return engine_precision_proof(self.info.precision, layers, graph, onnx_path, typing)

    def _require_open(self) -> None:
        if self._closed:  # its pinned buffers and device memory are freed
            raise RuntimeError("this TensorRT runner is closed; open a new one with TensorRTBackend.open()")

    def _malloc(self, nbytes: int) -> int:
        pointer = self.cuda.malloc(nbytes)
        self._device.append(pointer)
        return pointer

    def _pinned_empty(self, shape) -> np.ndarray:
        array = self.cuda.pinned_empty(tuple(shape), np.float32)
        self._pinned.append(array)
        return array

    def _set_shape(self, batch: int) -> None:
        if not self.context.set_input_shape(self.input_name, (batch, *self.input_chw)):
            raise RuntimeError(
                f"TensorRT rejected input shape {(batch, *self.input_chw)} (profile max {self.max_batch})"
            )

    def _enqueue(self, batch: int, d_input: int) -> None:
        self._set_shape(batch)
        self.context.set_tensor_address(self.input_name, d_input)
        self.context.set_tensor_address(self.output_name, self.d_output)
        if not self.context.execute_async_v3(self.cuda.stream_handle(self.stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log above)")

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_chw or len(images) == 0:
            raise ValueError(
                f"expected float32 images shaped (N, {', '.join(map(str, self.input_chw))}), got {images.shape}"
            )
        return images

    def infer(self, images: np.ndarray) -> np.ndarray:
        self._require_open()
        images = self._check_images(images)
        logits = np.empty((len(images), *self.output_item_shape), dtype=np.float32)
        for start in range(0, len(images), self.max_batch):
            chunk = images[start : start + self.max_batch]
            batch = len(chunk)
            self.host_input[:batch] = chunk
            self.cuda.copy_htod_async(self.d_input, self.host_input[:batch], self.stream)
            self._enqueue(batch, self.d_input)
            self.cuda.copy_dtoh_async(self.host_output[:batch], self.d_output, self.stream)
            self.cuda.stream_synchronize(self.stream)
            logits[start : start + batch] = self.host_output[:batch]
        return logits

    def _prepare_timed(self, images: np.ndarray) -> tuple[Callable[[], None], bool, str, int]:
        """An asynchronous launcher for this batch, input resident on the device; a CUDA
        graph when capture works (trtexec --useCudaGraph), else plain execute_async_v3."""
        self._require_open()
        images = self._check_images(images)
        batch = len(images)
        if batch > self.max_batch:
            raise ValueError(f"batch {batch} exceeds the engine profile's max batch {self.max_batch}")
        d_input = self._malloc(images.nbytes)
        self.host_input[:batch] = images
        self.cuda.copy_htod_async(d_input, self.host_input[:batch], self.stream)
        self._enqueue(batch, d_input)  # one plain run first: TensorRT sets up shape-dependent state
        self.cuda.stream_synchronize(self.stream)
        try:
            graph = self.cuda.capture_graph(self.stream, lambda: self._enqueue(batch, d_input))
        except Exception as exc:  # some engines or drivers refuse capture; time without it
            note = f"CUDA graph capture failed ({type(exc).__name__}: {exc}); timing plain execute_async_v3"

            def launch() -> None:
                self._enqueue(batch, d_input)

            return launch, False, note, d_input
        self._graphs.append(graph)

        def launch_graph() -> None:
            self.cuda.graph_launch(graph, self.stream)

        return launch_graph, True, "", d_input

    def timed_call(self, images: np.ndarray) -> Callable[[], None]:
        launch, _, _, _ = self._prepare_timed(images)

        def run_once() -> None:
            launch()
            self.cuda.stream_synchronize(self.stream)

        return run_once

    def benchmark(
        self,
        images: np.ndarray,
        *,
        warmup_s: float = 0.2,
        duration_s: float = 3.0,
        min_iterations: int = 10,
        copy_repeats: int = 20,
    ) -> ThroughputReport:
        """trtexec-style measurement: compute from CUDA events, throughput from host wall
        time, H2D/D2H copies of one batch timed separately."""
        launch, used_graph, note, d_input = self._prepare_timed(images)
        batch = len(images)
        timer = CudaEventTimer(self.cuda, self.stream)
        try:
            loop = run_timed_loop(
                launch, timer, warmup_s=warmup_s, duration_s=duration_s, min_iterations=min_iterations
            )
            h2d = time_repeated(
                lambda: self.cuda.copy_htod_async(d_input, self.host_input[:batch], self.stream), timer, copy_repeats
            )
            d2h = time_repeated(
                lambda: self.cuda.copy_dtoh_async(self.host_output[:batch], self.d_output, self.stream),
                timer,
                copy_repeats,
            )
        finally:
            timer.close()
        return throughput_report(
            loop, batch, h2d_ms=h2d, d2h_ms=d2h, cuda_graph=used_graph, notes=[note] if note else []
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.cuda.stream_synchronize(self.stream)
        finally:
            for graph in self._graphs:
                self.cuda.graph_destroy(graph)
            for pointer in self._device:
                self.cuda.free(pointer)
            for array in self._pinned:
                self.cuda.pinned_free(array)
            self.cuda.stream_destroy(self.stream)
            self._graphs, self._device, self._pinned = [], [], []
            self.context = None
            self.engine = None
