"""ONNX Runtime sessions are built in one place: from a path, bytes or a model, with the caller's options."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from res2net_validate.ort_sessions import (
    CPU_PROVIDERS,
    cpu_session_options,
    exposing,
    inference_session,
    quiet_session_options,
)


def tiny_model() -> onnx.ModelProto:
    """y = relu(x + 1) * 2, with the intermediate tensors named."""
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    nodes = [helper.make_node("Add", ["x", "one"], ["shifted"]), helper.make_node("Relu", ["shifted"], ["rectified"]),
             helper.make_node("Mul", ["rectified", "two"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])], [one, two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


X = np.array([[-3.0, 0.5, 2.0]], dtype=np.float32)
EXPECTED = np.array([[0.0, 3.0, 6.0]], dtype=np.float32)


def test_a_session_from_a_path_bytes_or_a_model_computes_the_same(tmp_path):
    model = tiny_model()
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    for source in (path, str(path), model.SerializeToString(), model):
        session = inference_session(source)
        assert session.get_providers() == list(CPU_PROVIDERS)
        np.testing.assert_array_equal(session.run(["y"], {"x": X})[0], EXPECTED)


def test_exposing_adds_each_missing_output_once_and_leaves_the_model_alone():
    model = tiny_model()
    exposed = exposing(model, ["shifted", "y", "rectified", "shifted"])
    assert [o.name for o in exposed.graph.output] == ["y", "shifted", "rectified"]
    assert [o.name for o in model.graph.output] == ["y"]  # a copy: the caller's model is untouched
    session = inference_session(exposing(model, ["shifted", "rectified"]), quiet_session_options())
    shifted, rectified = session.run(["shifted", "rectified"], {"x": X})
    np.testing.assert_array_equal(shifted, X + 1)
    np.testing.assert_array_equal(rectified, np.maximum(X + 1, 0))


def test_option_sets_keep_their_settings(tmp_path):
    speed = cpu_session_options()
    assert speed.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert speed.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert speed.intra_op_num_threads == len(os.sched_getaffinity(0))
    assert speed.log_severity_level == 3
    assert cpu_session_options(threads=1).intra_op_num_threads == 1

    quiet, default = quiet_session_options(), ort.SessionOptions()
    assert quiet.log_severity_level == 3
    assert (quiet.graph_optimization_level, quiet.intra_op_num_threads, quiet.enable_cpu_mem_arena) == (
        default.graph_optimization_level, default.intra_op_num_threads, default.enable_cpu_mem_arena)

    # The caller's options reach the session: ORT writes the optimized model where they say.
    speed.optimized_model_filepath = str(tmp_path / "executed.onnx")
    inference_session(tiny_model(), speed, ["CPUExecutionProvider"])
    assert onnx.load(str(tmp_path / "executed.onnx")).graph.output[0].name == "y"
