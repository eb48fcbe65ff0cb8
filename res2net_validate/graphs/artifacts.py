"""The graphs a run resolves before a backend opens, built on first use and cached by content:
FP32 export, the FP16 graph, and the INT8 Q/DQ graph per flavour (ONNX Runtime or TensorRT).
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..cache import ArtifactCache
from ..constants import INT8_GRAPH_FLAVOURS
from ..data.image_cache import release_pages
from ..errors import ValidateError
from .export import Graph, fp16_graph, fp32_graph
from .notes import Int8Build

if TYPE_CHECKING:  # checkpoint imports torch, needed only on an export cache miss
    from .checkpoint import Checkpoint


class CalibrationSource:
    """Calibration batches plus a key that changes whenever their pixels do."""

    def __init__(self, images, preprocess, batch_size: int, description: str):
        self.images = images  # data.image_cache.PreprocessedImages (uint8 NCHW)
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.description = description

    @cached_property
    def key(self) -> str:
        digest = hashlib.sha256()
        for start in range(0, len(self.images.images), 64):
            rows = self.images.rows(start, min(start + 64, len(self.images.images)))  # checked as read
            digest.update(np.ascontiguousarray(rows).tobytes())
            release_pages(rows)  # one pass over any number of images: resident memory stays one block
        digest.update(repr(self.preprocess.key_parts()).encode())
        return digest.hexdigest()

    @property
    def count(self) -> int:
        return len(self.images.images)

    def batches(self) -> Iterable[np.ndarray]:
        for images, _labels in self.images.batches(self.batch_size, self.preprocess):
            yield images


class Artifacts:
    """One run's graphs, each built (or read from the cache) once and kept in ``graphs`` for the
    notes.  Which INT8 flavour to build is the caller's decision (the session's), never made here."""

    def __init__(self, cache: ArtifactCache, checkpoint: Checkpoint, calibration: CalibrationSource | None,
                 calib_settings, progress: bool = True):
        self.cache = cache
        self.checkpoint = checkpoint  # its module is loaded only on an export cache miss
        self.calibration = calibration  # None: no calibration images, so no INT8 graph
        self.calib_settings = calib_settings
        self.progress = progress
        self.graphs: dict[tuple[str, str], Graph] = {}  # (precision, INT8 flavour or "any")

    def graph(self, precision: str, int8_flavour: str | None = None) -> Path:
        """The path of ``precision``'s graph (what an overriding ``res2net_artifacts`` fixture may swap)."""
        return self.graph_info(precision, int8_flavour).path

    def graph_info(self, precision: str, int8_flavour: str | None = None) -> Graph:
        """``precision``'s graph; INT8 is built in ``int8_flavour`` ("onnxruntime" or "tensorrt")."""
        if precision == "int8" and int8_flavour not in INT8_GRAPH_FLAVOURS:
            raise ValueError(f"an INT8 graph needs its Q/DQ flavour ({' or '.join(INT8_GRAPH_FLAVOURS)}), "
                             f"not {int8_flavour!r}")
        key = (precision, int8_flavour if precision == "int8" else "any")
        if key not in self.graphs:
            self.graphs[key] = self._build(precision, int8_flavour)
        return self.graphs[key]

    def _build(self, precision: str, int8_flavour: str | None) -> Graph:
        if precision == "fp32":
            return fp32_graph(self.cache, self.checkpoint.path, self.checkpoint.model_name, self.checkpoint.model)
        if precision == "fp16":
            return fp16_graph(self.cache, self.graph_info("fp32"))
        if precision == "int8":
            from .quantize import int8_graph

            calibration = self.calibration
            if calibration is None:
                raise ValueError("an INT8 graph needs calibration images (the caller checks for them first)")
            result = int8_graph(
                self.cache,
                self.graph("fp32"),
                calibration.batches,
                calibration_key=calibration.key,
                calibration_images=calibration.count,
                settings=self.calib_settings,
                flavour=int8_flavour,
                progress=self.progress,
            )
            build = Int8Build(int8_flavour, calibration.description, self.calib_settings.method,
                              self.calib_settings.percentile, tuple(result.unquantized_weights))
            return Graph(result.path, "int8", result.built, int8=build)
        raise ValidateError(f"--precision {precision!r}: unknown precision")
