"""The graphs a backend may ask for, built on first use and cached by content.

``Artifacts`` implements ``backends.base.ModelArtifacts``: FP32 export, the FP16 graph,
and the INT8 Q/DQ graph per target (ONNX Runtime or TensorRT flavour).
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .. import MODEL_NAME
from ..cache import ArtifactCache
from ..errors import ValidateError
from .export import Graph, fp16_graph, fp32_graph


class CalibrationSource:
    """Calibration batches plus a key that changes whenever their pixels do."""

    def __init__(self, images, preprocess, batch_size: int, description: str):
        self.images = images  # loader.PreprocessedImages (uint8 NCHW)
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.description = description

    @cached_property
    def key(self) -> str:
        digest = hashlib.sha256()
        for start in range(0, len(self.images.images), 64):
            rows = self.images.rows(start, min(start + 64, len(self.images.images)))  # checked as read
            digest.update(np.ascontiguousarray(rows).tobytes())
        digest.update(repr(self.preprocess.key_parts()).encode())
        return digest.hexdigest()

    @property
    def count(self) -> int:
        return len(self.images.images)

    def batches(self) -> Iterable[np.ndarray]:
        for images, _labels in self.images.batches(self.batch_size, self.preprocess):
            yield images


class Artifacts:
    def __init__(self, cache: ArtifactCache, weights: Path, calibration: Callable[[], CalibrationSource],
                 calib_settings, model_name: str = MODEL_NAME, progress: bool = True, int8_flavour: str = "auto"):
        self.cache = cache
        self.weights = Path(weights)
        self.model_name = model_name
        self._calibration = calibration
        self.calib_settings = calib_settings
        self.progress = progress
        self.int8_flavour = int8_flavour  # "auto": whatever the backend asks for
        self.graphs: dict[tuple[str, str], Graph] = {}
        self.int8_reports: dict[str, object] = {}

    def graph(self, precision: str, target: str = "onnxruntime") -> Path:
        return self.graph_info(precision, target).path

    def graph_info(self, precision: str, target: str = "onnxruntime") -> Graph:
        if precision == "int8" and self.int8_flavour != "auto":
            target = self.int8_flavour
        key = (precision, target if precision == "int8" else "any")
        if key not in self.graphs:
            self.graphs[key] = self._build(precision, target)
        return self.graphs[key]

    def _build(self, precision: str, target: str) -> Graph:
        if precision == "fp32":
            return fp32_graph(self.cache, self.weights, self.model_name)
        if precision == "fp16":
            return fp16_graph(self.cache, self.graph_info("fp32"))
        if precision == "int8":
            from .quantize import int8_graph

            calibration = self._calibration()
            result = int8_graph(
                self.cache,
                self.graph_info("fp32").path,
                calibration.batches,
                calibration_key=calibration.key,
                calibration_images=calibration.count,
                settings=self.calib_settings,
                flavour=target,
                progress=self.progress,
            )
            self.int8_reports[target] = result
            info = {"flavour": target, "calibration": calibration.description,
                    "unquantized_weights": list(result.unquantized_weights)}
            return Graph(result.path, "int8", result.built, info)
        raise ValidateError(f"--precision {precision!r}: unknown precision")

    def torch_model(self):
        from .checkpoint import load_model

        return load_model(self.weights, self.model_name)
