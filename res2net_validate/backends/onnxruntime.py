"""ONNX Runtime backend: runs the FP32 / FP16 / INT8 Q/DQ graphs, on CPU by default.

ONNX Runtime's CPU provider inserts casts around FP16 nodes it has no kernel for and
fuses Q/DQ pairs into quantized kernels at load time, so every graph runs here.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .base import Availability, RunnerInfo


def cpu_description() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"CPU {model} ({os.cpu_count()} cores)".replace("  ", " ").strip()


class OnnxRuntimeRunner:
    def __init__(self, graph_path, precision: str, providers: list[str]):
        import onnxruntime as ort

        from ..quantize import cpu_session_options  # the options that fuse Q/DQ into QLinearConv

        self.session = ort.InferenceSession(str(graph_path), cpu_session_options(), providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        provider = self.session.get_providers()[0]
        device = cpu_description() if provider == "CPUExecutionProvider" else provider
        self.info = RunnerInfo(
            backend="onnxruntime",
            precision=precision,
            device=device,
            extra={"provider": provider, "onnxruntime": ort.__version__, "graph": str(graph_path)},
        )

    def infer(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: images})[0]

    def timed_call(self, images: np.ndarray) -> Callable[[], None]:
        import onnxruntime as ort

        # Bind once: the input stays where it is and the output buffer is reused.
        binding = self.session.io_binding()
        resident = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        binding.bind_ortvalue_input(self.input_name, resident)
        binding.bind_output(self.output_name)

        def run_once() -> None:
            self.session.run_with_iobinding(binding)

        run_once.keepalive = (binding, resident)  # the binding must outlive the callable
        return run_once

    def close(self) -> None:
        self.session = None


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, providers: list[str] | None = None):
        self.providers = providers or ["CPUExecutionProvider"]

    def availability(self) -> Availability:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not importable ({exc}); pip install onnxruntime")
        return Availability(True)

    def open(self, artifacts, precision: str, batch_sizes: tuple[int, ...] = (32,)) -> OnnxRuntimeRunner:
        return OnnxRuntimeRunner(artifacts.graph(precision, target="onnxruntime"), precision, self.providers)
