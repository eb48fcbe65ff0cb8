"""TensorRT backend: strongly typed engines from the FP16 / INT8 Q/DQ ONNX graphs.

Precision lives in the graph, so engines are built strongly typed
(``NetworkDefinitionCreationFlag.STRONGLY_TYPED``) and no precision builder flag is ever
set, except in the weakly typed fallback that only TensorRT 10.x still has (11.x
deprecates the flag: without it, flags 0 is strongly typed).  The runner's
``precision_proof()`` reads the engine inspector's JSON, through an execution context with
the input shapes set, and names every convolution that does not run in the asked
precision; an FP16 engine with FP32 convolutions fails the precision test, not a slow pass.

Engines live in the artifact cache as a directory ``engine/<key>.trt/`` holding
``model.engine`` (the plan, loadable by trtexec), ``header.json`` (what it was built from
and for) and ``layers.json`` (the inspector's output).  The key hashes the ONNX bytes,
the TensorRT version, the GPU name and compute capability and the build settings; the
header is compared again on load, and an engine that is foreign, stale or does not
deserialize is rebuilt with a warning, never run.  The builder's timing cache is kept
beside them, keyed by TensorRT version + GPU.

Every call into TensorRT is in this module and goes through ``self.trt`` (the real
module, or the FakeTensorRT of the unit tests); features are detected with hasattr so
that 10.x and 11.x both work.  CUDA memory, streams, events and graphs go through
``res2net_validate.gpu_timing.CudaRuntime`` (cuda-python).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..cache import atomic_write_bytes, content_key, file_sha256
from .. import devices
from ..devices import TRT_INSTALL_HINT
from ..errors import ValidateError
from ..gpu_timing import CudaEventTimer, CudaRuntime, ThroughputReport, run_timed_loop, throughput_report, time_repeated
from .base import PRECISIONS, Availability, PrecisionProof, RunnerInfo

ENGINE_FORMAT = 1  # bump when the engine directory layout or the build recipe changes
PLAN_NAME = "model.engine"
HEADER_NAME = "header.json"
LAYERS_NAME = "layers.json"
EXPECTED_CONV_PRECISION = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8"}


class EnginePrecisionError(ValidateError):
    """The engine does not run its convolutions in the precision its graph asks for."""


class EngineInspectionError(ValueError):
    """The inspector's output cannot be read (e.g. not built with DETAILED verbosity)."""


# ============================================================================ build settings


def profile_batches(batch_sizes: tuple[int, ...]) -> tuple[int, int, int]:
    """(min, opt, max) batch of the optimisation profile: min 1; opt and max the largest
    batch asked for, which is the benchmark batch (``--batch-size``).  The smaller ones
    (single images, the last partial batch) only need to fit in the profile."""
    sizes = tuple(batch_sizes)
    if not sizes or any(not isinstance(b, (int, np.integer)) or isinstance(b, bool) or b < 1 for b in sizes):
        raise ValidateError(f"--batch-size: batch sizes {sizes!r} must be positive integers")
    largest = int(max(sizes))
    return 1, largest, largest


def engine_settings(precision: str, batch_sizes: tuple[int, ...], workspace_bytes: int | None = None) -> dict:
    """Everything besides the graph and the toolchain that changes the engine."""
    return {
        "format": ENGINE_FORMAT,
        "precision": precision,
        "batch_profile": list(profile_batches(batch_sizes)),
        "workspace_bytes": workspace_bytes,
        "profiling_verbosity": "detailed",
        "typing": "strong",  # what is asked for; header.json records what was used
    }


def engine_key_parts(
    onnx_sha256: str, tensorrt_version: str, gpu_name: str, compute_capability: str, settings: dict
) -> dict:
    return {
        "onnx_sha256": onnx_sha256,
        "tensorrt": tensorrt_version,
        "gpu": gpu_name,
        "compute_capability": compute_capability,
        "settings": settings,
    }


def timing_cache_path(cache_root: Path, tensorrt_version: str, gpu_name: str, compute_capability: str) -> Path:
    key = content_key({"tensorrt": tensorrt_version, "gpu": gpu_name, "compute_capability": compute_capability})
    return Path(cache_root) / "tensorrt-timing" / f"{key}.cache"


def trtexec_commands(
    engine_path: Path,
    onnx_path: Path,
    input_name: str,
    input_chw: tuple[int, ...],
    batches: tuple[int, int, int],
    timing_cache: Path | None = None,
) -> dict[str, str]:
    """The trtexec lines that rebuild this engine and time it the way the runner does."""
    dims = "x".join(str(d) for d in input_chw)
    lo, opt, hi = batches
    build = (
        f"trtexec --onnx={onnx_path} --stronglyTyped --minShapes={input_name}:{lo}x{dims} "
        f"--optShapes={input_name}:{opt}x{dims} --maxShapes={input_name}:{hi}x{dims} "
        f"--profilingVerbosity=detailed --saveEngine={engine_path}"
    )
    if timing_cache is not None:
        build += f" --timingCacheFile={timing_cache}"
    run = f"trtexec --loadEngine={engine_path} --shapes={input_name}:{opt}x{dims} --useCudaGraph --noDataTransfers"
    return {"trtexec": run, "trtexec_build": build}


# ============================================================================ engine header


@dataclass
class EngineHeader:
    """What an engine was built from and for; ``header.json`` beside the plan."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    settings: dict
    format: int = ENGINE_FORMAT
    plan_sha256: str = ""
    plan_bytes: int = 0
    typing: str = ""  # "strong", or "weak (fallback: ...)"
    build_seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


_IDENTITY_FIELDS = ("format", "onnx_sha256", "tensorrt_version", "gpu_name", "compute_capability", "settings")


def header_problem(engine_dir: Path, expected: EngineHeader) -> str | None:
    """None when ``engine_dir`` holds an intact engine built for ``expected``; else why not."""
    try:
        found = json.loads((engine_dir / HEADER_NAME).read_text())
    except (OSError, ValueError):
        return f"has no readable {HEADER_NAME}"
    if not isinstance(found, dict):
        return f"has a malformed {HEADER_NAME}"
    wanted = asdict(expected)
    for name in _IDENTITY_FIELDS:
        if found.get(name) != wanted[name]:
            return f"was built for {name} {found.get(name)!r}, but this run needs {wanted[name]!r}"
    plan = engine_dir / PLAN_NAME
    if not plan.is_file():
        return f"has no {PLAN_NAME}"
    if plan.stat().st_size != found.get("plan_bytes") or file_sha256(plan) != found.get("plan_sha256"):
        return f"has a {PLAN_NAME} whose bytes do not match its header"
    return None


# ============================================================================ inspector JSON

# Words TensorRT uses for data types, in "Format/Datatype" (10.x, e.g. "Channel major FP16
# format where channel % 8 == 0"), "DataType" (11.x, e.g. "Half") and weight "Type" fields.
_DTYPE_WORDS = {
    "FP32": "FP32", "Float": "FP32", "TF32": "FP32",
    "FP16": "FP16", "Half": "FP16",
    "BFloat16": "BF16", "BF16": "BF16",
    "Int8": "INT8", "INT8": "INT8",
    "FP8": "FP8", "FP4": "FP4", "Int4": "INT4", "INT4": "INT4",
    "Int32": "INT32", "INT32": "INT32", "Int64": "INT64", "INT64": "INT64",
    "UInt8": "UINT8", "Bool": "BOOL", "BOOL": "BOOL", "Double": "FP64",
}  # fmt: skip
# Kernel names when no tensor says it (e.g. sm80_xmma_fprop_implicit_gemm_i8i8_i8i32_f32_...).
# Int8 kernels name their A/B types first: i8i8_..., i8f32_i8i32_f32_... (int8 in, int32 accumulate).
_TACTIC_HINTS = (
    (re.compile(r"i8i8|i8f32|i8i32|int8|imma", re.I), "INT8"),
    (re.compile(r"f16f16|fp16|h884|h1688|h16816|hmma", re.I), "FP16"),
    (re.compile(r"bf16", re.I), "BF16"),
    (re.compile(r"f32f32|tf32|s884|s1688|sgemm|fp32", re.I), "FP32"),
)
_OTHER_PROFILE = re.compile(r"\[profile +([1-9][0-9]*)\]")
# What the inspector prints for shape-dependent formats when no execution context is attached.
FORMATS_HIDDEN = "N/A due to dynamic shapes"
# Tensor keys that carry a data type: 10.x "Format/Datatype"; 11.x "Datatype" and "Format".
# Matched case-insensitively: NVIDIA's own 11.x scripts read "Datatype", older notes say "DataType".
_TENSOR_TYPE_KEYS = ("datatype", "format/datatype", "format")


def dtype_from_text(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    for token in re.split(r"[^A-Za-z0-9]+", text):
        if token in _DTYPE_WORDS:
            return _DTYPE_WORDS[token]
    return None


def tensor_precision(tensor_json: Any) -> str | None:
    """Data type of one entry of a layer's Inputs/Outputs (10.x or 11.x schema)."""
    if not isinstance(tensor_json, dict):
        return None
    by_key = {str(key).lower(): value for key, value in tensor_json.items()}
    for key in _TENSOR_TYPE_KEYS:
        found = dtype_from_text(by_key.get(key))
        if found:
            return found
    return None


def formats_hidden(tensor_json: Any) -> bool:
    """True when the inspector withheld this tensor's format (no execution context)."""
    return isinstance(tensor_json, dict) and any(
        isinstance(value, str) and FORMATS_HIDDEN.lower() in value.lower() for value in tensor_json.values()
    )


@dataclass(frozen=True)
class LayerInfo:
    name: str
    layer_type: str  # "CaskConvolution", "Reformat", "Myelin", ...
    parameter_type: str  # "Convolution", "PointWise", ... ("" when absent)
    precision: str  # "FP16", "INT8", "FP32", ... or "UNKNOWN"
    is_convolution: bool
    is_opaque: bool  # a Myelin/ForeignNode region whose inner ops the JSON does not list


@dataclass
class EngineLayers:
    layers: list[LayerInfo]
    schema: str  # "10.x" (Bindings), "11.x" (I/O Tensors) or "unknown"
    io_tensors: list[str] = field(default_factory=list)
    hidden_formats: int = 0  # tensors shown as "N/A due to dynamic shapes" (inspected without a context)

    @property
    def convolutions(self) -> list[LayerInfo]:
        return [layer for layer in self.layers if layer.is_convolution]

    @property
    def opaque(self) -> list[LayerInfo]:
        return [layer for layer in self.layers if layer.is_opaque]

    def precision_counts(self, convolutions_only: bool = False) -> dict[str, int]:
        chosen = self.convolutions if convolutions_only else self.layers
        return dict(sorted(Counter(layer.precision for layer in chosen).items()))


def _layer_precision(layer: dict, is_convolution: bool) -> str:
    inputs = layer.get("Inputs") or []
    outputs = layer.get("Outputs") or []
    # A convolution computes in its data input's type; other layers report what they produce.
    ordered = (inputs[:1] + outputs[:1]) if is_convolution else (outputs[:1] + inputs[:1])
    for tensor in ordered:
        found = tensor_precision(tensor)
        if found:
            return found
    weights = layer.get("Weights")
    if isinstance(weights, dict) and dtype_from_text(weights.get("Type")):
        return dtype_from_text(weights.get("Type"))
    tactic = str(layer.get("TacticName", ""))
    for pattern, precision in _TACTIC_HINTS:
        if pattern.search(tactic):
            return precision
    return "UNKNOWN"


def parse_engine_information(text: str) -> EngineLayers:
    """Parse ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)``."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise EngineInspectionError(f"engine information is not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("Layers"), list):
        raise EngineInspectionError("engine information has no 'Layers' list")
    if "I/O Tensors" in data:
        schema = "11.x"
        io_tensors = [str(t.get("Name")) for t in data["I/O Tensors"] if isinstance(t, dict)]
    elif "Bindings" in data:
        schema, io_tensors = "10.x", [str(b) for b in data["Bindings"]]
    else:
        schema, io_tensors = "unknown", []
    layers = []
    hidden = 0
    for raw in data["Layers"]:
        if not isinstance(raw, dict):
            raise EngineInspectionError(
                "engine information lists layer names only; the engine must be built with "
                "profiling_verbosity = ProfilingVerbosity.DETAILED to show layer precisions"
            )
        name = str(raw.get("Name", ""))
        if _OTHER_PROFILE.search(name):
            continue  # layers of optimisation profiles other than the first repeat profile 0
        layer_type = str(raw.get("LayerType", ""))
        parameter_type = str(raw.get("ParameterType", ""))
        if parameter_type:
            is_conv = parameter_type == "Convolution" and "Deconv" not in layer_type
        else:
            is_conv = "conv" in layer_type.lower() and "deconv" not in layer_type.lower()
        is_opaque = layer_type.lower().startswith("myelin") or "ForeignNode" in name
        tensors = [t for key in ("Inputs", "Outputs") for t in (raw.get(key) or [])]
        hidden += sum(formats_hidden(t) for t in tensors)
        layers.append(LayerInfo(name, layer_type, parameter_type, _layer_precision(raw, is_conv), is_conv, is_opaque))
    return EngineLayers(layers, schema, io_tensors, hidden)


@dataclass(frozen=True)
class GraphConvolutions:
    total: int
    quantized: int  # Conv nodes whose data input and weight both come from DequantizeLinear


def count_graph_convolutions(onnx_path: Path) -> GraphConvolutions:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    total = quantized = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        total += 1
        feeds = [producer.get(name) for name in node.input[:2]]
        quantized += all(op == "DequantizeLinear" for op in feeds)
    return GraphConvolutions(total, quantized)


def engine_precision_summary(layers: EngineLayers, graph: GraphConvolutions) -> dict:
    """Layer counts per precision, for the report and the benchmark JSON."""
    return {
        "convolutions": len(layers.convolutions),
        "convolution_precisions": layers.precision_counts(convolutions_only=True),
        "layer_precisions": layers.precision_counts(),
        "layers": len(layers.layers),
        "opaque_layers": len(layers.opaque),
        "graph_convolutions": graph.total,
        "graph_quantized_convolutions": graph.quantized,
        "inspector_schema": layers.schema,
        "hidden_formats": layers.hidden_formats,
    }


def check_int8_graph(precision: str, graph: GraphConvolutions, onnx_path: Path) -> None:
    """An int8 graph without one quantized convolution is a broken graph, not an engine problem."""
    if precision == "int8" and graph.quantized == 0:
        raise EnginePrecisionError(
            f"int8 graph {onnx_path} has no quantized convolution (no Conv fed by DequantizeLinear on both "
            f"input and weight, of {graph.total}) — regenerate the INT8 Q/DQ graph (quantize_static, QDQ format)."
        )


def engine_precision_proof(
    precision: str,
    layers: EngineLayers,
    graph: GraphConvolutions,
    onnx_path: Path,
    typing: str = "strong",
) -> PrecisionProof:
    """Which convolutions of the engine do not run in ``precision`` (FP32/FP16/INT8).

    For int8, as many non-INT8 convolutions as the graph has unquantized Conv nodes are
    the graph's own choice, not the engine's, and are not offending."""
    convs = layers.convolutions
    summary = engine_precision_summary(layers, graph)
    proof = PrecisionProof(
        precision=precision,
        checked="the TensorRT engine's own layer information (IEngineInspector, DETAILED, with an execution context)",
        layers=len(convs),
        summary=summary,
    )
    if not convs:
        proof.unproven = (
            f"the engine's inspector output shows no convolution layer ({len(layers.layers)} layers, "
            f"{len(layers.opaque)} opaque Myelin regions): rebuild the engine with a TensorRT that reports "
            "layers (ProfilingVerbosity.DETAILED)"
        )
        return proof
    expected = EXPECTED_CONV_PRECISION[precision]
    unknown = [c for c in convs if c.precision == "UNKNOWN"]
    if unknown:
        why = (
            f"{layers.hidden_formats} tensors read {FORMATS_HIDDEN!r}: the inspector ran without an execution "
            "context whose input shapes are set"
            if layers.hidden_formats
            else "neither tensor formats, weights nor kernel names name a type"
        )
        proof.unproven = f"{len(unknown)} of {len(convs)} convolutions show no data type ({why})"
    off = [c for c in convs if c.precision not in (expected, "UNKNOWN")]
    allowed = max(graph.total - graph.quantized, 0) if precision == "int8" else 0
    if len(off) > allowed:
        proof.offending = [f"{c.name} [{c.precision}]" for c in off]
        if precision == "fp16":
            summary["fix"] = (
                f"the graph {onnx_path} must carry FP16 weights and activations "
                "(onnxruntime.transformers.float16.convert_float_to_float16, keep_io_types=True) and the "
                f"engine must be strongly typed (this one: {typing})"
            )
        elif precision == "int8":
            summary["fix"] = (
                f"every Conv of {onnx_path} needs QuantizeLinear/DequantizeLinear on its input and weight "
                f"({graph.quantized} of {graph.total} are quantized, so at most {allowed} may run unquantized)"
            )
    return proof


# ============================================================================ TensorRT glue

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


class _ParseFailure(Exception):
    pass


class _BuildFailure(Exception):
    pass


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


class TensorRTBackend:
    name = "tensorrt"

    def __init__(
        self,
        *,
        trt=None,
        cuda: CudaRuntime | None = None,
        workspace_bytes: int | None = None,
        progress: bool = True,
    ):
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
        if precision not in PRECISIONS:
            return Availability(False, f"precision {precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
        return self.availability()

    # -- open -------------------------------------------------------------------------

    def open(self, artifacts, precision: str, batch_sizes: tuple[int, ...] = (32,)) -> "TensorRTRunner":
        usable = self.supports(precision)
        if not usable:
            raise ValidateError(f"--backend tensorrt: {usable.reason}")
        trt, cuda = self._modules()
        batches = profile_batches(batch_sizes)
        onnx_path = Path(artifacts.graph(precision, target="tensorrt"))
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
        timing_cache = timing_cache_path(artifacts.cache.root, expected.tensorrt_version, gpu_name, capability)

        def build(tmp: Path) -> None:
            self._build_engine_dir(tmp, onnx_path, precision, batches, expected, timing_cache)

        entry, engine, header = self._load_or_build(artifacts.cache, key_parts, build, expected)
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
                engine = self._deserialize((entry.path / PLAN_NAME).read_bytes())
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
            self._discard(entry.path)
        raise AssertionError("unreachable")

    @staticmethod
    def _discard(engine_dir: Path) -> None:
        import shutil

        from filelock import FileLock

        with FileLock(str(engine_dir) + ".lock"):  # the cache's own lock for this entry
            manifest = engine_dir.with_name(engine_dir.name + ".json")
            if manifest.exists():
                manifest.unlink()
            shutil.rmtree(engine_dir, ignore_errors=True)

    def _deserialize(self, plan: bytes):
        trt = self._trt
        try:
            return _runtime(trt).deserialize_cuda_engine(plan)
        except Exception:  # some versions raise instead of returning None
            return None


    # -- build ------------------------------------------------------------------------

    def _build_engine_dir(
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
        engine = self._deserialize(plan)
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
            except _ParseFailure as exc:
                failures.append(f"{mode}ly typed: ONNX parser: {exc}")
            except _BuildFailure as exc:
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
            raise _ParseFailure("; ".join(errors) or "parse_from_file returned False")

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
            raise _BuildFailure("build_serialized_network returned None (see the TensorRT log above)")
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


def engine_information(trt, engine, context=None) -> str:
    """The inspector's JSON for ``engine``, inspected through an execution context whose input
    shapes are set (the opt batch of profile 0): without one TensorRT prints -1 for
    shape-dependent values and "N/A due to dynamic shapes" for every format of a
    dynamic-batch engine.  ``context`` is used as it is; else a temporary one is made."""
    own = context is None
    if own:
        context = engine.create_execution_context()
        if context is not None:
            for index in range(engine.num_io_tensors):
                name = engine.get_tensor_name(index)
                if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    context.set_input_shape(name, tuple(engine.get_tensor_profile_shape(name, 0)[1]))
    inspector = engine.create_engine_inspector()
    try:
        if context is not None:
            inspector.execution_context = context
        return inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    finally:
        del inspector  # the inspector must not outlive a context it points to
        if own:
            del context


# ============================================================================ runner


class TensorRTRunner:
    """One execution context on its own stream; buffers sized for the profile's max batch."""

    def __init__(self, trt, cuda: CudaRuntime, engine, precision: str, device_name: str):
        self.trt, self.cuda, self.engine = trt, cuda, engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f"expected one input and one output tensor, engine has {inputs} -> {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        for name in names:
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise ValidateError(
                    f"engine tensor {name!r} is {engine.get_tensor_dtype(name)}, not float32: build the "
                    "FP16 graph with keep_io_types=True so that inputs and logits stay float32"
                )
        self.input_chw = tuple(int(d) for d in engine.get_tensor_shape(self.input_name))[1:]
        profile_shapes = engine.get_tensor_profile_shape(self.input_name, 0)  # (min, opt, max)
        self.opt_batch, self.max_batch = int(profile_shapes[1][0]), int(profile_shapes[2][0])
        self.context = engine.create_execution_context()
        self.stream = cuda.stream_create()
        self._closed = False
        self._device: list[int] = []
        self._pinned: list[np.ndarray] = []
        self._graphs: list[Any] = []

        self._set_shape(self.max_batch)
        self.output_item_shape = tuple(int(d) for d in self.context.get_tensor_shape(self.output_name))[1:]
        self.d_input = self._malloc(self.max_batch * int(np.prod(self.input_chw)) * 4)
        self.d_output = self._malloc(self.max_batch * int(np.prod(self.output_item_shape)) * 4)
        self.host_input = self._pinned_empty((self.max_batch, *self.input_chw))
        self.host_output = self._pinned_empty((self.max_batch, *self.output_item_shape))
        self.info = RunnerInfo(backend="tensorrt", precision=precision, device=device_name, extra={})
        self._proof_inputs: tuple[GraphConvolutions, Path, str] | None = None

    def bind_proof(self, graph: GraphConvolutions, onnx_path: Path, typing: str) -> None:
        """What ``precision_proof`` compares the engine with: the graph it was built from."""
        self._proof_inputs = (graph, Path(onnx_path), typing)

    def precision_proof(self) -> PrecisionProof:
        """Inspect this runner's engine through its own execution context."""
        self._require_open()
        if self._proof_inputs is None:
            raise RuntimeError("TensorRTRunner.precision_proof needs bind_proof(graph, onnx_path, typing) first")
        graph, onnx_path, typing = self._proof_inputs
        self._set_shape(self.opt_batch)  # the shapes the engine was tuned for
        layers = parse_engine_information(engine_information(self.trt, self.engine, self.context))
        return engine_precision_proof(self.info.precision, layers, graph, onnx_path, typing)

    def _require_open(self) -> None:
        if self._closed:  # its pinned buffers and device memory are freed
            raise RuntimeError("this TensorRT runner is closed; open a new one with TensorRTBackend.open()")

    def _malloc(self, nbytes: int) -> int:
        pointer = self.cuda.malloc(nbytes)
        self._device.append(pointer)
        return pointer

    def _pinned_empty(self, shape) -> np.ndarray:
        array = self.cuda.pinned_empty(tuple(shape), np.float32)
        self._pinned.append(array)
        return array

    def _set_shape(self, batch: int) -> None:
        if not self.context.set_input_shape(self.input_name, (batch, *self.input_chw)):
            raise RuntimeError(
                f"TensorRT rejected input shape {(batch, *self.input_chw)} (profile max {self.max_batch})"
            )

    def _enqueue(self, batch: int, d_input: int) -> None:
        self._set_shape(batch)
        self.context.set_tensor_address(self.input_name, d_input)
        self.context.set_tensor_address(self.output_name, self.d_output)
        if not self.context.execute_async_v3(self.cuda.stream_handle(self.stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log above)")

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_chw or len(images) == 0:
            raise ValueError(
                f"expected float32 images shaped (N, {', '.join(map(str, self.input_chw))}), got {images.shape}"
            )
        return images

    def infer(self, images: np.ndarray) -> np.ndarray:
        self._require_open()
        images = self._check_images(images)
        logits = np.empty((len(images), *self.output_item_shape), dtype=np.float32)
        for start in range(0, len(images), self.max_batch):
            chunk = images[start : start + self.max_batch]
            batch = len(chunk)
            self.host_input[:batch] = chunk
            self.cuda.copy_htod_async(self.d_input, self.host_input[:batch], self.stream)
            self._enqueue(batch, self.d_input)
            self.cuda.copy_dtoh_async(self.host_output[:batch], self.d_output, self.stream)
            self.cuda.stream_synchronize(self.stream)
            logits[start : start + batch] = self.host_output[:batch]
        return logits

    def _prepare_timed(self, images: np.ndarray) -> tuple[Callable[[], None], bool, str, int]:
        """An asynchronous launcher for this batch, input resident on the device; a CUDA
        graph when capture works (trtexec --useCudaGraph), else plain execute_async_v3."""
        self._require_open()
        images = self._check_images(images)
        batch = len(images)
        if batch > self.max_batch:
            raise ValueError(f"batch {batch} exceeds the engine profile's max batch {self.max_batch}")
        d_input = self._malloc(images.nbytes)
        self.host_input[:batch] = images
        self.cuda.copy_htod_async(d_input, self.host_input[:batch], self.stream)
        self._enqueue(batch, d_input)  # one plain run first: TensorRT sets up shape-dependent state
        self.cuda.stream_synchronize(self.stream)
        try:
            graph = self.cuda.capture_graph(self.stream, lambda: self._enqueue(batch, d_input))
        except Exception as exc:  # some engines or drivers refuse capture; time without it
            note = f"CUDA graph capture failed ({type(exc).__name__}: {exc}); timing plain execute_async_v3"

            def launch() -> None:
                self._enqueue(batch, d_input)

            return launch, False, note, d_input
        self._graphs.append(graph)

        def launch_graph() -> None:
            self.cuda.graph_launch(graph, self.stream)

        return launch_graph, True, "", d_input

    def timed_call(self, images: np.ndarray) -> Callable[[], None]:
        launch, _, _, _ = self._prepare_timed(images)

        def run_once() -> None:
            launch()
            self.cuda.stream_synchronize(self.stream)

        return run_once

    def benchmark(
        self,
        images: np.ndarray,
        *,
        warmup_s: float = 0.2,
        duration_s: float = 3.0,
        min_iterations: int = 10,
        copy_repeats: int = 20,
    ) -> ThroughputReport:
        """trtexec-style measurement: compute from CUDA events, throughput from host wall
        time, H2D/D2H copies of one batch timed separately."""
        launch, used_graph, note, d_input = self._prepare_timed(images)
        batch = len(images)
        timer = CudaEventTimer(self.cuda, self.stream)
        try:
            loop = run_timed_loop(
                launch, timer, warmup_s=warmup_s, duration_s=duration_s, min_iterations=min_iterations
            )
            h2d = time_repeated(
                lambda: self.cuda.copy_htod_async(d_input, self.host_input[:batch], self.stream), timer, copy_repeats
            )
            d2h = time_repeated(
                lambda: self.cuda.copy_dtoh_async(self.host_output[:batch], self.d_output, self.stream),
                timer,
                copy_repeats,
            )
        finally:
            timer.close()
        return throughput_report(
            loop, batch, h2d_ms=h2d, d2h_ms=d2h, cuda_graph=used_graph, notes=[note] if note else []
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.cuda.stream_synchronize(self.stream)
        finally:
            for graph in self._graphs:
                self.cuda.graph_destroy(graph)
            for pointer in self._device:
                self.cuda.free(pointer)
            for array in self._pinned:
                self.cuda.pinned_free(array)
            self.cuda.stream_destroy(self.stream)
            self._graphs, self._device, self._pinned = [], [], []
            self.context = None
            self.engine = None
