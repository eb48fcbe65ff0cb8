"""TensorRT backend: strongly typed engines from the FP16 / INT8 Q/DQ ONNX graphs.

The steps, one module each:

- ``engine``: build settings, the engine's cache key, ``header.json``, the trtexec lines;
- ``inspector``: the engine inspector's JSON read as layer precisions, and the precision proof;
- ``builder``: ONNX parser, builder config, optimisation profile, timing cache (TensorRT glue);
- ``runner``: ``TensorRTRunner``, one execution context for scoring and trtexec-style timing;
- ``backend``: ``TensorRTBackend``, which finds or builds the engine and opens a runner.

Every call into TensorRT goes through the module object the backend was given (the real
one, or the FakeTensorRT of the unit tests).  Only the backend is exported here; the steps
are imported from their own modules.
"""

from .backend import TensorRTBackend

__all__ = ["TensorRTBackend"]
