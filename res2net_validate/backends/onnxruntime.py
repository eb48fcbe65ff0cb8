"""ONNX Runtime backend: runs the FP32 / FP16 / INT8 Q/DQ graphs, on CPU by default.

ONNX Runtime's CPU provider inserts casts around FP16 nodes it has no kernel for and
fuses Q/DQ pairs into quantized kernels at load time, so every graph runs here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .base import RUNS_ONNX, Availability, PrecisionProof, RunnerInfo, layer_proof
from .devices import cpu_description

# Compute layers whose precision is proven, as ONNX Runtime names them after its fusions.
FLOAT_COMPUTE_OPS = {"Conv", "FusedConv", "NhwcFusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"}
INTEGER_COMPUTE_OPS = {"QLinearConv", "NhwcQLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger",
                       "MatMulIntegerToFloat", "QGemm", "DynamicQuantizeMatMul"}
_PASS_THROUGH_OPS = {"Transpose", "Reshape", "Identity", "ReorderInput", "Squeeze", "Unsqueeze", "Flatten"}
# What a compute layer runs in, by how its weight reaches it; and which of those prove each precision.
UNDECIDED = "fp32 or fp16 (too few non-zero weights to tell)"
PROVING = {"fp32": {"fp32", UNDECIDED}, "fp16": {"fp16", "fp16 weights, fp32 arithmetic", UNDECIDED},
           "int8": {"int8", "int8 weights, dequantized to float"}}


class OnnxRuntimeRunner:
    def __init__(self, graph_path, precision: str, providers: list[str]):
        import onnxruntime as ort

        from ..ort_sessions import cpu_session_options, inference_session  # options that fuse Q/DQ into QLinearConv

        options = cpu_session_options()
        # The model the session really executes (after fusions and inserted casts), for precision_proof().
        self._optimized_dir = Path(tempfile.mkdtemp(prefix="res2net_validate_ort_"))
        options.optimized_model_filepath = str(self._optimized_dir / "executed.onnx")
        self.session = inference_session(graph_path, options, providers)
        self._proof: PrecisionProof | None = None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        provider = self.session.get_providers()[0]
        device = cpu_description() if provider == "CPUExecutionProvider" else provider
        self.info = RunnerInfo(
            backend="onnxruntime",
            precision=precision,
            device=device,
            extra={"provider": provider, "onnxruntime": ort.__version__, "graph": str(graph_path)},
        )

    def infer(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: images})[0]

    def timed_call(self, images: np.ndarray) -> Callable[[], None]:
        import onnxruntime as ort

        # Bind once: the input stays where it is and the output buffer is reused.
        binding = self.session.io_binding()
        resident = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        binding.bind_ortvalue_input(self.input_name, resident)
        binding.bind_output(self.output_name)

        def run_once() -> None:
            self.session.run_with_iobinding(binding)

        run_once.keepalive = (binding, resident)  # the binding must outlive the callable
        return run_once

    def benchmark(self, images: np.ndarray, *, duration_s: float = 3.0) -> None:
        return None  # no device loop of its own on CPU: pytest-benchmark's rounds are the measurement

    def precision_proof(self) -> PrecisionProof:
        if self._proof is None:
            import onnx

            executed = self._optimized_dir / "executed.onnx"
            if not executed.is_file():
                return PrecisionProof(self.info.precision, "the model ONNX Runtime executes", 0,
                                      unproven=f"ONNX Runtime did not write its optimized model to {executed}")
            layers = executed_layer_precisions(onnx.load(str(executed), load_external_data=False))
            self._proof = proof_from_layers(self.info.precision, layers,
                                            "the optimized model ONNX Runtime executes (SessionOptions."
                                            "optimized_model_filepath)")
            shutil.rmtree(self._optimized_dir, ignore_errors=True)
        return self._proof

    def close(self) -> None:
        self.session = None
        shutil.rmtree(self._optimized_dir, ignore_errors=True)


def executed_layer_precisions(model) -> list[tuple[str, str, str]]:
    """(node name, op type, what it computes in) for every compute layer of an ONNX model."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}

    def float_weight(tensor) -> str:
        # ONNX Runtime's CPU provider has no float16 Conv: it casts an FP16 graph's weights to float32 and
        # folds the casts away, so float16 survives only as values that float16 represents exactly.
        values = numpy_helper.to_array(tensor)
        if not np.array_equal(values, values.astype(np.float16).astype(np.float32)):
            return "fp32"
        # A few exact values say nothing (zero-initialised layers are exact in any precision); a float32
        # weight is exact in float16 with probability about 2**-13 per value.
        return "fp16 weights, fp32 arithmetic" if np.count_nonzero(values) >= 8 else UNDECIDED

    def weight_precision(tensor: str) -> str:
        for _ in range(8):  # a weight reaches its layer through a few reorders at most
            if tensor in initializers:
                dtype = initializers[tensor].data_type
                if dtype == TensorProto.FLOAT16:
                    return "fp16"
                if dtype == TensorProto.FLOAT:
                    return float_weight(initializers[tensor])
                return TensorProto.DataType.Name(dtype).lower()
            node = producers.get(tensor)
            if node is None:
                return "unknown (computed at run time)"
            if node.op_type == "DequantizeLinear":
                source = initializers.get(node.input[0])
                if source is not None and source.data_type in (TensorProto.INT8, TensorProto.UINT8):
                    return "int8 weights, dequantized to float"
                return "float, through a run-time DequantizeLinear"
            if node.op_type == "Cast":
                source = initializers.get(node.input[0])
                if source is not None and source.data_type == TensorProto.FLOAT16:
                    return "fp16 weights, fp32 arithmetic"
            elif node.op_type not in _PASS_THROUGH_OPS:
                return f"unknown (weight made by {node.op_type})"
            tensor = node.input[0]
        return "unknown"

    layers = []
    for node in graph.node:
        if node.op_type in INTEGER_COMPUTE_OPS:
            layers.append((node.name, node.op_type, "int8"))
        elif node.op_type in FLOAT_COMPUTE_OPS and len(node.input) > 1:
            layers.append((node.name, node.op_type, weight_precision(node.input[1])))
    return layers


def proof_from_layers(precision: str, layers: list[tuple[str, str, str]], checked: str) -> PrecisionProof:
    return layer_proof(precision, layers, checked, PROVING[precision],
                       none_found="no Conv/Gemm/MatMul layer found in the executed model")


class OnnxRuntimeBackend:
    name = "onnxruntime"
    runs = RUNS_ONNX
    int8_flavour = "onnxruntime"  # Q/DQ placed for ONNX Runtime's CPU fusions

    def __init__(self, providers: list[str] | None = None):
        self.providers = providers or ["CPUExecutionProvider"]

    def availability(self) -> Availability:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not importable ({exc}); pip install onnxruntime")
        return Availability(True)

    def supports(self, precision: str) -> Availability:
        if not (known := Availability.of_precision(precision)):
            return known
        return self.availability()  # every graph runs here (see the module docstring)

    def open(self, graph, precision: str, batch_sizes: tuple[int, ...] = (32,)) -> OnnxRuntimeRunner:
        """``graph``: the path of ``precision``'s ONNX graph (its INT8 one in the onnxruntime flavour)."""
        return OnnxRuntimeRunner(Path(graph), precision, self.providers)
