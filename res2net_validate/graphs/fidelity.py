"""How far a lower-precision graph drifts from FP32, layer by layer (the fidelity of its final
predictions, ``compare_logits`` and ``compare_runs``, is in ``predictions.py``).

* :func:`layer_comparison` runs the FP32 graph and a quantized (or FP16) graph with every
  shared intermediate tensor exposed as an output, on a couple of images, and lists the
  layers that drift most.  Exposed tensors cannot be fused away, so in the quantized graph
  they are computed by "fake quantization" (float kernels fed by DequantizeLinear), which is
  what the Q/DQ graph means; ORT's fused integer kernels agree with it up to rounding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ValidateError
from ..ort_sessions import exposing, inference_session, quiet_session_options

DEQUANTIZED_SUFFIX = "_DequantizeLinear_Output"  # onnxruntime's QDQ quantizer names DQ outputs so


@dataclass(frozen=True)
class LayerDrift:
    tensor: str
    producer: str  # op type of the node writing the tensor in the FP32 graph
    cosine: float
    relative_error: float  # ||candidate - reference|| / ||reference||

    def as_dict(self) -> dict:
        return asdict(self)


def _float_tensors(model) -> dict[str, str]:
    """Float tensors written by a node, mapped to the producing node's op type."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    return {
        out: node.op_type
        for node in model.graph.node
        for out in node.output
        if types.get(out) in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
        and node.op_type not in ("QuantizeLinear", "DequantizeLinear", "Constant")
    }


def _run_exposed(model, names: list[str], images: np.ndarray) -> dict[str, np.ndarray]:
    session = inference_session(exposing(model, names), quiet_session_options())
    input_name = session.get_inputs()[0].name
    return dict(zip(names, session.run(names, {input_name: images})))


def layer_comparison(reference_graph: Path, candidate_graph: Path, images: np.ndarray, top: int = 10) -> list[LayerDrift]:
    """The ``top`` shared tensors with the lowest cosine to FP32 (ties: highest relative error)."""
    import onnx

    reference_model = onnx.load(str(reference_graph))
    candidate_model = onnx.load(str(candidate_graph))
    reference_tensors = _float_tensors(reference_model)
    candidate_outputs = {out for node in candidate_model.graph.node for out in node.output}
    # What the next layer sees: a quantized tensor's dequantized value (which also carries
    # a Relu that the quantizer folded into the zero-point), else the tensor itself.
    counterpart = {}
    for name in reference_tensors:
        if name + DEQUANTIZED_SUFFIX in candidate_outputs:
            counterpart[name] = name + DEQUANTIZED_SUFFIX
        elif name in candidate_outputs:
            counterpart[name] = name
    shared = list(counterpart)
    if not shared:
        raise ValidateError(
            f"{candidate_graph}: shares no tensor names with {reference_graph}; the per-layer comparison needs "
            "a graph derived from the FP32 graph (quantized or converted, not re-exported)."
        )
    images = np.ascontiguousarray(images, dtype=np.float32)
    reference = _run_exposed(reference_model, shared, images)
    del reference_model
    candidate = _run_exposed(candidate_model, [counterpart[n] for n in shared], images)
    drifts = []
    for name in shared:
        a = reference[name].astype(np.float64).ravel()
        b = candidate[counterpart[name]].astype(np.float64).ravel()
        norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
        cosine = float(a @ b / (norm_a * norm_b)) if norm_a > 0 and norm_b > 0 else float(norm_a == norm_b)
        relative = float(np.linalg.norm(a - b) / norm_a) if norm_a > 0 else float(np.linalg.norm(b) > 0)
        drifts.append(LayerDrift(name, reference_tensors[name], cosine, relative))
    drifts.sort(key=lambda d: (d.cosine, -d.relative_error))
    return drifts[:top]
