"""The graphs' notes are typed records rendering the same lines as before; a cache entry's
info.json written by an earlier version still reads."""

from __future__ import annotations

import json
from pathlib import Path

from res2net_validate.graphs.export import Graph
from res2net_validate.graphs.notes import GraphCheck, Int8Build

# An onnx-fp32 entry's info.json exactly as export.py has written it since before typed notes.
OLD_FP32_INFO = '{\n  "reference": "torch fp32",\n  "max_abs_diff": 1.430511474609375e-05,\n  "nodes": 394,\n  "opset": 17\n}'


def test_a_check_reads_from_an_info_json_written_before_typed_notes():
    check = GraphCheck.from_info(json.loads(OLD_FP32_INFO))
    assert check == GraphCheck("torch fp32", 1.430511474609375e-05)
    assert check.note("fp32") == "fp32 graph vs torch fp32: max |diff| 1.43e-05"
    assert GraphCheck.from_info({"nodes": 3}) is None  # an entry that records no comparison: no note


def test_int8_build_notes_name_flavour_method_images_and_what_stayed_float():
    clean = Int8Build("tensorrt", "64 held-out val images", "entropy", 99.999)
    assert clean.note() == ("int8 Q/DQ graph, tensorrt flavour, entropy calibration on 64 held-out val images; "
                            "every Conv/Gemm weight quantized")
    names = tuple(f"conv{i}.weight" for i in range(7))
    leaky = Int8Build("onnxruntime", "2 images listed in --calib-list from --calib-dir", "percentile", 99.99, names)
    assert leaky.note() == ("int8 Q/DQ graph, onnxruntime flavour, percentile 99.99 calibration on 2 images listed "
                            "in --calib-list from --calib-dir; WARNING: 7 Conv/Gemm weights left in float: "
                            "conv0.weight, conv1.weight, conv2.weight, conv3.weight, conv4.weight")


def test_a_graph_renders_its_check_then_its_int8_build():
    fp16 = Graph(Path("fp16.onnx"), "fp16", built=False, check=GraphCheck("onnx fp32", 0.00123))
    int8 = Graph(Path("int8.onnx"), "int8", built=True, int8=Int8Build("onnxruntime", "8 images", "minmax", 99.0))
    assert fp16.notes() == ["fp16 graph vs onnx fp32: max |diff| 1.23e-03"]
    assert int8.notes() == ["int8 Q/DQ graph, onnxruntime flavour, minmax calibration on 8 images; "
                            "every Conv/Gemm weight quantized"]
    assert Graph(Path("x.onnx"), "fp32", built=True).notes() == []
