"""FAKE TensorRT and FAKE CUDA runtime for the TensorRT backend's glue tests (no GPU here).

``FakeTensorRT`` implements just the slice of the ``tensorrt`` module that
``res2net_validate.backends.tensorrt`` touches, with the same names and call shapes as
TensorRT 10/11.  It is honest where the glue's correctness depends on it:

* the "builder" reads the real ONNX file and derives each convolution's precision from the
  graph (DequantizeLinear-fed -> Int8, FLOAT16 weights -> FP16, else FP32), so a graph of
  the wrong precision produces an engine that fails the precision proof;
* the inspector emits TensorRT's JSON shapes (10.x "Format/Datatype" + "Bindings", 11.x
  "Datatype"/"Format" + "I/O Tensors", or names only without DETAILED verbosity), and like
  TensorRT it shows no formats ("N/A due to dynamic shapes") for a dynamic-shape engine
  unless an execution context with input shapes is attached to the inspector;
* API behaviour follows the real bindings (tests/unit/data/api manifests): 10.x
  ``STRONGLY_TYPED`` is 1, 11.x's is 0 and 11.x networks are strongly typed with any flags;
  ``create_timing_cache`` returns None for a blob it cannot read, ``set_timing_cache`` a
  bool, ``get_timing_cache`` None until one is set; ``IProgressMonitor`` is subclassable
  and the builder reports its phases to it;
* a plan only deserializes in a FakeTensorRT of the same version, like a real engine;
* "inference" reads the input from FakeCudaRuntime memory at the address set with
  ``set_tensor_address`` and writes ``fake_logits(input)`` at the output address, and work
  enqueued while a stream is captured runs only when the graph is launched.

Each fake class names the real class it stands for (``REAL_NAME``) and its test hooks
(``FAKE_ONLY``); test_api_manifest.py checks every other name against the real bindings.
Nothing here measures or proves anything about real TensorRT; tests marked ``gpu`` do.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from types import SimpleNamespace

import numpy as np

PLAN_MAGIC = b"FAKE-TRT-PLAN\n"
TIMING_MAGIC = b"FAKE-TRT-TIMING\n"


def fake_logits(images: np.ndarray, num_classes: int) -> np.ndarray:
    """What every fake engine computes: channel means times a fixed matrix."""
    weights = np.random.default_rng(1234).standard_normal((images.shape[1], num_classes)).astype(np.float32)
    return (images.mean(axis=(2, 3)) @ weights).astype(np.float32)


# ============================================================================ fake CUDA


class FakeCudaError(RuntimeError):
    pass


class FakeCudaRuntime:
    """The CudaRuntime interface over host memory; counts every allocation and free."""

    def __init__(self, device_count: int = 1, name: str = "Fake GPU 80GB", capability=(9, 0), capture_fails=False):
        self._device_count = device_count
        self.name = name
        self.capability = capability
        self.capture_fails = capture_fails
        self.memory: dict[int, np.ndarray] = {}
        self._next = itertools.count(0x1000, 0x1000)
        self.freed: list[int] = []
        self.pinned_live = 0
        self.capturing: list | None = None
        self.graphs_destroyed = 0
        self.captures_abandoned = 0
        self.streams_live = 0

    # device
    def device_count(self) -> int:
        if self._device_count < 0:
            raise FakeCudaError("cudaGetDeviceCount failed: cudaErrorInsufficientDriver")
        return self._device_count

    def device_properties(self):
        return self.name, self.capability

    # memory
    def malloc(self, nbytes: int) -> int:
        pointer = next(self._next)
        self.memory[pointer] = np.zeros(max(int(nbytes), 1), dtype=np.uint8)
        return pointer

    def free(self, pointer: int) -> None:
        del self.memory[pointer]
        self.freed.append(pointer)

    def read(self, pointer: int, shape, dtype=np.float32) -> np.ndarray:
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.memory[pointer][:count].view(dtype).reshape(shape).copy()

    def write(self, pointer: int, array: np.ndarray) -> None:
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        self.memory[pointer][: raw.size] = raw

    def pinned_empty(self, shape, dtype) -> np.ndarray:
        self.pinned_live += 1
        return np.zeros(shape, dtype=dtype)

    def pinned_free(self, array) -> None:
        self.pinned_live -= 1

    def _submit(self, op) -> None:
        if self.capturing is not None:
            self.capturing.append(op)
        else:
            op()

    def copy_htod_async(self, device_pointer: int, host: np.ndarray, stream) -> None:
        data = np.array(host, copy=True)
        self._submit(lambda: self.write(device_pointer, data))

    def copy_dtoh_async(self, host: np.ndarray, device_pointer: int, stream) -> None:
        self._submit(lambda: host.__setitem__(..., self.read(device_pointer, host.shape, host.dtype)))

    # streams, events, graphs
    def stream_create(self):
        self.streams_live += 1
        return SimpleNamespace(handle=0xBEEF)

    def stream_handle(self, stream) -> int:
        return stream.handle

    def stream_synchronize(self, stream) -> None:
        pass

    def stream_destroy(self, stream) -> None:
        self.streams_live -= 1

    def event_create(self):
        return {"t": None}

    def event_record(self, event, stream) -> None:
        event["t"] = time.perf_counter()

    def event_synchronize(self, event) -> None:
        pass

    def event_elapsed_ms(self, start, end) -> float:
        return (end["t"] - start["t"]) * 1e3

    def event_destroy(self, event) -> None:
        pass

    def capture_graph(self, stream, enqueue):
        if self.capture_fails:
            raise FakeCudaError("cudaStreamBeginCapture failed: cudaErrorStreamCaptureUnsupported")
        self.capturing = []
        try:
            enqueue()
        except BaseException:  # like CudaRuntime: end the capture, drop its graph, clear the error
            self.captures_abandoned += 1
            raise
        else:
            return list(self.capturing)
        finally:
            self.capturing = None

    def graph_launch(self, graph, stream) -> None:
        for op in graph:
            op()

    def graph_destroy(self, graph) -> None:
        self.graphs_destroyed += 1


# ============================================================================ fake TensorRT


class FakeLogger:
    REAL_NAME, FAKE_ONLY = "Logger", {"severity"}
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, severity=WARNING):
        self.severity = severity


class FakeTimingCache:
    REAL_NAME, FAKE_ONLY = "ITimingCache", {"entries"}

    def __init__(self, entries: set[str]):
        self.entries = set(entries)

    def serialize(self) -> bytes:
        return TIMING_MAGIC + json.dumps(sorted(self.entries)).encode()

    def combine(self, other: "FakeTimingCache", ignore_mismatch: bool) -> bool:
        self.entries |= other.entries
        return True


class FakeProfile:
    REAL_NAME, FAKE_ONLY = "IOptimizationProfile", {"shapes"}

    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, min, opt, max):
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class FakeConfig:
    REAL_NAME, FAKE_ONLY = "IBuilderConfig", {"fake", "flag_list", "profiles", "pool_limits", "timing_cache"}

    def __init__(self, fake: "FakeTensorRT"):
        self.fake = fake
        self.profiling_verbosity = None
        self.progress_monitor = None
        self.flag_list: list = []
        self.profiles: list[FakeProfile] = []
        self.pool_limits = {}
        self.timing_cache = None

    def set_flag(self, flag):
        self.flag_list.append(flag)

    def set_memory_pool_limit(self, pool, size):
        self.pool_limits[pool] = size

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeTimingCache | None:
        data = bytes(data)
        self.fake.timing_cache_loads.append(data)
        if not data:
            return FakeTimingCache(set())
        try:
            if not data.startswith(TIMING_MAGIC):
                raise ValueError("invalid header")
            return FakeTimingCache(set(json.loads(data[len(TIMING_MAGIC) :])))
        except ValueError:
            return None  # real TensorRT logs "Failed to deserialize the timing cache" and returns None

    def set_timing_cache(self, cache, ignore_mismatch) -> bool:
        if not isinstance(cache, FakeTimingCache):
            raise TypeError("set_timing_cache(): incompatible function arguments")  # pybind11 on None
        if self.fake.refuse_timing_cache:
            return False
        self.timing_cache = cache
        return True

    def get_timing_cache(self):
        return self.timing_cache


class FakeNetwork:
    REAL_NAME, FAKE_ONLY = "INetworkDefinition", {"strong", "inputs", "onnx_path"}

    def __init__(self, strong: bool):
        self.strong = strong
        self.inputs: list[SimpleNamespace] = []
        self.onnx_path = None

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, index):
        return self.inputs[index]


class FakeOnnxParser:
    REAL_NAME, FAKE_ONLY = "OnnxParser", {"fake", "network", "errors"}

    def __init__(self, fake: "FakeTensorRT", network: FakeNetwork, logger):
        self.fake, self.network, self.errors = fake, network, []

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, index):
        return self.errors[index]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        if self.network.strong and self.fake.fail_strong_parse:
            self.errors.append("ERROR: strongly typed network: type mismatch at Conv (fake)")
            return False
        try:
            model = onnx.load(path, load_external_data=False)
        except Exception as exc:
            self.errors.append(f"ERROR: could not parse {path}: {exc}")
            return False
        for value in model.graph.input:
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)
            self.network.inputs.append(SimpleNamespace(name=value.name, shape=dims))
        self.network.onnx_path = path
        return True


class FakeBuilder:
    REAL_NAME, FAKE_ONLY = "Builder", {"fake"}

    def __init__(self, fake: "FakeTensorRT", logger):
        self.fake = fake

    def create_network(self, flags: int = 0) -> FakeNetwork:
        strong_flag = getattr(self.fake.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        # 11.x: always strongly typed, whatever the flags; 10.x: only with the flag
        strong = self.fake.v11 or (strong_flag is not None and bool(flags & (1 << strong_flag)))
        return FakeNetwork(strong)

    def create_builder_config(self) -> FakeConfig:
        return FakeConfig(self.fake)

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig):
        fake = self.fake
        fake.builds.append({"strong": network.strong, "flags": list(config.flag_list), "config": config})
        _report_progress(config.progress_monitor)
        if fake.fail_builds:
            return None
        ((name, (low, opt, high)),) = config.profiles[0].shapes.items()
        layers = _fake_layers(fake, network.onnx_path, network.strong, config.flag_list)
        if config.timing_cache is not None:
            config.timing_cache.entries.add(f"tactics-for-{len(layers)}-layers-{len(fake.builds)}")
        plan = {
            "version": fake.__version__,
            "input": name,
            "output": _onnx_output(network.onnx_path)[0],
            "num_classes": _onnx_output(network.onnx_path)[1],
            "profile": [low, opt, high],
            "layers": layers,
            "verbosity": config.profiling_verbosity,
        }
        return memoryview(PLAN_MAGIC + json.dumps(plan).encode())


def _report_progress(monitor) -> None:
    """Two top-level phases with steps and a nested one, as TensorRT's builder reports them."""
    if monitor is None:
        return
    monitor.phase_start("Building engine", None, 3)
    for step in range(3):
        if step == 1:
            monitor.phase_start("Tactic selection", "Building engine", 2)
            monitor.step_complete("Tactic selection", 0)
            monitor.step_complete("Tactic selection", 1)
            monitor.phase_finish("Tactic selection")
        monitor.step_complete("Building engine", step)
    monitor.phase_finish("Building engine")
    monitor.phase_start("Serializing", None, 1)
    monitor.step_complete("Serializing", 0)
    monitor.phase_finish("Serializing")


def _onnx_output(path):
    import onnx

    out = onnx.load(path, load_external_data=False).graph.output[0]
    return out.name, out.type.tensor_type.shape.dim[-1].dim_value


# (10.x "Format/Datatype", 11.x "DataType", 11.x "Format", weights "Type", kernel name)
_FORMATS = {
    "FP16": (
        "Channel major FP16 format where channel % 8 == 0",
        "Half",
        "Channel major FP16 format where channel % 8 == 0 (kHWC8)",
        "Half",
        "sm90_xmma_fprop_implicit_gemm_f16f16_f16f16_f16_nhwckrsc_nhwc_tilesize128x128x64",
    ),
    "INT8": (
        "Thirty-two wide channel vectorized row major Int8 format",
        "Int8",
        "Thirty-two wide channel vectorized row major Int8 format (kCHW32)",
        "Int8",
        "sm90_xmma_fprop_implicit_gemm_interleaved_i8i8_i8i32_f32_nchw_vect_c_32kcrs_vect_c_32",
    ),
    "FP32": (
        "Row major linear FP32",
        "Float",
        "Row major linear FP32 format (kLINEAR)",
        "Float",
        "sm90_xmma_fprop_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nhwc",
    ),
}


def _tensor(fake, name, dims, precision):
    fmt10, dtype11, fmt11, _, _ = _FORMATS[precision]
    if fake.schema == "11.x":  # the keys NVIDIA's own 11.x scripts read (trt_perf/data.py)
        return {"Name": name, "Location": "Device", "Dimensions": dims, "Datatype": dtype11, "Format": fmt11}
    return {"Name": name, "Location": "Device", "Dimensions": dims, "Format/Datatype": fmt10}


def _fake_layers(fake: "FakeTensorRT", onnx_path: str, strong: bool, flags: list) -> list[dict]:
    """One CaskConvolution per ONNX Conv, in the precision the graph (and typing mode) implies."""
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    weight_types = {init.name: init.data_type for init in model.graph.initializer}
    layers = [
        {
            "Name": "Reformatting CopyNode for Input Tensor 0",
            "LayerType": "Reformat",
            "Inputs": [_tensor(fake, "input", [-1, 3, 224, 224], "FP32")],
            "Outputs": [_tensor(fake, "reformatted", [-1, 3, 224, 224], "FP32")],
            "ParameterType": "Reformat",
            "Origin": "REFORMAT",
            "TacticValue": "0x00000000000003e8",
        }
    ]
    conv_index = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        if all(producer.get(i) == "DequantizeLinear" for i in node.input[:2]):
            precision = "INT8"
        elif weight_types.get(node.input[1]) == onnx.TensorProto.FLOAT16 or producer.get(node.input[1]) == "Cast":
            # weak typing only honours FP16 tensors when BuilderFlag.FP16 is set
            precision = "FP16" if strong or fake.BuilderFlag_FP16 in flags else "FP32"
        else:
            precision = "FP32"
        if conv_index < fake.fp32_convs:
            precision = "FP32"  # simulate TensorRT picking FP32 kernels
        conv_index += 1
        _, _, _, weight_type, tactic = _FORMATS[precision]
        layers.append(
            {
                "Name": f"{node.name or 'conv'} + Relu",
                "LayerType": "CaskConvolution",
                "Inputs": [_tensor(fake, node.input[0], [-1, 4, 8, 8], precision)],
                "Outputs": [_tensor(fake, node.output[0], [-1, 4, 8, 8], precision)],
                "ParameterType": "Convolution",
                "Kernel": [3, 3],
                "OutMaps": 4,
                "Groups": 1,
                "Weights": {"Type": weight_type, "Count": 108},
                "Bias": {"Type": "Float", "Count": 4},
                "TacticName": tactic,
                "TacticValue": "0x1234",
                "Metadata": f"[ONNX Layer: {node.name}]",
            }
        )
    layers.append(
        {
            "Name": "head",
            "LayerType": "Myelin" if fake.myelin_head else "CaskGemm",
            "Inputs": [_tensor(fake, "pooled", [-1, 4], "FP32")],
            "Outputs": [_tensor(fake, "output", [-1, 10], "FP32")],
            "TacticValue": "0x0",
        }
    )
    return layers


FORMATS_HIDDEN = "N/A due to dynamic shapes"


def _hide_formats(layers: list[dict]) -> list[dict]:
    """What TensorRT prints without a context: -1 for dynamic dims, no format or type."""
    hidden = json.loads(json.dumps(layers))
    for layer in hidden:
        for tensor in (layer.get("Inputs") or []) + (layer.get("Outputs") or []):
            tensor["Dimensions"] = [-1, *tensor.get("Dimensions", [])[1:]]
            for key in ("Format/Datatype", "Format", "Datatype"):
                if key in tensor:
                    tensor[key] = FORMATS_HIDDEN
    return hidden


class FakeInspector:
    REAL_NAME, FAKE_ONLY = "EngineInspector", {"plan", "schema"}

    def __init__(self, plan: dict, schema: str):
        self.plan, self.schema = plan, schema
        self.execution_context = None

    def get_engine_information(self, fmt) -> str:
        plan = self.plan
        if plan["verbosity"] != "DETAILED":
            return json.dumps(
                {"Layers": [layer["Name"] for layer in plan["layers"]], "Bindings": [plan["input"], plan["output"]]}
            )
        low, _, high = plan["profile"]
        shapes_known = self.execution_context is not None and self.execution_context.shape is not None
        layers = plan["layers"] if shapes_known or low == high else _hide_formats(plan["layers"])
        if self.schema == "11.x":
            io = [
                {"Name": plan["input"], "IOMode": "Input", "Datatype": "Float"},
                {"Name": plan["output"], "IOMode": "Output", "Datatype": "Float"},
            ]
            return json.dumps({"Layers": layers, "I/O Tensors": io})
        return json.dumps({"Layers": layers, "Bindings": [plan["input"], plan["output"]]})


class FakeContext:
    REAL_NAME, FAKE_ONLY = "IExecutionContext", {"fake", "shape", "addresses"}

    def __init__(self, fake: "FakeTensorRT", engine: "FakeEngine"):
        self.fake, self.engine = fake, engine
        self.shape = None
        self.addresses = {}

    def set_input_shape(self, name, shape) -> bool:
        low, _, high = self.engine.plan["profile"]
        if (
            name != self.engine.plan["input"]
            or not low[0] <= shape[0] <= high[0]
            or tuple(shape[1:]) != tuple(high[1:])
        ):
            return False
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        if name == self.engine.plan["input"]:
            return self.shape
        return (self.shape[0], self.engine.plan["num_classes"])

    def set_tensor_address(self, name, pointer) -> bool:
        self.addresses[name] = pointer
        return True

    def execute_async_v3(self, stream_handle) -> bool:
        plan, cuda = self.engine.plan, self.fake.cuda
        if self.fake.fail_capture_enqueue and cuda.capturing is not None:
            return False  # e.g. an engine whose kernels cannot be captured
        shape, source, target = self.shape, self.addresses[plan["input"]], self.addresses[plan["output"]]

        def run():
            self.fake.executions += 1
            images = cuda.read(source, shape)
            cuda.write(target, fake_logits(images, plan["num_classes"]))

        cuda._submit(run)
        return True


class FakeEngine:
    REAL_NAME, FAKE_ONLY = "ICudaEngine", {"fake", "plan", "names"}

    def __init__(self, fake: "FakeTensorRT", plan: dict):
        self.fake, self.plan = fake, plan
        self.names = [plan["input"], plan["output"]]

    @property
    def num_io_tensors(self):
        return 2

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return self.fake.TensorIOMode.INPUT if name == self.plan["input"] else self.fake.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self.fake.DataType.FLOAT

    def get_tensor_shape(self, name):
        if name == self.plan["input"]:
            return (-1, *self.plan["profile"][2][1:])
        return (-1, self.plan["num_classes"])

    def get_tensor_profile_shape(self, name, profile_index):
        return [tuple(s) for s in self.plan["profile"]]

    def create_execution_context(self):
        self.fake.contexts += 1
        return FakeContext(self.fake, self)

    def create_engine_inspector(self):
        return FakeInspector(self.plan, self.fake.schema)


class FakeRuntime:
    REAL_NAME, FAKE_ONLY = "Runtime", {"fake"}

    def __init__(self, fake: "FakeTensorRT", logger):
        self.fake = fake

    def deserialize_cuda_engine(self, data: bytes):
        data = bytes(data)
        self.fake.deserialize_calls += 1
        if not data.startswith(PLAN_MAGIC):
            return None  # real TensorRT logs "Serialization assertion ... failed" and returns None
        try:
            plan = json.loads(data[len(PLAN_MAGIC) :])
        except ValueError:
            return None
        if plan.get("version") != self.fake.__version__:
            return None  # an engine only loads in the TensorRT that built it
        return FakeEngine(self.fake, plan)


class FakeProgressMonitor:
    """The fake's ``IProgressMonitor``: subclassed by the backend's tqdm monitor."""

    REAL_NAME, FAKE_ONLY = "IProgressMonitor", set()

    def __init__(self):
        pass

    def phase_start(self, phase_name, parent_phase, num_steps):
        pass

    def step_complete(self, phase_name, step):
        return True

    def phase_finish(self, phase_name):
        pass


class FakeTensorRT:
    """A FAKE ``tensorrt`` module.  ``v11=True`` behaves like TensorRT 11: no
    BuilderFlag.FP16/INT8, STRONGLY_TYPED = 0 and deprecated (``strongly_typed=False``
    drops it, as a later 11.x may), every network strongly typed."""

    REAL_NAME = "tensorrt"
    FAKE_ONLY = {
        "cuda", "v11", "schema", "fp32_convs", "fail_strong_parse", "fail_builds", "myelin_head",
        "fail_capture_enqueue", "refuse_timing_cache", "BuilderFlag_FP16", "builds", "timing_cache_loads",
        "deserialize_calls", "contexts", "executions",
    }  # fmt: skip

    def __init__(
        self,
        version: str = "10.13.3.9",
        *,
        cuda: FakeCudaRuntime | None = None,
        strongly_typed: bool = True,
        v11: bool = False,
        schema: str | None = None,
        fp32_convs: int = 0,
        fail_strong_parse: bool = False,
        fail_builds: bool = False,
        myelin_head: bool = False,
        fail_capture_enqueue: bool = False,
        refuse_timing_cache: bool = False,
    ):
        self.__version__ = version
        self.v11 = v11
        self.fail_capture_enqueue = fail_capture_enqueue
        self.refuse_timing_cache = refuse_timing_cache
        self.cuda = cuda or FakeCudaRuntime()
        self.schema = schema or ("11.x" if v11 else "10.x")
        self.fp32_convs = fp32_convs
        self.fail_strong_parse = fail_strong_parse
        self.fail_builds = fail_builds
        self.myelin_head = myelin_head
        self.Logger = FakeLogger
        strong_value = 0 if v11 else 1  # the real values: 10.13 and 11.4 bindings
        self.NetworkDefinitionCreationFlag = SimpleNamespace(
            **({"STRONGLY_TYPED": strong_value} if strongly_typed else {})
        )
        flags = {"TF32": "TF32", "REFIT": "REFIT"} if v11 else {"FP16": "FP16", "INT8": "INT8", "TF32": "TF32"}
        self.BuilderFlag = SimpleNamespace(**flags)
        self.BuilderFlag_FP16 = flags.get("FP16")
        self.ProfilingVerbosity = SimpleNamespace(DETAILED="DETAILED", LAYER_NAMES_ONLY="LAYER_NAMES_ONLY", NONE="NONE")
        self.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
        self.LayerInformationFormat = SimpleNamespace(JSON="JSON", ONELINE="ONELINE")
        self.TensorIOMode = SimpleNamespace(NONE="NONE", INPUT="INPUT", OUTPUT="OUTPUT")
        self.DataType = SimpleNamespace(FLOAT="FLOAT", HALF="HALF", INT8="INT8")
        self.Builder = functools.partial(FakeBuilder, self)
        self.Runtime = functools.partial(FakeRuntime, self)
        self.OnnxParser = functools.partial(FakeOnnxParser, self)
        self.IProgressMonitor = FakeProgressMonitor
        # what the tests look at
        self.builds: list[dict] = []
        self.timing_cache_loads: list[bytes] = []
        self.deserialize_calls = 0
        self.contexts = 0
        self.executions = 0
