"""PyTorch eager backend: the FP32 reference on CPU or CUDA, and FP16 on CUDA.

It is the GPU path on machines without TensorRT and the reference the other backends are
compared with.  FP16 is a ``.half()`` copy of the model in channels_last layout; inputs
are cast to half at the boundary and logits back to float32, so callers always exchange
float32 NCHW arrays.  INT8 has no eager equivalent of the Q/DQ graph and is refused.

The module ``open()`` receives is the session's loaded checkpoint and may be shared, so it is never moved
or converted in place: GPU runners work on a copy.
"""

from __future__ import annotations

import copy
import os
from typing import Callable

import numpy as np

from ..errors import ValidateError
from .timing import ThroughputReport, Timer, WallClockTimer, run_timed_loop, throughput_report, time_repeated
from .base import RUNS_TORCH, Availability, PrecisionProof, RunnerInfo, layer_proof

INT8_REFUSAL = (
    "int8 is not supported by the torch backend (the INT8 model is an ONNX Q/DQ graph); "
    "use --backend onnxruntime or --backend tensorrt for int8"
)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class _TorchCudaTimer:
    """CUDA events on the current stream (torch's equivalent of CudaEventTimer)."""

    def __init__(self):
        import torch

        self.torch = torch
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def record(self, launch: Callable[[], None]):
        self.start.record()
        launch()
        self.end.record()
        return self.start, self.end

    def elapsed_ms(self, handle) -> float:
        start, end = handle
        end.synchronize()
        return float(start.elapsed_time(end))


class TorchRunner:
    def __init__(self, model, precision: str, device: str):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        if self.device.type == "cuda":
            model = copy.deepcopy(model).to(self.device, memory_format=torch.channels_last)
            if precision == "fp16":
                model = model.half()
            self.memory_format = torch.channels_last
            name = torch.cuda.get_device_name(self.device)
        else:
            self.memory_format = torch.contiguous_format
            name = f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
        self.model = model.eval()
        self.info = RunnerInfo(
            backend="torch",
            precision=precision,
            device=name,
            extra={
                "torch": torch.__version__,
                "torch_device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""),
                "memory_format": "channels_last" if self.memory_format is torch.channels_last else "contiguous",
            },
        )

    def precision_proof(self) -> PrecisionProof:
        """The dtype of every convolution and linear layer's weight in the module that runs."""
        torch = self.torch
        layers = [(name, type(module).__name__, str(module.weight.dtype).replace("torch.", ""))
                  for name, module in self.model.named_modules()
                  if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))]
        asked = str(self.dtype).replace("torch.", "")
        return layer_proof(self.precision, layers, f"the torch module's Conv2d/Linear weights (asked: {asked})",
                           {asked}, none_found="the module has no Conv2d or Linear layer")

    def _to_device(self, images: np.ndarray):
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(f"expected float32 NCHW images, got shape {images.shape}")
        tensor = self.torch.from_numpy(images).to(self.device, non_blocking=True)
        return tensor.to(dtype=self.dtype, memory_format=self.memory_format)

    def _forward(self, tensor):
        with self.torch.inference_mode():
            return self.model(tensor)

    def infer(self, images: np.ndarray) -> np.ndarray:
        logits = self._forward(self._to_device(images))
        return logits.float().cpu().numpy()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def timed_call(self, images: np.ndarray) -> Callable[[], None]:
        resident = self._to_device(images)  # copied once; the loop never touches the host
        self._sync()

        def run_once() -> None:
            self._forward(resident)
            self._sync()

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
        """trtexec-style numbers (see backends.timing): CUDA events on a GPU, wall clock on CPU."""
        resident = self._to_device(images)
        self._sync()
        timer: Timer = _TorchCudaTimer() if self.device.type == "cuda" else WallClockTimer()
        loop = run_timed_loop(
            lambda: self._forward(resident),
            timer,
            warmup_s=warmup_s,
            duration_s=duration_s,
            min_iterations=min_iterations,
        )
        h2d: list[float] = []
        d2h: list[float] = []
        if self.device.type == "cuda":
            pinned = self.torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).pin_memory()
            output = self._forward(resident)
            host_out = self.torch.empty(output.shape, dtype=output.dtype, pin_memory=True)
            h2d = time_repeated(lambda: pinned.to(self.device, non_blocking=True), timer, copy_repeats)
            d2h = time_repeated(lambda: host_out.copy_(output, non_blocking=True), timer, copy_repeats)
        return throughput_report(loop, len(images), h2d_ms=h2d, d2h_ms=d2h)

    def close(self) -> None:
        self.model = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()


class TorchBackend:
    name = "torch"
    runs = RUNS_TORCH
    int8_flavour = None  # no eager INT8 (INT8_REFUSAL)

    def __init__(self, device: str | None = None):
        self.requested_device = device  # None: CUDA when available, else CPU

    def device(self) -> str:
        if self.requested_device:
            return self.requested_device
        return "cuda" if _cuda_available() else "cpu"

    def availability(self) -> Availability:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            return Availability(False, f"torch is not importable ({exc}); pip install torch")
        if self.requested_device and self.requested_device.startswith("cuda") and not _cuda_available():
            return Availability(False, "needs a CUDA GPU: torch.cuda.is_available() is False")
        return Availability(True)

    def supports(self, precision: str) -> Availability:
        """Whether ``open(..., precision)`` can work here, and why not."""
        usable = self.availability()
        if not usable:
            return usable
        if precision == "int8":
            return Availability(False, INT8_REFUSAL)
        if not (known := Availability.of_precision(precision)):
            return known
        if precision == "fp16" and not self.device().startswith("cuda"):
            return Availability(
                False,
                "fp16 with the torch backend needs a CUDA GPU (CPU half-precision convolutions are not a "
                "meaningful reference); use fp32 on CPU, or --backend onnxruntime for fp16",
            )
        return Availability(True)

    def open(self, model, precision: str, batch_sizes: tuple[int, ...] = (32,)) -> TorchRunner:
        """``model``: the FP32 torch.nn.Module in eval mode, on CPU (copied, never changed, on a GPU)."""
        usable = self.supports(precision)
        if not usable:
            raise ValidateError(f"--backend torch --precision {precision}: {usable.reason}")
        return TorchRunner(model, precision, self.device())
