"""INT8 Q/DQ graphs from cached calibration ranges, one flavour per target.

Both flavours are explicit Q/DQ ONNX written by onnxruntime's own ``QDQQuantizer`` from the
ranges of :mod:`res2net_validate.calibrate`; both run on ONNX Runtime's CPU provider, so
the exact graph TensorRT will consume can be scored on a CPU box.

* ``tensorrt``: what TensorRT 11 (strongly typed, explicit quantization only) wants: signed
  int8 activations and weights, symmetric (zero-point 0), per-channel weights, bias left in
  float, Q/DQ on the inputs of Conv/Gemm and of the residual Adds (TensorRT's placement
  advice), Relu kept so that TensorRT fuses Conv+Relu itself.
* ``onnxruntime``: what ORT's CPU kernels run fastest: unsigned asymmetric activations,
  signed per-channel weights, every supported op quantized (ORT fuses the Q/DQ pairs into
  QLinearConv/QLinearAdd/... when the session loads).

Artifacts: the ranges are cached under kind ``ranges`` (key: FP32 graph hash, calibration
images hash, settings, versions); the graph under kind ``int8`` (key: ranges key, flavour
recipe, versions).  ``calibration_batches()`` is only called when the ranges are missing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import __version__
from .cache import ArtifactCache, file_sha256
from .calibrate import RANGES_FORMAT, CalibrationSettings, TensorRanges, collect_ranges
from .errors import ValidateError

FLAVOURS = ("onnxruntime", "tensorrt")
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")

# One recipe per target; every entry goes into the int8 cache key.
RECIPES: dict[str, dict] = {
    "onnxruntime": {
        "activation_type": "QUInt8",
        "weight_type": "QInt8",
        "per_channel": True,
        "reduce_range": False,
        "op_types_to_quantize": None,  # every op type the QDQ quantizer supports
        "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True},
    },
    "tensorrt": {
        "activation_type": "QInt8",
        "weight_type": "QInt8",
        "per_channel": True,
        "reduce_range": False,
        "op_types_to_quantize": ["Conv", "Gemm", "Add"],
        "extra_options": {
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "QuantizeBias": False,
            "QDQKeepRemovableActivations": True,
            # TensorRT: quantize the inputs of weighted ops and residual adds, not their outputs.
            "OpTypesToExcludeOutputQuantization": ["Conv", "Gemm", "Add"],
        },
    },
}


@dataclass
class Int8Graph:
    path: Path
    flavour: str
    ranges_path: Path
    unquantized_weights: tuple[str, ...]  # Conv/Gemm weights left in float (should be empty)
    calibration_images: int
    built: bool


def _versions() -> dict:
    import onnx
    import onnxruntime

    return {"res2net_validate": __version__, "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__, "ranges_format": RANGES_FORMAT}


def _check_flavour(flavour: str) -> None:
    if flavour not in FLAVOURS:
        raise ValidateError(f"--flavour {flavour!r}: unknown INT8 flavour. Use one of {', '.join(FLAVOURS)}.")


def quantize_graph(fp32_graph: Path, ranges: TensorRanges, flavour: str, output: Path) -> None:
    """Write the Q/DQ graph of ``fp32_graph`` for ``flavour`` to ``output``, as
    ``onnxruntime.quantization.quantize_static`` would with these ranges."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    _check_flavour(flavour)
    recipe = RECIPES[flavour]
    model = load_model_with_shape_infer(Path(fp32_graph))
    op_types = recipe["op_types_to_quantize"] or sorted(set(QDQRegistry) | set(QLinearOpsRegistry))
    quantizer = QDQQuantizer(
        model,
        recipe["per_channel"],
        recipe["reduce_range"],
        getattr(QuantType, recipe["weight_type"]),
        getattr(QuantType, recipe["activation_type"]),
        ranges.to_tensors_data(),
        [],  # nodes_to_quantize: all
        [],  # nodes_to_exclude: none
        op_types,
        dict(recipe["extra_options"]),
    )
    quantized = quantizer.quantize_model()
    import onnx

    onnx.save(quantized, str(output))


def unquantized_weights(graph) -> tuple[str, ...]:
    """Names of Conv/Gemm/MatMul weights that reach their node in float, not through a
    DequantizeLinear (``graph``: a path or an onnx.ModelProto)."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False) if isinstance(graph, (str, Path)) else graph
    produced_by = {out: node.op_type for node in model.graph.node for out in node.output}
    initializers = {init.name for init in model.graph.initializer}
    left = []
    for node in model.graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1:
            weight = node.input[1]
            if weight in initializers or produced_by.get(weight) not in ("DequantizeLinear", None):
                left.append(weight)
    return tuple(left)


def int8_graph(
    cache: ArtifactCache,
    fp32_graph: Path,
    calibration_batches: Callable[[], Iterable[np.ndarray]],
    calibration_key: str,
    calibration_images: int,
    settings: CalibrationSettings,
    flavour: str,
    progress: bool = True,
    batch_size_hint: int | None = None,
) -> Int8Graph:
    """Calibrated (cached) Q/DQ graph of ``fp32_graph`` for ``flavour``."""
    _check_flavour(flavour)
    fp32_graph = Path(fp32_graph)
    ranges_parts = {
        "fp32_sha256": file_sha256(fp32_graph),
        "calibration": calibration_key,
        "calibration_images": calibration_images,
        "settings": settings.key_parts(),
        "versions": _versions(),
    }

    def build_ranges(tmp: Path) -> None:
        # Written only here: an interrupted pass leaves nothing in the cache.
        total = -(-calibration_images // batch_size_hint) if batch_size_hint else None
        ranges = collect_ranges(fp32_graph, calibration_batches(), settings, progress=progress, total_batches=total)
        if ranges.num_images != calibration_images:
            raise ValidateError(
                f"the calibration source gave {ranges.num_images} images, {calibration_images} were asked for. "
                "Lower the calibration count or add images."
            )
        ranges.save(tmp)

    ranges_entry = cache.get_or_build("ranges", ranges_parts, build_ranges, suffix=".json")
    int8_parts = {
        "ranges": ranges_entry.key,
        "flavour": flavour,
        "recipe": RECIPES[flavour],
        "versions": _versions(),
    }

    def build_graph(tmp: Path) -> None:
        quantize_graph(fp32_graph, TensorRanges.load(ranges_entry.path), flavour, tmp)

    graph_entry = cache.get_or_build("int8", int8_parts, build_graph, suffix=".onnx")
    return Int8Graph(
        path=graph_entry.path,
        flavour=flavour,
        ranges_path=ranges_entry.path,
        unquantized_weights=unquantized_weights(graph_entry.path),
        calibration_images=calibration_images,
        built=graph_entry.built,
    )
