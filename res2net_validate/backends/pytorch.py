"""PyTorch eager backend: the FP32 reference on CPU or CUDA, and FP16 on CUDA.

It is the GPU path on machines without TensorRT and the reference the other backends are
compared with.  FP16 is a ``.half()`` copy of the model in channels_last layout; inputs
are cast to half at the boundary and logits back to float32, so callers always exchange
float32 NCHW arrays.  INT8 has no eager equivalent of the Q/DQ graph and is refused.

FP32 on CUDA is IEEE float32: torch lets cuDNN convolutions run in TF32 by default (Ampere and
later), so every forward of a CUDA runner runs under ``CudaMathMode``, which turns TF32 off for
convolutions and matmuls and restores the process's flags afterwards; the precision proof reads
the flags that were in effect when the forward ran.  Timing follows trtexec: ``cudnn.benchmark``
picks algorithms during warm-up, then the forward is captured into a CUDA graph (one launch
instead of hundreds of kernel launches per batch); when capture fails, eager launches are timed
and the reason is reported.

The module ``open()`` receives is the session's loaded checkpoint and may be shared, so it is never moved
or converted in place: GPU runners work on a copy.
"""

from __future__ import annotations

import contextlib
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


class CudaMathMode:
    """The process-wide torch flags that decide how a CUDA forward computes, set around each
    forward of one runner and restored afterwards (other runners in the process may differ).

    fp32: TF32 off for cuDNN convolutions and cuBLAS matmuls (IEEE float32).  fp16: the weights
    are half, TF32 does not apply, the flags are left alone.  ``cudnn.benchmark`` is on, as
    trtexec times tactics before it runs: each new input shape is autotuned once.
    ``allow_tf32=True`` exists only to show what an unfixed runner does (the proof catches it)."""

    def __init__(self, torch, precision: str, allow_tf32: bool | None = None):
        self.torch = torch
        self.precision = precision
        self.allow_tf32 = (False if precision == "fp32" else None) if allow_tf32 is None else allow_tf32
        self._saved: list[tuple] = []

    def _flags(self) -> tuple[bool, bool, bool]:
        backends = self.torch.backends
        return backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32, backends.cudnn.benchmark

    def _set(self, cudnn_tf32: bool, matmul_tf32: bool, benchmark: bool) -> None:
        backends = self.torch.backends
        backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = cudnn_tf32, matmul_tf32
        backends.cudnn.benchmark = benchmark

    def __enter__(self) -> "CudaMathMode":
        saved = self._flags()
        self._saved.append(saved)
        tf32 = self.allow_tf32
        self._set(saved[0] if tf32 is None else tf32, saved[1] if tf32 is None else tf32, True)
        return self

    def __exit__(self, *exc) -> None:
        self._set(*self._saved.pop())

    def in_effect(self) -> dict[str, bool]:
        """The flags torch reports right now (call it inside the ``with``)."""
        cudnn_tf32, matmul_tf32, benchmark = self._flags()
        return {"cudnn.allow_tf32": bool(cudnn_tf32), "cuda.matmul.allow_tf32": bool(matmul_tf32),
                "cudnn.benchmark": bool(benchmark)}  # fmt: skip


def math_mode_for(torch, device_type: str, precision: str) -> CudaMathMode | None:
    """What a runner on ``device_type`` runs its forwards under (None: nothing to set on CPU)."""
    return CudaMathMode(torch, precision) if device_type == "cuda" else None


def layer_precisions(torch, model, flags: dict[str, bool] | None) -> list[tuple[str, str, str]]:
    """(name, op, what it computes in) per Conv2d/Linear: the weight's dtype, or "tf32" for a
    float32 layer that ran while TF32 was allowed for its kind of kernel (``flags``: the
    ``CudaMathMode.in_effect()`` of the forward; None on CPU, where TF32 does not apply)."""
    layers = []
    for name, module in model.named_modules():
        if not isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            continue
        dtype = str(module.weight.dtype).replace("torch.", "")
        flag = "cudnn.allow_tf32" if isinstance(module, torch.nn.Conv2d) else "cuda.matmul.allow_tf32"
        runs_in = "tf32" if dtype == "float32" and flags is not None and flags[flag] else dtype
        layers.append((name, type(module).__name__, runs_in))
    return layers


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
        self.math_mode = math_mode_for(torch, self.device.type, precision)
        self.flags_seen: dict[str, bool] | None = None  # CudaMathMode.in_effect() of the last forward
        self._graph = None  # the captured CUDA graph and its static output, kept alive while timed
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
        if self.math_mode is not None:
            with self.math_mode as mode:
                self.info.extra["torch_flags"] = mode.in_effect()

    def precision_proof(self) -> PrecisionProof:
        """What each Conv2d and Linear layer of the module that runs computes in: its weight's
        dtype and, on CUDA, the TF32 flags in effect during the last forward (or, before any,
        the ones the runner sets): FP32 convolutions that ran with TF32 allowed offend."""
        torch = self.torch
        flags = self.flags_seen
        if self.math_mode is not None and flags is None:
            with self.math_mode as mode:
                flags = mode.in_effect()
        asked = str(self.dtype).replace("torch.", "")
        checked = f"the torch module's Conv2d/Linear weights (asked: {asked})"
        if flags is not None:
            checked += " and torch's TF32 flags during its forward (" + ", ".join(
                f"{name}={value}" for name, value in flags.items() if "tf32" in name) + ")"
        proof = layer_proof(self.precision, layer_precisions(torch, self.model, flags), checked, {asked},
                            none_found="the module has no Conv2d or Linear layer")  # fmt: skip
        if flags is not None:
            proof.summary["torch_flags"] = dict(flags)
        return proof

    def _to_device(self, images: np.ndarray):
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(f"expected float32 NCHW images, got shape {images.shape}")
        tensor = self.torch.from_numpy(images).to(self.device, non_blocking=True)
        return tensor.to(dtype=self.dtype, memory_format=self.memory_format)

    def _forward(self, tensor):
        mode = self.math_mode if self.math_mode is not None else contextlib.nullcontext()
        with mode, self.torch.inference_mode():
            if self.math_mode is not None:
                self.flags_seen = self.math_mode.in_effect()
            return self.model(tensor)

    def infer(self, images: np.ndarray) -> np.ndarray:
        logits = self._forward(self._to_device(images))
        return logits.float().cpu().numpy()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _launcher(self, resident) -> tuple[Callable[[], None], bool, list[str]]:
        """(launch one batch, whether it is a CUDA graph replay, notes).  On CUDA: warm-up
        forwards on a side stream (cudnn.benchmark autotunes there; capture needs it), then the
        forward captured into a CUDA graph; a failed capture falls back to eager launches."""
        eager = lambda: self._forward(resident)  # noqa: E731
        if self.device.type != "cuda":
            return eager, False, []
        torch = self.torch
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._forward(resident)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._sync()
        self._graph = None  # release an earlier capture's memory first
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                output = self._forward(resident)
        except Exception as exc:  # e.g. an op that cannot be captured
            with contextlib.suppress(Exception):
                self._sync()  # surfaces (and so clears) an error the failed capture left behind
            note = f"CUDA graph capture failed ({type(exc).__name__}: {str(exc)[:200]}); eager launches timed"
            self.info.extra.update(cuda_graph=False, cuda_graph_problem=note)
            return eager, False, [note]
        self._graph = (graph, output)
        self.info.extra["cuda_graph"] = True
        return graph.replay, True, []

    def timed_call(self, images: np.ndarray) -> Callable[[], None]:
        resident = self._to_device(images)  # copied once; the loop never touches the host
        self._sync()
        launch, _, _ = self._launcher(resident)

        def run_once() -> None:
            launch()
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
        """trtexec-style numbers (see backends.timing): on a GPU, a CUDA graph of the forward where
        capture works, GPU time per batch from CUDA events and throughput from host wall time; wall
        clock on CPU."""
        resident = self._to_device(images)
        self._sync()
        launch, cuda_graph, notes = self._launcher(resident)
        timer: Timer = _TorchCudaTimer() if self.device.type == "cuda" else WallClockTimer()
        loop = run_timed_loop(launch, timer, warmup_s=warmup_s, duration_s=duration_s, min_iterations=min_iterations)
        h2d: list[float] = []
        d2h: list[float] = []
        if self.device.type == "cuda":
            pinned = self.torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).pin_memory()
            output = self._forward(resident)
            host_out = self.torch.empty(output.shape, dtype=output.dtype, pin_memory=True)
            h2d = time_repeated(lambda: pinned.to(self.device, non_blocking=True), timer, copy_repeats)
            d2h = time_repeated(lambda: host_out.copy_(output, non_blocking=True), timer, copy_repeats)
        return throughput_report(loop, len(images), h2d_ms=h2d, d2h_ms=d2h, cuda_graph=cuda_graph, notes=notes)

    def close(self) -> None:
        self.model = None
        self._graph = None
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
