"""The ONNX Runtime precision proof inspects the model the session executes, on real small graphs."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from res2net_validate.backends.onnxruntime import OnnxRuntimeRunner


def _small_cnn(path):
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm, float32, dynamic batch."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv.w"),
               numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "conv.b"),
               numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "fc.w"),
               numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "fc.b")]
    nodes = [helper.make_node("Conv", ["input", "conv.w", "conv.b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["output"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                             ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture
def graphs(tmp_path):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp32 = _small_cnn(tmp_path / "fp32.onnx")
    fp16 = tmp_path / "fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), fp16)
    return fp32, fp16


def _proof(path, precision):
    runner = OnnxRuntimeRunner(path, precision, ["CPUExecutionProvider"])
    runner.infer(np.zeros((1, 3, 8, 8), np.float32))
    return runner.precision_proof()


def test_an_fp32_graph_is_proven_fp32_and_fails_as_fp16_listing_its_layers(graphs):
    fp32, _ = graphs
    assert _proof(fp32, "fp32").proven
    wrong = _proof(fp32, "fp16")
    assert not wrong.proven and wrong.layers == 2
    assert any(entry.startswith("fc (") and entry.endswith("[fp32]") for entry in wrong.offending), wrong.offending


def test_an_fp16_graph_is_proven_fp16_although_the_cpu_provider_computes_it_in_float32(graphs):
    _, fp16 = graphs
    proof = _proof(fp16, "fp16")
    assert proof.proven, proof.offending
    assert set(proof.summary["layer_precisions"]) <= {"fp16", "fp16 weights, fp32 arithmetic"}
    assert not _proof(fp16, "int8").proven  # float weights are no INT8


def test_the_proof_cleans_up_the_executed_model(graphs):
    runner = OnnxRuntimeRunner(graphs[0], "fp32", ["CPUExecutionProvider"])
    folder = runner._optimized_dir
    assert (folder / "executed.onnx").is_file()
    runner.precision_proof()
    assert not folder.exists()


def test_the_backend_declares_what_it_runs_and_opens_the_graph_it_is_given(graphs):
    from res2net_validate.backends.base import RUNS_ONNX, Backend, Runner
    from res2net_validate.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend()
    assert isinstance(backend, Backend)
    assert backend.runs == RUNS_ONNX and backend.int8_flavour == "onnxruntime"
    assert backend.supports("int8") and not backend.supports("bf16")
    runner = backend.open(graphs[1], "fp16", (1, 2))
    assert isinstance(runner, Runner) and runner.info.extra["graph"] == str(graphs[1])
    images = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert runner.infer(images).shape == (2, 4)
    assert runner.benchmark(images, duration_s=0.1) is None  # no loop of its own: pytest-benchmark times it
    runner.close()
