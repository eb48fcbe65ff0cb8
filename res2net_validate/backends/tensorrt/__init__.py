"""TensorRT backend: strongly typed engines from the FP16 / INT8 Q/DQ ONNX graphs.

The steps, one module each:

- ``engine``: build settings, the engine's cache key, ``header.json``, the trtexec lines;
- ``inspector``: the engine inspector's JSON read as layer precisions, and the precision proof;
- ``builder``: ONNX parser, builder config, optimisation profile, timing cache (TensorRT glue);
- ``runner``: ``TensorRTRunner``, one execution context for scoring and trtexec-style timing;
- ``backend``: ``TensorRTBackend``, which finds or builds the engine and opens a runner.

Every call into TensorRT goes through the module object the backend was given (the real
one, or the FakeTensorRT of the unit tests).  The names below are re-exported so that
``from res2net_validate.backends.tensorrt import X`` keeps working; a test that patches a
name patches it in the module that uses it.
"""

from .backend import TensorRTBackend
from .builder import EngineBuilder
from .engine import (
    ENGINE_FORMAT,
    HEADER_NAME,
    LAYERS_NAME,
    PLAN_NAME,
    EngineHeader,
    engine_key_parts,
    engine_settings,
    header_problem,
    profile_batches,
    timing_cache_path,
    trtexec_commands,
)
from .inspector import (
    EXPECTED_CONV_PRECISION,
    FORMATS_HIDDEN,
    EngineInspectionError,
    EngineLayers,
    EnginePrecisionError,
    GraphConvolutions,
    LayerInfo,
    check_int8_graph,
    count_graph_convolutions,
    dtype_from_text,
    engine_information,
    engine_precision_proof,
    engine_precision_summary,
    formats_hidden,
    parse_engine_information,
    tensor_precision,
)
from .runner import TensorRTRunner

__all__ = [
    "ENGINE_FORMAT", "EXPECTED_CONV_PRECISION", "FORMATS_HIDDEN", "HEADER_NAME", "LAYERS_NAME", "PLAN_NAME",
    "EngineBuilder", "EngineHeader", "EngineInspectionError", "EngineLayers", "EnginePrecisionError",
    "GraphConvolutions", "LayerInfo", "TensorRTBackend", "TensorRTRunner", "check_int8_graph",
    "count_graph_convolutions", "dtype_from_text", "engine_information", "engine_key_parts",
    "engine_precision_proof", "engine_precision_summary", "engine_settings", "formats_hidden",
    "header_problem", "parse_engine_information", "profile_batches", "tensor_precision",
    "timing_cache_path", "trtexec_commands",
]  # fmt: skip
