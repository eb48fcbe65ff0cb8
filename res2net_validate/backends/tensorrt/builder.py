"""Building an engine: ONNX parser, builder config, optimisation profile, timing cache.

Precision lives in the graph, so engines are built strongly typed
(``NetworkDefinitionCreationFlag.STRONGLY_TYPED``) and no precision builder flag is ever
set, except in the weakly typed fallback that only TensorRT 10.x still has (11.x
deprecates the flag: without it, flags 0 is strongly typed).  Every call goes through
``self._trt`` (the real module, or the FakeTensorRT of the unit tests); features are
detected with hasattr so that 10.x and 11.x both work.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...cache import atomic_write_bytes
from ...errors import EngineBuildFailure, EngineParseFailure, ValidateError
from .engine import HEADER_NAME, LAYERS_NAME, PLAN_NAME, EngineHeader
from .inspector import engine_information

_LOGGERS: dict[int, Any] = {}
_RUNTIMES: dict[int, Any] = {}


def _logger(trt):
    # TensorRT wants one logger per process; keep one per module object.
    if id(trt) not in _LOGGERS:
        _LOGGERS[id(trt)] = trt.Logger(trt.Logger.WARNING)
    return _LOGGERS[id(trt)]


def _runtime(trt):
    # One IRuntime for the process: it must outlive every engine deserialized from it.
    if id(trt) not in _RUNTIMES:
        _RUNTIMES[id(trt)] = trt.Runtime(_logger(trt))
    return _RUNTIMES[id(trt)]


def _progress_monitor(trt, label: str, enabled: bool):
    """A tqdm bar per top-level build phase, through IProgressMonitor where it exists (10.x+)."""
    if not enabled or not hasattr(trt, "IProgressMonitor"):
        return None
    from tqdm import tqdm

    class TqdmMonitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.bars = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                self.bars[phase_name] = tqdm(total=num_steps, desc=f"{label}: {phase_name}", leave=False)

        def step_complete(self, phase_name, step):
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True  # never cancel

        def phase_finish(self, phase_name):
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return TqdmMonitor()


def deserialize(trt, plan: bytes):
    """The engine in ``plan``, or None when this TensorRT cannot load it."""
    try:
        return _runtime(trt).deserialize_cuda_engine(plan)
    except Exception:  # some versions raise instead of returning None
        return None


class EngineBuilder:
    """Builds one engine directory (plan, header, layers) from an ONNX graph."""

    def __init__(self, trt, workspace_bytes: int | None = None, progress: bool = True):
        self._trt = trt
        self.workspace_bytes = workspace_bytes
        self.progress = progress

    def build_engine_dir(
        self,
        tmp: Path,
        onnx_path: Path,
        precision: str,
        batches: tuple[int, int, int],
        expected: EngineHeader,
        timing_cache: Path,
    ) -> None:
        started = time.perf_counter()
        plan, typing = self._build_plan(onnx_path, precision, batches, timing_cache)
        engine = deserialize(self._trt, plan)
        if engine is None:
            raise RuntimeError(f"TensorRT built an engine from {onnx_path} that it cannot deserialize")
        header = EngineHeader(
            **{**asdict(expected), "plan_sha256": hashlib.sha256(plan).hexdigest(), "plan_bytes": len(plan)},
        )
        header.typing = typing
        header.build_seconds = round(time.perf_counter() - started, 3)
        tmp.mkdir(parents=True)
        (tmp / PLAN_NAME).write_bytes(plan)
        (tmp / LAYERS_NAME).write_text(engine_information(self._trt, engine))
        (tmp / HEADER_NAME).write_text(header.to_json())

    def _typing_modes(self) -> list[str]:
        trt = self._trt
        has_strong_flag = hasattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED")
        has_precision_flags = hasattr(getattr(trt, "BuilderFlag", None), "FP16")  # 10.x; gone in 11.x
        if not has_strong_flag and not has_precision_flags:
            # TensorRT 11 deprecated STRONGLY_TYPED ("always enabled"); without it and without
            # precision flags, every network is strongly typed: flags 0 means strong.
            return ["strong"]
        return (["strong"] if has_strong_flag else []) + (["weak"] if has_precision_flags else [])

    def _network_flags(self, mode: str) -> int:
        flag = getattr(getattr(self._trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED", None)
        return 1 << int(flag) if mode == "strong" and flag is not None else 0

    def _build_plan(self, onnx_path: Path, precision: str, batches, timing_cache: Path) -> tuple[bytes, str]:
        modes = self._typing_modes()
        if "strong" not in modes:
            warnings.warn(
                f"TensorRT {self._trt.__version__} has no NetworkDefinitionCreationFlag.STRONGLY_TYPED; building "
                f"{onnx_path} weakly typed with BuilderFlag.{'INT8' if precision == 'int8' else 'FP16'}",
                RuntimeWarning,
                stacklevel=2,
            )
        failures: list[str] = []
        for mode in modes:
            try:
                plan = self._build_once(onnx_path, precision, batches, timing_cache, mode)
            except EngineParseFailure as exc:
                failures.append(f"{mode}ly typed: ONNX parser: {exc}")
            except EngineBuildFailure as exc:
                failures.append(f"{mode}ly typed: {exc}")
            else:
                if mode == "weak":
                    typing = f"weak (fallback: {failures[0] if failures else 'no STRONGLY_TYPED flag'})"
                elif self._network_flags(mode) == 0:
                    typing = "strong (implicit: no STRONGLY_TYPED flag, this TensorRT is always strongly typed)"
                else:
                    typing = "strong"
                return plan, typing
            if mode != modes[-1]:
                warnings.warn(
                    f"strongly typed TensorRT build of {onnx_path} failed ({failures[-1]}); retrying weakly "
                    f"typed with BuilderFlag.{'INT8' if precision == 'int8' else 'FP16'}",
                    RuntimeWarning,
                    stacklevel=2,
                )
        if all("ONNX parser" in f for f in failures):
            raise ValidateError(f"TensorRT cannot parse {onnx_path}: {' | '.join(failures)}")
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path}: {' | '.join(failures)}")

    def _build_once(self, onnx_path: Path, precision: str, batches, timing_cache: Path, mode: str) -> bytes:
        trt = self._trt
        logger = _logger(trt)
        builder = trt.Builder(logger)
        network = builder.create_network(self._network_flags(mode))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise EngineParseFailure("; ".join(errors) or "parse_from_file returned False")

        config = builder.create_builder_config()
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        if self.workspace_bytes:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(self.workspace_bytes))
        if mode == "weak":  # only here: weak typing honours the graph's types only with these flags
            config.set_flag(trt.BuilderFlag.INT8 if precision == "int8" else trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for index in range(network.num_inputs):
            tensor = network.get_input(index)
            shape = tuple(tensor.shape)
            low, opt, high = batches
            if shape[0] != -1 and not low == opt == high == shape[0]:
                raise ValidateError(
                    f"{onnx_path}: input {tensor.name!r} has a static batch of {shape[0]}, but the tensorrt "
                    f"backend needs batches {low}..{high}; export the graph with a dynamic batch dimension"
                )
            rest = shape[1:]
            if any(d < 0 for d in rest):
                raise ValidateError(f"{onnx_path}: input {tensor.name!r} has dynamic non-batch dims {shape}")
            profile.set_shape(tensor.name, (low, *rest), (opt, *rest), (high, *rest))
        config.add_optimization_profile(profile)
        self._load_timing_cache(config, timing_cache)
        monitor = _progress_monitor(trt, f"TensorRT {precision} engine", self.progress)
        if monitor is not None:
            config.progress_monitor = monitor
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineBuildFailure("build_serialized_network returned None (see the TensorRT log above)")
        self._save_timing_cache(config, timing_cache)
        return bytes(memoryview(serialized))

    @staticmethod
    def _read_timing_cache(config, data: bytes):
        """create_timing_cache returns None for a blob it cannot read (some builds raise)."""
        try:
            return config.create_timing_cache(data)
        except Exception:
            return None

    def _load_timing_cache(self, config, path: Path) -> None:
        data = path.read_bytes() if path.is_file() else b""
        cache = self._read_timing_cache(config, data) if data else None
        if data and cache is None:
            warnings.warn(f"TensorRT timing cache {path} is unreadable; starting a new one", stacklevel=3)
        if cache is None:
            cache = self._read_timing_cache(config, b"")
        # ignore_mismatch=False: the file is already specific to this TensorRT and GPU
        if cache is None or not config.set_timing_cache(cache, False):
            warnings.warn(f"TensorRT refused the timing cache {path}; building without one", stacklevel=3)

    def _save_timing_cache(self, config, path: Path) -> None:
        from filelock import FileLock

        current = config.get_timing_cache()
        if current is None:  # no cache was attached (see _load_timing_cache): nothing to keep
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):  # another worker may have added entries meanwhile
            if path.is_file():
                old = self._read_timing_cache(config, path.read_bytes())
                if old is not None:  # an unreadable old file is simply replaced
                    current.combine(old, False)
            blob = current.serialize()
            if blob is not None:
                atomic_write_bytes(path, bytes(memoryview(blob)))
