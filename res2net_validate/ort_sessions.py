"""ONNX Runtime sessions: the one place that builds them, and the options the project runs them with."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

CPU_PROVIDERS = ("CPUExecutionProvider",)


def cpu_session_options(threads: int | None = None):
    """ORT session options for speed on CPU: every graph optimisation (this is what fuses the
    Q/DQ pairs into QLinearConv and friends) and one intra-op thread per core."""
    import os

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.log_severity_level = 3
    return options


def quiet_session_options():
    """ORT's default options, but errors only in the log (no warnings on stderr)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return options


def inference_session(model, options=None, providers: Sequence[str] = CPU_PROVIDERS):
    """A session on ``model``: a graph file path, serialized bytes, or an ``onnx.ModelProto``.

    ``options`` None is ORT's defaults; ``providers`` defaults to the CPU provider.
    """
    import onnxruntime as ort

    if isinstance(model, (str, Path)):
        source = str(model)
    elif isinstance(model, bytes):
        source = model
    else:
        source = model.SerializeToString()
    return ort.InferenceSession(source, options, providers=list(providers))


def exposing(model, names: Sequence[str]):
    """A copy of ``model`` (an ``onnx.ModelProto``) that also outputs every tensor in ``names``."""
    import onnx

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    existing = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(onnx.ValueInfoProto(name=name) for name in dict.fromkeys(names) if name not in existing)
    return exposed
