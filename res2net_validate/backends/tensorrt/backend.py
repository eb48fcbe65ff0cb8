"""TensorRTBackend: availability, then a cached engine (built on a miss) opened as a runner.

It runs the ONNX graph it is given (INT8: the tensorrt Q/DQ flavour) and keeps its engines
and timing cache in the artifact cache it is constructed with.

An engine that is foreign, stale or does not deserialize is rebuilt with a warning,
never run.  CUDA memory, streams, events and graphs go through
``res2net_validate.backends.cuda_runtime.CudaRuntime`` (cuda-python).
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from typing import Callable

from .. import devices
from ...cache import file_sha256
from ..devices import TRT_INSTALL_HINT
from ...errors import ValidateError
from ..cuda_runtime import CudaRuntime
from ..base import RUNS_ONNX, Availability
from .builder import EngineBuilder, deserialize
from .engine import (
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
from .inspector import check_int8_graph, count_graph_convolutions
from .runner import TensorRTRunner


class TensorRTBackend:
    name = "tensorrt"
    runs = RUNS_ONNX
    int8_flavour = "tensorrt"  # Q/DQ placed where TensorRT fuses it

    def __init__(
        self,
        *,
        cache,
        trt=None,
        cuda: CudaRuntime | None = None,
        workspace_bytes: int | None = None,
        progress: bool = True,
    ):
        self.cache = cache  # cache.ArtifactCache for engines and the timing cache
        self._trt = trt  # injected by tests (FakeTensorRT); else imported on first use
        self._cuda = cuda
        self.workspace_bytes = workspace_bytes
        self.progress = progress

    # -- availability -----------------------------------------------------------------

    def _modules(self):
        if self._trt is None:
            self._trt = importlib.import_module("tensorrt")
        if self._cuda is None:
            self._cuda = CudaRuntime()
        return self._trt, self._cuda

    def availability(self) -> Availability:
        try:
            trt, cuda = self._modules()
        except Exception as exc:  # ImportError, or a stub wheel failing to load its libraries
            hint = devices.trt_install_hint(devices.device_report())  # the extra for this driver, if one is found
            return Availability(False, f"needs TensorRT: {hint} ({type(exc).__name__}: {exc})")
        version = str(getattr(trt, "__version__", ""))
        if not hasattr(trt, "Builder") or not hasattr(trt, "Runtime"):
            return Availability(
                False, f"needs TensorRT: the installed 'tensorrt' module is not TensorRT; {TRT_INSTALL_HINT}"
            )
        if not hasattr(trt, "TensorIOMode"):
            return Availability(False, f"needs TensorRT 10 or newer (found {version}); {TRT_INSTALL_HINT}")
        try:
            count = cuda.device_count()
        except Exception as exc:  # e.g. cudaErrorInsufficientDriver: CUDA 13 wheels on a CUDA 12 driver
            hint = devices.trt_install_hint(devices.device_report())
            return Availability(False, f"needs a CUDA GPU: {exc}; wheels matching the driver: {hint}")
        if count < 1:
            return Availability(False, "needs a CUDA GPU: none visible (check CUDA_VISIBLE_DEVICES)")
        return Availability(True)

    def supports(self, precision: str) -> Availability:
        if not (known := Availability.of_precision(precision)):
            return known
        return self.availability()

    # -- open -------------------------------------------------------------------------

    def open(self, graph, precision: str, batch_sizes: tuple[int, ...] = (32,)) -> "TensorRTRunner":
        """``graph``: the path of ``precision``'s ONNX graph (its INT8 one in the tensorrt flavour)."""
        usable = self.supports(precision)
        if not usable:
            raise ValidateError(f"--backend tensorrt: {usable.reason}")
        trt, cuda = self._modules()
        batches = profile_batches(batch_sizes)
        onnx_path = Path(graph)
        gpu_name, (major, minor) = cuda.device_properties()
        capability = f"{major}.{minor}"
        expected = EngineHeader(
            onnx_sha256=file_sha256(onnx_path),
            tensorrt_version=str(trt.__version__),
            gpu_name=gpu_name,
            compute_capability=capability,
            settings=engine_settings(precision, batch_sizes, self.workspace_bytes),
        )
        key_parts = engine_key_parts(
            expected.onnx_sha256, expected.tensorrt_version, gpu_name, capability, expected.settings
        )
        timing_cache = timing_cache_path(self.cache.root, expected.tensorrt_version, gpu_name, capability)

        # Not named "builder": the API manifest test reads that name as a trt.Builder.
        engine_builder = EngineBuilder(trt, self.workspace_bytes, self.progress)

        def build(tmp: Path) -> None:
            engine_builder.build_engine_dir(tmp, onnx_path, precision, batches, expected, timing_cache)

        entry, engine, header = self._load_or_build(self.cache, key_parts, build, expected)
        graph = count_graph_convolutions(onnx_path)
        check_int8_graph(precision, graph, onnx_path)
        runner = TensorRTRunner(trt, cuda, engine, precision, gpu_name)
        # A wrong-precision engine is not refused here: its proof lists the layers, and the
        # precision test fails on it (the counts are in info.extra either way).
        runner.bind_proof(graph, onnx_path, header.get("typing", ""))
        summary = runner.precision_proof().summary
        runner.info.extra.update(
            {
                "tensorrt": expected.tensorrt_version,
                "compute_capability": capability,
                "engine": str(entry.path / PLAN_NAME),
                "layers_json": str(entry.path / LAYERS_NAME),  # the inspector output behind the counts
                "engine_cached": not entry.built,
                "build_seconds": header.get("build_seconds"),
                "typing": header.get("typing"),
                "onnx": str(onnx_path),
                "profile": {"min": batches[0], "opt": batches[1], "max": batches[2]},
                "timing_cache": str(timing_cache),
                **summary,
                **trtexec_commands(
                    entry.path / PLAN_NAME, onnx_path, runner.input_name, runner.input_chw, batches, timing_cache
                ),
            }
        )
        return runner

    def _load_or_build(self, cache, key_parts: dict, build: Callable[[Path], None], expected: EngineHeader):
        trt = self._trt
        for attempt in (1, 2):
            entry = cache.get_or_build("engine", key_parts, build, suffix=".trt")
            problem = header_problem(entry.path, expected)
            engine = None
            if problem is None:
                engine = deserialize(trt, (entry.path / PLAN_NAME).read_bytes())
                if engine is None:
                    problem = f"could not be deserialized by TensorRT {trt.__version__}"
            if problem is None:
                header = json.loads((entry.path / HEADER_NAME).read_text())
                return entry, engine, header
            if entry.built or attempt == 2:
                raise RuntimeError(f"the TensorRT engine just built at {entry.path} is unusable: it {problem}")
            warnings.warn(
                f"cached TensorRT engine {entry.path} {problem}; rebuilding it (it is never run)",
                RuntimeWarning,
                stacklevel=3,
            )
            cache.discard(entry.path)
        raise AssertionError("unreachable")
