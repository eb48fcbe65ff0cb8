"""ONNX graphs: the FP32 export and the FP16 conversion.

Each step is ONNX -> ONNX and cached by content: the FP32 graph under the weights'
hash and the exporter versions, the FP16 graph under the FP32 graph's hash.  INT8 lives
in ``quantize.py``.  Every graph is checked before it is cached: the ONNX checker, and
ONNX Runtime's output against the reference (torch for FP32, the FP32 graph for FP16).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import MODEL_NAME, __version__
from ..cache import ArtifactCache, file_sha256
from ..ort_sessions import inference_session
from ..versions import module_versions, package_versions
from .notes import GraphCheck, Int8Build

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"
GRAPH_FILE = "model.onnx"
INFO_FILE = "info.json"


@dataclass(frozen=True)
class Graph:
    path: Path  # the .onnx file
    precision: str
    built: bool
    check: GraphCheck | None = None  # vs its reference, from the entry's info.json
    int8: Int8Build | None = None  # how an INT8 graph was calibrated

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)

    def notes(self) -> list[str]:
        return ([self.check.note(self.precision)] if self.check else []) + ([self.int8.note()] if self.int8 else [])


def _versions() -> dict:
    # Installed versions from package metadata: a cache hit must not import torch or timm.
    return {"res2net_validate": __version__, **package_versions("torch", "timm", "onnx", "onnxsim", "onnxruntime")}


def _check_input(graph, seed: int = 0, batch: int = 2) -> np.ndarray:
    """Normalised-image-like values (what the graph sees in practice) in the graph's own image shape."""
    channels, height, width = (dim.dim_value for dim in graph.graph.input[0].type.tensor_type.shape.dim[1:])
    return np.random.default_rng(seed).standard_normal((batch, channels, height, width)).astype(np.float32)


def _ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    session = inference_session(path)  # ORT's default options
    return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _load_graph_dir(entry_path: Path, precision: str, built: bool) -> Graph:
    info = json.loads((entry_path / INFO_FILE).read_text())
    return Graph(entry_path / GRAPH_FILE, precision, built, GraphCheck.from_info(info))


def fp32_graph(cache: ArtifactCache, weights: Path, model_name: str = MODEL_NAME, load_model=None,
               release: str | None = None) -> Graph:
    """Export ``weights`` to a simplified, checked ONNX graph with a dynamic batch.

    ``load_model``: returns the module of ``weights`` (a caller that already holds it passes it so,
    and it is only called on a cache miss); by default the file is loaded.  The key is the file's
    content either way."""
    key_parts = {
        "model": model_name,
        "weights_sha256": file_sha256(weights),
        "opset": OPSET,
        "dynamic_batch": True,
        "simplify": True,
        "versions": _versions(),
    }

    def build(out_dir: Path) -> None:
        import onnx
        import onnxsim
        import torch

        from ..data.preprocess import model_data_config
        from . import checkpoint

        out_dir.mkdir(parents=True)
        model = (load_model() if load_model is not None
                 else checkpoint.load_model(weights, model_name, release or checkpoint.RELEASE_FILE))
        size = model_data_config(model_name).image_size  # the crop timm publishes for this model
        raw_path = out_dir / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                model,
                torch.zeros(1, 3, size, size),
                str(raw_path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        simplified, ok = onnxsim.simplify(onnx.load(str(raw_path)))
        if not ok:
            raise RuntimeError(f"onnxsim could not validate the simplified graph of {model_name}")
        raw_path.unlink()
        onnx.checker.check_model(simplified, full_check=True)
        onnx.save(simplified, str(out_dir / GRAPH_FILE))

        x = _check_input(simplified)
        with torch.no_grad():
            reference = model(torch.from_numpy(x)).numpy()
        diff = float(np.abs(_ort_outputs(out_dir / GRAPH_FILE, x) - reference).max())
        info = {"reference": "torch fp32", "max_abs_diff": diff, "nodes": len(simplified.graph.node), "opset": OPSET}
        (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2))

    # raw export plus the simplified graph, each about the size of the float32 weights
    entry = cache.get_or_build("onnx-fp32", key_parts, build, needs_bytes=2 * Path(weights).stat().st_size)
    return _load_graph_dir(entry.path, "fp32", entry.built)


def fp16_graph(cache: ArtifactCache, fp32: Graph) -> Graph:
    """FP16 weights and activations, float32 inputs and outputs kept (casts at the edges)."""
    key_parts = {
        "fp32_sha256": fp32.sha256,
        "converter": "onnxruntime.transformers.float16",
        "keep_io_types": True,
        **module_versions("onnxruntime"),  # the code that runs, from onnxruntime or onnxruntime-gpu
        "res2net_validate": __version__,
    }

    def build(out_dir: Path) -> None:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        out_dir.mkdir(parents=True)
        model16 = convert_float_to_float16(onnx.load(str(fp32.path)), keep_io_types=True)
        sort_nodes_topologically(model16.graph)  # the converter appends its input casts at the end
        onnx.checker.check_model(model16)
        onnx.save(model16, str(out_dir / GRAPH_FILE))
        x = _check_input(model16)
        diff = float(np.abs(_ort_outputs(out_dir / GRAPH_FILE, x) - _ort_outputs(fp32.path, x)).max())
        info = {"reference": "onnx fp32", "max_abs_diff": diff, "nodes": len(model16.graph.node)}
        (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2))

    entry = cache.get_or_build("onnx-fp16", key_parts, build, needs_bytes=fp32.path.stat().st_size // 2)
    return _load_graph_dir(entry.path, "fp16", entry.built)


def sort_nodes_topologically(graph) -> None:
    """Reorder ``graph.node`` in place so every node comes after its producers (Kahn)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or a dangling input: " + ", ".join(n.name for n in pending[:3]))
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
        for node in ready:
            ordered.append(node)
            available.update(node.output)
    copies = [type(n)() for n in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)
