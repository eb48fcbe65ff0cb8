"""Backend registry.  ``auto`` means TensorRT where usable, else ONNX Runtime."""

from __future__ import annotations

from ..errors import ValidateError
from .base import PRECISIONS, Availability, Backend, PrecisionProof, Runner, RunnerInfo  # noqa: F401

from ..constants import BACKEND_NAMES  # noqa: F401


def get_backend(name: str, cache) -> Backend:
    """``cache``: the ArtifactCache a backend keeps its own builds in (TensorRT engines)."""
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend()
    if name == "tensorrt":
        from .tensorrt import TensorRTBackend

        return TensorRTBackend(cache=cache)
    if name == "torch":
        from .pytorch import TorchBackend

        return TorchBackend()
    if name == "auto":
        return resolve_auto(cache)
    raise ValidateError(f"--backend {name!r}: unknown; choose one of {', '.join(BACKEND_NAMES)}")


def resolve_auto(cache) -> Backend:
    # The TensorRT backend imports tensorrt lazily and reports a missing wheel or GPU through
    # availability(), so asking it is always safe.
    tensorrt = get_backend("tensorrt", cache)
    return tensorrt if tensorrt.availability() else get_backend("onnxruntime", cache)
