"""INT8 Q/DQ graphs from cached calibration ranges, one flavour per target.

Both flavours are explicit Q/DQ ONNX written by onnxruntime's own ``QDQQuantizer`` from the
ranges of :mod:`res2net_validate.graphs.calibrate`; both run on ONNX Runtime's CPU provider, so
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

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .. import __version__
from ..cache import ArtifactCache, file_sha256
from .calibrate import RANGES_FORMAT, CalibrationSettings, TensorRanges, collect_ranges
from ..constants import INT8_GRAPH_FLAVOURS
from ..errors import ValidateError
from ..versions import module_versions

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")



def _x86_without_vnni() -> bool:
    """x86 CPUs without VNNI multiply u8 x s8 pairs with vpmaddubsw, whose int16 sums saturate
    for 8-bit weights; 7-bit weights (reduce_range) cannot overflow.  Measured on this project's
    AMD EPYC (Zen 1, AVX2): without it ORT's fused kernels drift from the Q/DQ graph's own
    meaning (logit cosine 0.9991 between fused and unfused runs), with it they agree exactly,
    at the same FP32 agreement and speed."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # unknown x86: the safe choice
    return not any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


# One recipe per target; every entry goes into the int8 cache key.
RECIPES: dict[str, dict] = {
    "onnxruntime": {
        "activation_type": "QUInt8",
        "weight_type": "QInt8",
        "per_channel": True,
        "reduce_range": _x86_without_vnni(),
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
        # Both inputs of a residual Add quantized; --residual-add shortcut gives TensorRT's
        # placement advice instead (see keep_shortcut_quantization_only).
        "residual_add": "both",
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
    return {"res2net_validate": __version__, **module_versions("onnxruntime", "onnx", "numpy"),
            "ranges_format": RANGES_FORMAT}


def _check_flavour(flavour: str) -> None:
    if flavour not in INT8_GRAPH_FLAVOURS:
        raise ValidateError(f"--flavour {flavour!r}: unknown INT8 flavour. Use one of {', '.join(INT8_GRAPH_FLAVOURS)}.")


RESIDUAL_ADD_CHOICES = ("both", "shortcut")


def recipe_for(flavour: str, residual_add: str | None = None) -> dict:
    """The flavour's recipe, with the residual-Add placement overridden (TensorRT flavour only)."""
    _check_flavour(flavour)
    recipe = dict(RECIPES[flavour])
    if residual_add is not None:
        if "residual_add" not in recipe:
            raise ValidateError(f"--residual-add {residual_add}: only the tensorrt flavour places Q/DQ on Adds this "
                                "way; drop the option or pass --flavour tensorrt")
        if residual_add not in RESIDUAL_ADD_CHOICES:
            raise ValidateError(f"--residual-add {residual_add!r}: use one of {', '.join(RESIDUAL_ADD_CHOICES)}")
        recipe["residual_add"] = residual_add
    return recipe


def _check_recipe_is_the_flavours(recipe: dict, flavour: str) -> None:
    """A recipe of another flavour would file a graph under the wrong flavour's key: a caller's bug."""
    _check_flavour(flavour)
    own = RECIPES[flavour]
    if recipe.keys() != own.keys() or any(recipe[k] != own[k] for k in own if k != "residual_add"):
        raise ValueError(f"this INT8 recipe is not the {flavour} flavour's; build it with recipe_for({flavour!r}, ...)")


def quantize_graph(fp32_graph: Path, ranges: TensorRanges, recipe: dict, output: Path) -> None:
    """Write the Q/DQ graph of ``fp32_graph`` for ``recipe`` (from :func:`recipe_for`) to ``output``, as
    ``onnxruntime.quantization.quantize_static`` would with these ranges."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import add_infer_metadata
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    # What onnxruntime's load_model_with_shape_infer does, in memory: it writes "<graph>-inferred.onnx"
    # beside its input (inside the cached FP32 entry) and deletes it, so two builds raced on that file.
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(fp32_graph)))
    add_infer_metadata(model)
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
    quantizer.quantize_model()
    if recipe.get("residual_add") == "shortcut":
        keep_shortcut_quantization_only(quantizer.model.model)
    quantizer.model.save_model_to_file(str(output))  # sorts the nodes topologically, as quantize_static does
    import onnx

    onnx.checker.check_model(str(output))


def keep_shortcut_quantization_only(model) -> None:
    """Drop the Q/DQ pair on the main-branch input of residual Adds.

    TensorRT's Q/DQ placement advice for residual networks: quantize the shortcut input of the
    Add and leave the main branch's convolution output in float, so that the Add (and the Relu
    after it) fuse into that convolution.  A pair on both inputs forces a separate requantize.
    The main branch is the input written by a Conv, the deeper one when both are (a downsampling
    shortcut is a Conv too, one step from the block input).  Adds whose inputs do not come
    straight from a Conv (Res2Net's hierarchical branch sums) keep both pairs: they run as
    INT8 element-wise adds.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    depth = _node_depths(graph, producer)
    for node in graph.node:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        before_pair = {}  # input slot -> the float tensor its Q/DQ pair quantizes
        for slot, name in enumerate(node.input):
            dequantize = producer.get(name)
            if dequantize is not None and dequantize.op_type == "DequantizeLinear":
                quantize = producer.get(dequantize.input[0])
                if quantize is not None and quantize.op_type == "QuantizeLinear":
                    before_pair[slot] = quantize.input[0]
        if len(before_pair) != 2:
            continue
        conv_depths = {slot: depth[id(producer[tensor])] for slot, tensor in before_pair.items()
                       if tensor in producer and producer[tensor].op_type == "Conv"}
        if not conv_depths or len(set(conv_depths.values())) < len(conv_depths):
            continue  # no conv input, or no telling the main branch from the shortcut
        main = max(conv_depths, key=conv_depths.get)
        node.input[main] = before_pair[main]
    _remove_unused(graph, ("QuantizeLinear", "DequantizeLinear"))


def _node_depths(graph, producer: dict) -> dict[int, int]:
    """Longest path (in nodes) from the graph inputs to each node, keyed by id(node)."""
    depths: dict[int, int] = {}
    for start in graph.node:  # iterative DFS: deep networks would overflow recursion
        stack = [(start, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in depths:
                continue
            parents = [producer[name] for name in node.input if name in producer]
            if expanded:
                depths[id(node)] = 1 + max((depths[id(p)] for p in parents), default=0)
            else:
                stack.append((node, True))
                stack.extend((p, False) for p in parents if id(p) not in depths)
    return depths


def _remove_unused(graph, op_types: tuple[str, ...]) -> None:
    """Remove nodes of ``op_types`` whose outputs nothing reads, until none is left."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input} | outputs
        unused = [n for n in graph.node if n.op_type in op_types and not any(o in read for o in n.output)]
        if not unused:
            return
        for node in unused:
            graph.node.remove(node)


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
    recipe: dict | None = None,
) -> Int8Graph:
    """Calibrated (cached) Q/DQ graph of ``fp32_graph`` for ``flavour``.

    ``recipe``: the flavour's :func:`recipe_for`, when the caller decided it already (the CLI, with its
    --residual-add, before reading any image); None: the flavour's own.  Decided once, it is both the
    cache key's recipe and what the quantizer applies."""
    if recipe is None:
        recipe = recipe_for(flavour)
    else:
        _check_recipe_is_the_flavours(recipe, flavour)
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
        "recipe": recipe,
        "versions": _versions(),
    }

    def build_graph(tmp: Path) -> None:
        quantize_graph(fp32_graph, TensorRanges.load(ranges_entry.path), recipe, tmp)

    graph_entry = cache.get_or_build("int8", int8_parts, build_graph, suffix=".onnx",
                                     needs_bytes=fp32_graph.stat().st_size)  # int8 weights plus float biases
    return Int8Graph(
        path=graph_entry.path,
        flavour=flavour,
        ranges_path=ranges_entry.path,
        unquantized_weights=unquantized_weights(graph_entry.path),
        calibration_images=calibration_images,
        built=graph_entry.built,
    )
