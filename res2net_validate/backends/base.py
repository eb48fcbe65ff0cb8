"""The small protocol every backend implements.

A backend declares what it runs (``runs``: an ONNX graph or the torch module, and for INT8
which Q/DQ flavour) and the session hands ``open()`` exactly that, resolved beforehand: a
backend never exports, converts or calibrates.  Precision lives in the graph (TensorRT 11 is
strongly typed): backends only execute what they are given, they never choose precisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from ..constants import PRECISIONS  # noqa: F401 - re-exported: backends speak of precisions


@dataclass
class Availability:
    usable: bool
    reason: str = ""  # why not, phrased as what the user can do about it

    def __bool__(self) -> bool:
        return self.usable

    @classmethod
    def of_precision(cls, precision: str) -> "Availability":
        """Refuses a precision no backend knows (settings already refuse it from the command line)."""
        if precision in PRECISIONS:
            return cls(True)
        return cls(False, f"precision {precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")


@dataclass
class RunnerInfo:
    backend: str
    precision: str
    device: str  # e.g. "CPU (2 cores)" or "NVIDIA H100 80GB HBM3"
    extra: dict = field(default_factory=dict)  # backend-specific facts for the report


@dataclass
class PrecisionProof:
    """What a runner really executes, checked against the precision it was asked for.

    ``offending`` names each compute layer (Conv/Gemm/MatMul, or a TensorRT convolution) that
    does not run in ``precision``, as "name [what it runs in]"; empty means proven.
    """

    precision: str
    checked: str  # what was inspected, e.g. "the optimized model ONNX Runtime executes"
    layers: int  # compute layers inspected
    offending: list[str] = field(default_factory=list)
    unproven: str = ""  # why nothing could be proven (no layer information), as what to do about it
    summary: dict = field(default_factory=dict)  # backend-specific counts for the report

    @property
    def proven(self) -> bool:
        return self.layers > 0 and not self.offending and not self.unproven

    def as_dict(self) -> dict:
        return {"precision": self.precision, "checked": self.checked, "layers": self.layers,
                "offending": list(self.offending), "unproven": self.unproven, "proven": self.proven,
                **self.summary}


# What ``Backend.runs`` may say: the input ``open()`` receives.
RUNS_ONNX = "onnx"  # the path of the precision's ONNX graph
RUNS_TORCH = "torch"  # the FP32 torch.nn.Module in eval mode, on CPU (shared: never changed in place)


def layer_proof(precision: str, layers: list[tuple[str, str, str]], checked: str, accepted: set[str],
                none_found: str) -> PrecisionProof:
    """The proof from (name, op, what it runs in) per compute layer: those not ``accepted`` offend."""
    from collections import Counter

    offending = [f"{name or '?'} ({op}) [{runs_in}]" for name, op, runs_in in layers if runs_in not in accepted]
    return PrecisionProof(precision, checked, len(layers), offending, unproven="" if layers else none_found,
                          summary={"layer_precisions": dict(Counter(runs_in for *_, runs_in in layers))})


@runtime_checkable
class Runner(Protocol):
    info: RunnerInfo

    def precision_proof(self) -> PrecisionProof:
        """Inspect what this runner executes (never only the file on disk) and list the compute
        layers that are not in ``info.precision``."""

    def infer(self, images: np.ndarray) -> np.ndarray:
        """float32 NCHW normalised images (host) -> float32 logits (host), any batch size."""

    def timed_call(self, images: np.ndarray) -> Callable[[], None]:
        """A zero-argument callable running one batch with the input kept resident on the
        device where the backend allows (no host<->device copies); for FPS loops.
        The callable must block until the result is ready."""

    def benchmark(self, images: np.ndarray, *, duration_s: float = 3.0):
        """trtexec-style throughput, latency percentiles and copies (``timing.ThroughputReport``),
        or None where the backend has no such loop of its own (ONNX Runtime on CPU)."""

    def close(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    name: str
    runs: str  # RUNS_ONNX or RUNS_TORCH: what open() receives
    int8_flavour: str | None  # the INT8 Q/DQ flavour it runs ("onnxruntime" or "tensorrt"); None: no INT8

    def availability(self) -> Availability: ...

    def supports(self, precision: str) -> Availability:
        """Whether ``open(..., precision)`` can work here, and why not (as what to do about it)."""

    def open(self, model: Any, precision: str, batch_sizes: tuple[int, ...]) -> Runner:
        """A runner for ``model``: the ONNX graph's path (RUNS_ONNX) or the torch module (RUNS_TORCH)."""
