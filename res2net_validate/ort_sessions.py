"""ONNX Runtime sessions: the options the project runs them with, in one place."""

from __future__ import annotations


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
