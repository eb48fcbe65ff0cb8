"""The engine inspector's JSON, read as layer precisions, and the precision proof built on it.

The runner's ``precision_proof()`` reads the inspector's JSON through an execution context
with the input shapes set, and names every convolution that does not run in the asked
precision; an FP16 engine with FP32 convolutions fails the precision test, not a slow pass.
Both schemas are read: 10.x ("Bindings", "Format/Datatype") and 11.x ("I/O Tensors", "Datatype").
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import EngineInspectionError, EnginePrecisionError
from ..base import PrecisionProof

EXPECTED_CONV_PRECISION = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8"}


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
