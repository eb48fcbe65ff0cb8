"""TensorRT backend: pure helpers for real, TensorRT glue against FakeTensorRT (no GPU here).

The ONNX graphs are real (built with onnx.helper, converted with onnxruntime's float16
converter and quantized with onnxruntime's quantize_static); only the tensorrt module and
the CUDA runtime are fakes.  Tests marked ``gpu`` build real engines and skip here.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from fake_tensorrt import FakeCudaRuntime, FakeTensorRT, fake_logits

from res2net_validate.backends import devices
from res2net_validate.backends.base import RUNS_ONNX, Runner
from res2net_validate.backends.tensorrt import TensorRTBackend
from res2net_validate.backends.tensorrt.engine import (
    HEADER_NAME,
    PLAN_NAME,
    engine_key_parts,
    engine_settings,
    profile_batches,
    timing_cache_path,
    trtexec_commands,
)
from res2net_validate.backends.tensorrt.inspector import (
    FORMATS_HIDDEN,
    GraphConvolutions,
    check_int8_graph,
    count_graph_convolutions,
    engine_precision_proof,
    parse_engine_information,
)
from res2net_validate.cache import ArtifactCache, content_key, file_sha256
from res2net_validate.errors import EngineInspectionError, EnginePrecisionError, ValidateError

# ----------------------------------------------------------------------------- real tiny graphs


def _tiny_graph(path: Path, batch="N") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w1"),
        numpy_helper.from_array(np.zeros(4, np.float32), "b1"),
        numpy_helper.from_array((rng.standard_normal((4, 4, 1, 1)) * 0.3).astype(np.float32), "w2"),
        numpy_helper.from_array(np.zeros(4, np.float32), "b2"),
        numpy_helper.from_array((rng.standard_normal((10, 4)) * 0.3).astype(np.float32), "fc_w"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["output"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.transformers.float16 import convert_float_to_float16

    root = tmp_path_factory.mktemp("graphs")
    fp32 = _tiny_graph(root / "fp32.onnx")
    fp16 = root / "fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(fp16))

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.batches = iter([{"input": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    int8 = root / "int8.onnx"
    quantize_static(
        str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )  # fmt: skip
    static = _tiny_graph(root / "static.onnx", batch=32)
    return {"fp32": fp32, "fp16": fp16, "int8": int8, "static": static}


def _backend(cache_root: Path | None = None, **fake_options):
    """A TensorRT backend on the fake, keeping its engines in an ArtifactCache at ``cache_root``."""
    cuda = fake_options.pop("cuda", None) or FakeCudaRuntime()
    trt = FakeTensorRT(cuda=cuda, **fake_options)
    cache = ArtifactCache(cache_root) if cache_root is not None else None
    return TensorRTBackend(cache=cache, trt=trt, cuda=cuda, progress=False), trt, cuda


def _images(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)


# ----------------------------------------------------------------------------- settings and keys


def test_profile_covers_one_to_the_benchmark_batch():
    assert profile_batches((32,)) == (1, 32, 32)
    assert profile_batches((1, 32)) == (1, 32, 32)  # what the session asks for: single images and --batch-size
    assert profile_batches((32, 16, 64)) == (1, 64, 64)
    for bad in ((), (0,), (32, -1), (2.5,), (True,)):
        with pytest.raises(ValidateError, match="--batch-size"):
            profile_batches(bad)


def test_engine_key_changes_with_graph_bytes_tensorrt_gpu_and_settings():
    settings = engine_settings("fp16", (32,))
    base = engine_key_parts("a" * 64, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0", settings)
    variants = [
        engine_key_parts("b" * 64, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0", settings),
        engine_key_parts("a" * 64, "11.0.0", "NVIDIA H100 80GB HBM3", "9.0", settings),
        engine_key_parts("a" * 64, "10.9.0", "NVIDIA A100-SXM4-80GB", "9.0", settings),
        engine_key_parts("a" * 64, "10.9.0", "NVIDIA H100 80GB HBM3", "8.0", settings),
        engine_key_parts("a" * 64, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0", engine_settings("fp16", (64,))),
        engine_key_parts("a" * 64, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0", engine_settings("fp16", (32,), 2**30)),
        engine_key_parts("a" * 64, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0", engine_settings("int8", (32,))),
    ]
    keys = {content_key(parts) for parts in [base, *variants]}
    assert len(keys) == 1 + len(variants)
    assert content_key(base) == content_key(
        engine_key_parts("a" * 64, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0", settings)
    )
    # smaller extra batches (single images, the last partial batch) need no other profile, so no other engine
    for same in ((32, 8), (1, 32)):
        settings_same = engine_settings("fp16", same)
        same_profile = engine_key_parts("a" * 64, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0", settings_same)
        assert content_key(same_profile) == content_key(base)


def test_timing_cache_is_keyed_by_tensorrt_version_and_gpu(tmp_path):
    first = timing_cache_path(tmp_path, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0")
    assert first == timing_cache_path(tmp_path, "10.9.0", "NVIDIA H100 80GB HBM3", "9.0")
    assert first.parent == tmp_path / "tensorrt-timing"
    others = {
        timing_cache_path(tmp_path, "10.10.0", "NVIDIA H100 80GB HBM3", "9.0"),
        timing_cache_path(tmp_path, "10.9.0", "NVIDIA L4", "8.9"),
        timing_cache_path(tmp_path, "10.9.0", "NVIDIA H100 80GB HBM3", "9.1"),
    }
    assert first not in others and len(others) == 3


def test_trtexec_command_matches_the_runner_setup(tmp_path):
    commands = trtexec_commands(tmp_path / "m.engine", tmp_path / "m.onnx", "input", (3, 224, 224), (1, 32, 64))
    assert commands["trtexec"] == (
        f"trtexec --loadEngine={tmp_path / 'm.engine'} --shapes=input:32x3x224x224 --useCudaGraph --noDataTransfers"
    )
    assert "--minShapes=input:1x3x224x224" in commands["trtexec_build"]
    assert "--maxShapes=input:64x3x224x224" in commands["trtexec_build"]
    assert "--stronglyTyped" in commands["trtexec_build"] and "--fp16" not in commands["trtexec_build"]


# ----------------------------------------------------------------------------- inspector JSON

# Shapes as TensorRT 10 prints them with ProfilingVerbosity.DETAILED (trtexec --exportLayerInfo);
# field names and format strings follow published outputs (NVIDIA/TensorRT issues 4020, 3876).
TRT10_INT8 = r"""{"Layers": [{
  "Name": "Reformatting CopyNode for Input Tensor 0 to /conv1/Conv + /act1/Relu",
  "LayerType": "Reformat",
  "Inputs": [{"Name": "input", "Location": "Device", "Dimensions": [32,3,224,224], "Format/Datatype": "Row major linear FP32"}],
  "Outputs": [{"Name": "Reformatted Input Tensor 0", "Location": "Device", "Dimensions": [32,3,224,224], "Format/Datatype": "Four wide channel vectorized row major Int8 format"}],
  "ParameterType": "Reformat", "Origin": "REFORMAT", "TacticValue": "0x00000000000003e8", "StreamId": 0, "Metadata": ""
},{
  "Name": "/conv1/Conv + /act1/Relu + /maxpool/MaxPool",
  "LayerType": "CaskConvActPool",
  "Inputs": [{"Name": "Reformatted Input Tensor 0", "Location": "Device", "Dimensions": [32,3,224,224], "Format/Datatype": "Four wide channel vectorized row major Int8 format"}],
  "Outputs": [{"Name": "/maxpool/MaxPool_output_0", "Location": "Device", "Dimensions": [32,64,56,56], "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
  "ParameterType": "Convolution", "Kernel": [7,7], "PaddingMode": "kEXPLICIT_ROUND_DOWN", "PrePadding": [3,3], "PostPadding": [3,3],
  "Stride": [2,2], "Dilation": [1,1], "OutMaps": 64, "Groups": 1,
  "Weights": {"Type": "Int8", "Count": 9408}, "Bias": {"Type": "Float", "Count": 64},
  "TacticName": "sm80_xmma_fprop_implicit_gemm_interleaved_i8i8_i8i32_f32_nchw_vect_c_32kcrs_vect_c_32_nchw_vect_c_32",
  "TacticValue": "0xd3f592fae61c7986", "StreamId": 0, "Metadata": "[ONNX Layer: /conv1/Conv]\u001e[ONNX Layer: /act1/Relu]"
},{
  "Name": "/layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu",
  "LayerType": "CaskConvolution",
  "Inputs": [{"Name": "/maxpool/MaxPool_output_0", "Location": "Device", "Dimensions": [32,64,56,56], "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
  "Outputs": [{"Name": "/layer1/layer1.0/relu/Relu_output_0", "Location": "Device", "Dimensions": [32,112,56,56], "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
  "ParameterType": "Convolution", "Kernel": [1,1], "OutMaps": 112, "Groups": 1,
  "Weights": {"Type": "Int8", "Count": 7168}, "Bias": {"Type": "Float", "Count": 112},
  "TacticName": "sm80_xmma_fprop_implicit_gemm_interleaved_i8i8_i8i32_f32_nchw_vect_c_32kcrs_vect_c_32_nchw_vect_c_32_tilesize32x64x64",
  "TacticValue": "0x1a2b", "StreamId": 0, "Metadata": ""
},{
  "Name": "/fc/Gemm",
  "LayerType": "CaskGemmMatrixMultiply",
  "Inputs": [{"Name": "/Flatten_output_0", "Location": "Device", "Dimensions": [32,2048], "Format/Datatype": "Row major linear FP32"}],
  "Outputs": [{"Name": "output", "Location": "Device", "Dimensions": [32,1000], "Format/Datatype": "Row major linear FP32"}],
  "ParameterType": "MatrixMultiply", "TacticValue": "0x0", "StreamId": 0, "Metadata": ""
},{
  "Name": "{ForeignNode[/global_pool/GlobalAveragePool.../Flatten]}",
  "LayerType": "Myelin",
  "Inputs": [{"Name": "/layer4/Relu_output_0", "Location": "Device", "Dimensions": [32,2048,7,7], "Format/Datatype": "Row major linear FP32"}],
  "Outputs": [{"Name": "/Flatten_output_0", "Location": "Device", "Dimensions": [32,2048], "Format/Datatype": "Row major linear FP32"}],
  "TacticValue": "0x0000000000000000", "StreamId": 0, "Metadata": ""
}],
"Bindings": ["input", "output"]}"""

# TensorRT 11 splits "Format/Datatype" into "Format" and "Datatype" (the keys NVIDIA's 11.x
# trt_perf scripts read) and lists "I/O Tensors"; keys are matched case-insensitively.
TRT11_FP16 = json.dumps(
    {
        "Layers": [
            {
                "Name": "/conv1/Conv + /act1/Relu",
                "LayerType": "CaskConvolution",
                "Inputs": [{"Name": "input_half", "Location": "Device", "Dimensions": [32, 3, 224, 224],
                            "Datatype": "Half", "Format": "Channel major FP16 format where channel % 8 == 0 (kHWC8)"}],
                "Outputs": [{"Name": "/act1/Relu_output_0", "Location": "Device", "Dimensions": [32, 64, 112, 112],
                             "Datatype": "Half", "Format": "Channel major FP16 format where channel % 8 == 0 (kHWC8)"}],
                "ParameterType": "Convolution",
                "Weights": {"Type": "Half", "Count": 9408},
                "TacticName": "sm90_xmma_fprop_implicit_gemm_f16f16_f16f16_f16_nhwckrsc_nhwc",
            },
            {
                "Name": "/layer1/layer1.0/convs.0/Conv",
                "LayerType": "CaskConvolution",
                "Inputs": [{"Name": "x", "Location": "Device", "Dimensions": [32, 14, 56, 56],
                            "DATATYPE": "Float", "Format": "Row major linear FP32 format (kLINEAR)"}],
                "Outputs": [{"Name": "y", "Location": "Device", "Dimensions": [32, 14, 56, 56],
                             "DataType": "Float", "Format": "Row major linear FP32 format (kLINEAR)"}],
                "ParameterType": "Convolution",
                "Weights": {"Type": "Float", "Count": 1764},
            },
            {"Name": "/Cast", "LayerType": "Cast", "Inputs": [], "Outputs": [{"Name": "output", "Datatype": "Float"}]},
        ],
        "I/O Tensors": [
            {"Name": "input", "IOMode": "Input", "DataType": "Float", "Dimensions": [-1, 3, 224, 224]},
            {"Name": "output", "IOMode": "Output", "DataType": "Float", "Dimensions": [-1, 1000]},
        ],
    }
)  # fmt: skip


def test_parse_tensorrt10_detailed_json_counts_layers_per_precision():
    layers = parse_engine_information(TRT10_INT8)
    assert layers.schema == "10.x" and layers.io_tensors == ["input", "output"]
    assert [c.name for c in layers.convolutions] == [
        "/conv1/Conv + /act1/Relu + /maxpool/MaxPool",
        "/layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu",
    ]
    assert layers.precision_counts(convolutions_only=True) == {"INT8": 2}
    # the Reformat layer counts as what it produces (Int8); the Gemm and the Myelin region stay FP32
    assert layers.precision_counts() == {"FP32": 2, "INT8": 3}
    assert [layer.name for layer in layers.opaque] == ["{ForeignNode[/global_pool/GlobalAveragePool.../Flatten]}"]


def test_parse_tensorrt11_json_with_split_format_and_datatype():
    layers = parse_engine_information(TRT11_FP16)
    assert layers.schema == "11.x" and layers.io_tensors == ["input", "output"]
    assert [c.precision for c in layers.convolutions] == ["FP16", "FP32"]


def test_layer_precision_falls_back_to_weights_then_tactic_name():
    text = json.dumps(
        {
            "Layers": [
                {"Name": "a", "LayerType": "CaskConvolution", "ParameterType": "Convolution", "Inputs": [{"Name": "x"}],
                 "Outputs": [], "Weights": {"Type": "Half", "Count": 9}},
                {"Name": "b", "LayerType": "CaskConvolution", "ParameterType": "Convolution", "Inputs": [], "Outputs": [],
                 "TacticName": "sm86_xmma_fprop_implicit_gemm_indexed_i8i8_i8i32_f32_nhwc"},
                {"Name": "c", "LayerType": "CaskConvolution", "Inputs": [], "Outputs": []},  # no ParameterType
                {"Name": "d", "LayerType": "CaskDeconvolutionV2", "ParameterType": "Convolution", "Inputs": [], "Outputs": []},
            ]
        }
    )  # fmt: skip
    layers = parse_engine_information(text)
    assert [(c.name, c.precision) for c in layers.convolutions] == [("a", "FP16"), ("b", "INT8"), ("c", "UNKNOWN")]
    assert layers.schema == "unknown"


def test_parse_ignores_the_copies_of_other_optimisation_profiles():
    layer = json.loads(TRT10_INT8)["Layers"][2]
    other = dict(layer, Name=layer["Name"] + " [profile 1]")
    layers = parse_engine_information(json.dumps({"Layers": [layer, other], "Bindings": []}))
    assert len(layers.convolutions) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"Layers": ["conv1", "conv2"], "Bindings": ["input", "output"]}', "DETAILED"),
        ("not json", "not JSON"),
        ('{"Bindings": []}', "no 'Layers'"),
    ],
)
def test_unreadable_inspector_output_is_a_clear_error(text, message):
    with pytest.raises(EngineInspectionError, match=message):
        parse_engine_information(text)


# ----------------------------------------------------------------------------- precision proof


def test_fp16_proof_names_the_fp32_convolutions(tmp_path):
    layers = parse_engine_information(TRT11_FP16)
    proof = engine_precision_proof("fp16", layers, GraphConvolutions(2, 0), tmp_path / "fp16.onnx")
    assert not proof.proven and proof.layers == 2 and not proof.unproven
    assert proof.offending == ["/layer1/layer1.0/convs.0/Conv [FP32]"]
    assert "keep_io_types=True" in proof.summary["fix"] and proof.summary["convolution_precisions"] == {
        "FP16": 1, "FP32": 1
    }  # fmt: skip


def test_int8_proof_allows_only_the_graphs_unquantized_convolutions(tmp_path):
    layers = parse_engine_information(TRT11_FP16)  # one FP16 and one FP32 convolution
    onnx_path = tmp_path / "int8.onnx"
    lenient = engine_precision_proof("int8", layers, GraphConvolutions(total=4, quantized=2), onnx_path)
    assert lenient.proven and lenient.summary["convolution_precisions"] == {"FP16": 1, "FP32": 1}
    strict = engine_precision_proof("int8", layers, GraphConvolutions(total=4, quantized=3), onnx_path)
    assert strict.offending == ["/conv1/Conv + /act1/Relu [FP16]", "/layer1/layer1.0/convs.0/Conv [FP32]"]
    assert "3 of 4 are quantized, so at most 1" in strict.summary["fix"]
    with pytest.raises(EnginePrecisionError, match="has no quantized convolution"):
        check_int8_graph("int8", GraphConvolutions(total=4, quantized=0), onnx_path)
    check_int8_graph("fp16", GraphConvolutions(total=4, quantized=0), onnx_path)  # only int8 needs Q/DQ


def test_an_engine_without_visible_convolutions_cannot_pass(tmp_path):
    layers = parse_engine_information(json.dumps({"Layers": [json.loads(TRT10_INT8)["Layers"][-1]]}))
    for precision in ("fp32", "fp16", "int8"):
        proof = engine_precision_proof(precision, layers, GraphConvolutions(2, 2), tmp_path / "g.onnx")
        assert not proof.proven and "no convolution layer" in proof.unproven and "DETAILED" in proof.unproven


def test_formats_hidden_without_a_context_leave_the_precision_unproven(tmp_path):
    # What TensorRT prints for a dynamic-batch engine inspected without an execution context.
    hidden = {"Name": "x", "Dimensions": [-1, 64, 56, 56], "Format/Datatype": FORMATS_HIDDEN}
    text = json.dumps({"Layers": [
        {"Name": "conv_a", "LayerType": "CaskConvolution", "ParameterType": "Convolution",
         "Inputs": [hidden], "Outputs": [hidden], "Weights": {"Type": "Half", "Count": 9}},
        {"Name": "conv_b", "LayerType": "CaskConvolution", "ParameterType": "Convolution",
         "Inputs": [hidden], "Outputs": [hidden]},
    ], "Bindings": ["input", "output"]})  # fmt: skip
    layers = parse_engine_information(text)
    assert layers.hidden_formats == 4
    assert [c.precision for c in layers.convolutions] == ["FP16", "UNKNOWN"]  # weights only say so much
    proof = engine_precision_proof("fp16", layers, GraphConvolutions(2, 0), tmp_path / "g.onnx")
    assert not proof.proven and proof.offending == []
    assert proof.unproven.startswith("1 of 2 convolutions show no data type (4 tensors read 'N/A due to dynamic")


def test_int8_kernel_names_with_float_epilogues_are_int8():
    names = [
        "sm90_xmma_fprop_implicit_gemm_i8f32_i8i32_f32_nhwckrsc_nhwc_tilesize128x256x64",
        "sm80_xmma_fprop_implicit_gemm_interleaved_i8i8_i8i32_f32_nchw_vect_c_32kcrs_vect_c_32",
    ]
    text = json.dumps({"Layers": [
        {"Name": f"c{i}", "LayerType": "CaskConvolution", "ParameterType": "Convolution", "Inputs": [],
         "Outputs": [], "TacticName": name} for i, name in enumerate(names)
    ]})  # fmt: skip
    assert [c.precision for c in parse_engine_information(text).convolutions] == ["INT8", "INT8"]


def test_graph_convolution_counts_come_from_the_real_graphs(graphs):
    assert count_graph_convolutions(graphs["fp32"]) == GraphConvolutions(2, 0)
    assert count_graph_convolutions(graphs["fp16"]) == GraphConvolutions(2, 0)
    assert count_graph_convolutions(graphs["int8"]) == GraphConvolutions(2, 2)


# ----------------------------------------------------------------------------- glue, against the fake


def test_open_builds_a_strongly_typed_engine_and_runs_it(graphs, tmp_path):
    backend, trt, cuda = _backend(tmp_path)
    assert backend.runs == RUNS_ONNX and backend.int8_flavour == "tensorrt"  # what the session hands it
    runner = backend.open(graphs["fp16"], "fp16", (4, 2))
    (build,) = trt.builds
    assert build["strong"] and build["flags"] == []  # precision comes from the graph, never from flags
    config = build["config"]
    assert config.profiling_verbosity == "DETAILED"
    assert config.profiles[0].shapes == {"input": ((1, 3, 8, 8), (4, 3, 8, 8), (4, 3, 8, 8))}

    extra = runner.info.extra
    assert runner.info.device == "Fake GPU 80GB" and runner.info.precision == "fp16"
    assert extra["typing"] == "strong" and extra["engine_cached"] is False
    assert extra["convolution_precisions"] == {"FP16": 2} and extra["graph_convolutions"] == 2
    assert extra["hidden_formats"] == 0  # inspected through a context with the input shape set
    proof = runner.precision_proof()
    assert proof.proven and proof.layers == 2 and proof.precision == "fp16" and "execution context" in proof.checked
    assert isinstance(runner, Runner)  # the backends' protocol, precision_proof included
    assert extra["profile"] == {"min": 1, "opt": 4, "max": 4}
    assert extra["trtexec"].endswith("--shapes=input:4x3x8x8 --useCudaGraph --noDataTransfers")
    engine_dir = Path(extra["engine"]).parent
    assert {p.name for p in engine_dir.iterdir()} == {"model.engine", "header.json", "layers.json"}
    header = json.loads((engine_dir / HEADER_NAME).read_text())
    assert header["onnx_sha256"] == file_sha256(graphs["fp16"]) and header["tensorrt_version"] == trt.__version__
    assert Path(extra["timing_cache"]).is_file()

    images = _images(7)  # more than the max batch: two launches
    np.testing.assert_allclose(runner.infer(images), fake_logits(images, 10), rtol=1e-6)
    np.testing.assert_allclose(runner.infer(images[:1]), fake_logits(images[:1], 10), rtol=1e-6)

    run_once = runner.timed_call(images[:3])
    before = trt.executions
    run_once()
    run_once()
    assert trt.executions == before + 2  # the captured graph replays the enqueued work
    with pytest.raises(ValueError, match="max batch"):
        runner.timed_call(_images(5))
    runner.close()
    runner.close()
    assert cuda.memory == {} and cuda.pinned_live == 0 and cuda.streams_live == 0 and cuda.graphs_destroyed == 1


def test_second_open_reuses_the_engine_and_new_builds_reuse_the_timing_cache(graphs, tmp_path):
    backend, trt, _ = _backend(tmp_path)
    backend.open(graphs["fp16"], "fp16", (4,)).close()
    assert trt.timing_cache_loads == [b""]

    again, trt_again, _ = _backend(tmp_path)  # a new process: same TensorRT version and GPU
    runner = again.open(graphs["fp16"], "fp16", (4,))
    assert trt_again.builds == [] and runner.info.extra["engine_cached"] is True
    runner.close()

    other_batch, trt_other, _ = _backend(tmp_path)
    other_batch.open(graphs["fp16"], "fp16", (8,)).close()
    assert len(trt_other.builds) == 1 and trt_other.timing_cache_loads[0].startswith(b"FAKE-TRT-TIMING")


def _forge_manifest(engine_dir: Path) -> None:
    """Make the cache's own manifest agree with edited files, so that only the backend's
    header and deserialization checks stand between the bad engine and the GPU."""
    import hashlib

    manifest = engine_dir.with_name(engine_dir.name + ".json")
    record = json.loads(manifest.read_text())
    files = {str(p.relative_to(engine_dir)): p for p in engine_dir.rglob("*") if p.is_file()}
    record["file_sha256"] = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in files.items()}
    record["sizes"] = {name: p.stat().st_size for name, p in files.items()}
    manifest.write_text(json.dumps(record))


def test_an_engine_that_does_not_deserialize_is_rebuilt_with_a_warning_never_run(graphs, tmp_path):
    import hashlib

    backend, _, _ = _backend(tmp_path)
    runner = backend.open(graphs["int8"], "int8", (4,))
    engine_dir = Path(runner.info.extra["engine"]).parent
    runner.close()
    garbage = b"\x00corrupt plan\xff" * 8
    (engine_dir / PLAN_NAME).write_bytes(garbage)
    header = json.loads((engine_dir / HEADER_NAME).read_text())
    header.update(plan_sha256=hashlib.sha256(garbage).hexdigest(), plan_bytes=len(garbage))
    (engine_dir / HEADER_NAME).write_text(json.dumps(header))
    _forge_manifest(engine_dir)

    fresh, trt, _ = _backend(tmp_path)
    with pytest.warns(RuntimeWarning, match="could not be deserialized.*rebuilding it"):
        runner = fresh.open(graphs["int8"], "int8", (4,))
    # two contexts, both for the rebuilt engine: the inspection at build time, then the runner's
    assert len(trt.builds) == 1 and trt.contexts == 2
    assert runner.info.extra["convolution_precisions"] == {"INT8": 2}
    assert (engine_dir / PLAN_NAME).read_bytes() != garbage
    runner.close()


@pytest.mark.parametrize("field, value", [("gpu_name", "NVIDIA A100-SXM4-80GB"), ("tensorrt_version", "10.0.1")])
def test_a_foreign_or_stale_header_forces_a_rebuild(graphs, tmp_path, field, value):
    backend, _, _ = _backend(tmp_path)
    engine_dir = Path(backend.open(graphs["fp16"], "fp16", (4,)).info.extra["engine"]).parent
    header = json.loads((engine_dir / HEADER_NAME).read_text())
    header[field] = value
    (engine_dir / HEADER_NAME).write_text(json.dumps(header))
    _forge_manifest(engine_dir)

    fresh, trt, _ = _backend(tmp_path)
    with pytest.warns(RuntimeWarning, match=f"was built for {field} '{value}'"):
        fresh.open(graphs["fp16"], "fp16", (4,)).close()
    assert len(trt.builds) == 1
    assert json.loads((engine_dir / HEADER_NAME).read_text())[field] != value


def test_a_plan_edited_behind_the_caches_back_is_rebuilt_by_the_cache(graphs, tmp_path):
    backend, _, _ = _backend(tmp_path)
    engine_dir = Path(backend.open(graphs["fp16"], "fp16", (4,)).info.extra["engine"]).parent
    (engine_dir / PLAN_NAME).write_bytes(b"truncated")
    fresh, trt, _ = _backend(tmp_path)
    with pytest.warns(UserWarning, match="does not match its manifest"):
        fresh.open(graphs["fp16"], "fp16", (4,)).close()
    assert len(trt.builds) == 1


def test_fp16_engine_with_fp32_convolutions_opens_and_its_proof_names_them(graphs, tmp_path):
    backend, _, _ = _backend(tmp_path, fp32_convs=1)
    runner = backend.open(graphs["fp16"], "fp16", (4,))  # the precision test fails, not open
    proof = runner.precision_proof()
    assert not proof.proven and proof.offending == ["conv1 + Relu [FP32]"]
    assert runner.info.extra["convolution_precisions"] == {"FP16": 1, "FP32": 1}
    runner.close()


def test_an_fp32_graph_served_as_fp16_is_caught(graphs, tmp_path):
    backend, _, _ = _backend(tmp_path)
    runner = backend.open(graphs["fp32"], "fp16", (4,))
    assert runner.precision_proof().offending == ["conv1 + Relu [FP32]", "conv2 + Relu [FP32]"]
    runner.close()


def test_an_int8_graph_without_quantized_convolutions_is_refused_at_open(graphs, tmp_path):
    backend, _, _ = _backend(tmp_path)
    with pytest.raises(EnginePrecisionError, match="int8 graph .*fp32.onnx has no quantized convolution"):
        backend.open(graphs["fp32"], "int8", (4,))


@pytest.mark.parametrize("v11", [False, True])
def test_the_engine_is_inspected_through_an_execution_context(graphs, tmp_path, v11):
    backend, trt, _ = _backend(tmp_path, version="11.4.0.106" if v11 else "10.13.3.9", v11=v11)
    runner = backend.open(graphs["int8"], "int8", (4,))
    engine_dir = Path(runner.info.extra["layers_json"]).parent
    stored = parse_engine_information((engine_dir / "layers.json").read_text())
    assert stored.hidden_formats == 0 and stored.precision_counts(True) == {"INT8": 2}
    # the same engine inspected without a context shows what the fake (like TensorRT) withholds
    bare = parse_engine_information(runner.engine.create_engine_inspector().get_engine_information("JSON"))
    assert bare.hidden_formats > 0 and bare.schema == ("11.x" if v11 else "10.x")
    assert runner.precision_proof().proven
    runner.close()


def test_without_strongly_typed_flag_10x_falls_back_to_weak_typing_with_a_warning(graphs, tmp_path):
    backend, trt, _ = _backend(tmp_path, strongly_typed=False)
    with pytest.warns(RuntimeWarning, match="no NetworkDefinitionCreationFlag.STRONGLY_TYPED"):
        runner = backend.open(graphs["fp16"], "fp16", (4,))
    assert trt.builds[0]["flags"] == ["FP16"] and runner.info.extra["typing"].startswith("weak (fallback")
    assert runner.info.extra["convolution_precisions"] == {"FP16": 2}


def test_a_failed_strongly_typed_parse_retries_weakly_typed_on_10x(graphs, tmp_path):
    backend, trt, _ = _backend(tmp_path, fail_strong_parse=True)
    with pytest.warns(RuntimeWarning, match="retrying weakly typed with BuilderFlag.INT8"):
        runner = backend.open(graphs["int8"], "int8", (4,))
    assert [b["strong"] for b in trt.builds] == [False] and trt.builds[0]["flags"] == ["INT8"]
    assert "type mismatch" in runner.info.extra["typing"]


def test_tensorrt_11_is_strongly_typed_only(graphs, tmp_path):
    backend, trt, _ = _backend(tmp_path, version="11.0.0", v11=True)
    runner = backend.open(graphs["fp16"], "fp16", (4,))
    assert trt.builds[0]["flags"] == [] and runner.info.extra["inspector_schema"] == "11.x"
    assert trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED == 0  # as in the 11.4 bindings (10.13: 1)
    strict, _, _ = _backend(tmp_path / "other", version="11.0.0", v11=True, fail_strong_parse=True)
    with pytest.raises(ValidateError, match="TensorRT cannot parse .*fp16.onnx.*type mismatch"):
        strict.open(graphs["fp16"], "fp16", (4,))


def test_a_tensorrt_without_the_deprecated_flag_builds_strongly_typed_with_flags_zero(graphs, tmp_path):
    created = []
    backend, trt, _ = _backend(tmp_path, version="11.9.0", v11=True, strongly_typed=False)
    real_builder = trt.Builder

    def spying_builder(logger):
        builder = real_builder(logger)
        original = builder.create_network
        builder.create_network = lambda flags=0: created.append(flags) or original(flags)
        return builder

    trt.Builder = spying_builder
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "weakly typed" warning: there is no weak mode to fall back to
        runner = backend.open(graphs["fp16"], "fp16", (4,))
    assert created == [0] and trt.builds[0]["strong"] and trt.builds[0]["flags"] == []
    assert runner.info.extra["typing"].startswith("strong (implicit")
    assert runner.precision_proof().proven
    runner.close()


def test_an_unreadable_timing_cache_falls_back_to_an_empty_one(graphs, tmp_path):
    backend, _, _ = _backend(tmp_path)
    runner = backend.open(graphs["fp16"], "fp16", (4,))
    cache_file = Path(runner.info.extra["timing_cache"])
    runner.close()
    cache_file.write_bytes(b"\x00 not a timing cache")

    fresh, trt, _ = _backend(tmp_path)
    with pytest.warns(UserWarning, match="timing cache .* is unreadable; starting a new one"):
        fresh.open(graphs["fp16"], "fp16", (8,)).close()  # another profile: a new build
    assert trt.timing_cache_loads[:2] == [b"\x00 not a timing cache", b""]
    assert cache_file.read_bytes().startswith(b"FAKE-TRT-TIMING")  # replaced by the new build's cache


def test_a_refused_timing_cache_builds_without_one_and_keeps_the_file(graphs, tmp_path):
    backend, trt, _ = _backend(tmp_path, refuse_timing_cache=True)
    with pytest.warns(UserWarning, match="refused the timing cache"):
        runner = backend.open(graphs["fp16"], "fp16", (4,))
    assert trt.builds[0]["config"].get_timing_cache() is None  # like TensorRT: None when none is set
    assert not Path(runner.info.extra["timing_cache"]).exists()
    runner.close()


def test_a_failed_enqueue_under_capture_abandons_the_graph_and_times_plain_launches(graphs, tmp_path):
    backend, trt, cuda = _backend(tmp_path, fail_capture_enqueue=True)
    runner = backend.open(graphs["fp16"], "fp16", (4,))
    report = runner.benchmark(_images(2), warmup_s=0.0, duration_s=0.0, min_iterations=2, copy_repeats=1)
    assert not report.cuda_graph and "execute_async_v3 failed" in report.notes[0]
    assert cuda.captures_abandoned == 1 and cuda.capturing is None
    runner.close()
    assert cuda.graphs_destroyed == 0 and cuda.memory == {}


def test_a_closed_runner_refuses_to_run(graphs, tmp_path):
    backend, _, _ = _backend(tmp_path)
    runner = backend.open(graphs["fp16"], "fp16", (4,))
    runner.close()
    for use in (lambda: runner.infer(_images(1)), lambda: runner.timed_call(_images(1)), runner.precision_proof):
        with pytest.raises(RuntimeError, match="runner is closed"):
            use()


def test_the_build_reports_progress_through_a_tqdm_monitor(graphs, tmp_path, capsys):
    cuda = FakeCudaRuntime()
    trt = FakeTensorRT(cuda=cuda)
    backend = TensorRTBackend(cache=ArtifactCache(tmp_path), trt=trt, cuda=cuda, progress=True)
    backend.open(graphs["fp16"], "fp16", (4,)).close()
    monitor = trt.builds[0]["config"].progress_monitor
    assert isinstance(monitor, trt.IProgressMonitor) and monitor.bars == {}  # every bar closed
    err = capsys.readouterr().err
    assert "TensorRT fp16 engine: Building engine" in err and "TensorRT fp16 engine: Serializing" in err
    assert "Tactic selection" not in err  # nested phases get no bar of their own


def test_a_failed_build_leaves_nothing_in_the_cache(graphs, tmp_path):
    backend, trt, _ = _backend(tmp_path, fail_builds=True)
    with pytest.raises(RuntimeError, match="build_serialized_network returned None"):
        with pytest.warns(RuntimeWarning, match="retrying weakly typed"):
            backend.open(graphs["fp16"], "fp16", (4,))
    assert [b["strong"] for b in trt.builds] == [True, False]
    assert not list((tmp_path / "engine").glob("*.trt"))


def test_a_static_batch_graph_needs_a_dynamic_export(graphs, tmp_path):
    backend, _, _ = _backend(tmp_path)
    with pytest.raises(ValidateError, match="static batch of 32.*dynamic batch"):
        backend.open(graphs["static"], "fp16", (32, 8))


def test_benchmark_reports_compute_latency_throughput_and_copies(graphs, tmp_path):
    backend, _, _ = _backend(tmp_path)
    runner = backend.open(graphs["fp16"], "fp16", (4,))
    report = runner.benchmark(_images(4), warmup_s=0.0, duration_s=0.0, min_iterations=5, copy_repeats=3)
    assert report.cuda_graph and report.iterations == 5 and report.batch_size == 4 and report.throughput > 0
    assert report.compute.count == 5 and report.h2d.count == 3 and report.d2h.count == 3
    assert set(report.as_dict()) >= {"throughput_ips", "compute_ms", "host_latency_ms", "h2d_ms", "d2h_ms"}
    runner.close()


def test_cuda_graph_capture_failure_falls_back_to_plain_enqueue(graphs, tmp_path):
    backend, trt, _ = _backend(tmp_path, cuda=FakeCudaRuntime(capture_fails=True))
    runner = backend.open(graphs["fp16"], "fp16", (4,))
    report = runner.benchmark(_images(2), warmup_s=0.0, duration_s=0.0, min_iterations=2, copy_repeats=1)
    assert not report.cuda_graph and "capture failed" in report.notes[0]
    before = trt.executions
    runner.timed_call(_images(2))()
    assert trt.executions == before + 2  # the plain warm-up run, then the timed call itself
    runner.close()


def test_a_driver_too_old_for_the_wheels_names_the_extra_that_fits(monkeypatch):
    report = devices.DeviceReport(gpus=[devices.GpuInfo("0", "NVIDIA L4", driver="575.57.08")], cuda_driver="12.9")
    monkeypatch.setattr(devices, "device_report", lambda: report)
    broken, _, _ = _backend(cuda=FakeCudaRuntime(device_count=-1))  # CUDA 13 wheels on this driver
    reason = broken.availability().reason
    assert reason.startswith("needs a CUDA GPU: cudaGetDeviceCount failed: cudaErrorInsufficientDriver")
    assert "pip install .[trt-cu12] (driver 575.57.08 supports CUDA up to 12.9" in reason


def test_availability_explains_what_is_missing(graphs, tmp_path):
    real = TensorRTBackend(cache=ArtifactCache(tmp_path))
    if devices.tensorrt_version()[0] == "":
        reason = real.availability().reason
        assert reason.startswith("needs TensorRT: pip install .[trt-cu12]")
        with pytest.raises(ValidateError, match="--backend tensorrt: needs TensorRT"):
            real.open(graphs["fp16"], "fp16", (4,))
    no_gpu, _, _ = _backend(tmp_path, cuda=FakeCudaRuntime(device_count=0))
    assert no_gpu.availability().reason.startswith("needs a CUDA GPU")
    broken, _, _ = _backend(tmp_path, cuda=FakeCudaRuntime(device_count=-1))
    assert "cudaErrorInsufficientDriver" in broken.availability().reason
    assert not _backend(tmp_path)[0].supports("int4")


# ----------------------------------------------------------------------------- real GPU


def _skip_without_tensorrt():
    reason = devices.tensorrt_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_real_engine_runs_the_graphs_precision_and_matches_onnxruntime(graphs, tmp_path, precision):
    _skip_without_tensorrt()
    import onnxruntime as ort

    backend = TensorRTBackend(cache=ArtifactCache(tmp_path), progress=False)
    runner = backend.open(graphs[precision], precision, (4, 2))
    try:
        expected = {"fp16": "FP16", "int8": "INT8"}[precision]
        counts = runner.info.extra["convolution_precisions"]
        assert counts.get(expected, 0) >= 1, counts
        images = _images(6)
        reference = ort.InferenceSession(str(graphs[precision]), providers=["CPUExecutionProvider"])
        want = reference.run(None, {"input": images})[0]
        np.testing.assert_allclose(runner.infer(images), want, atol=0.05, rtol=0.05)
        report = runner.benchmark(images[:4], warmup_s=0.05, duration_s=0.1, min_iterations=5)
        assert report.throughput > 0 and report.h2d is not None
    finally:
        runner.close()


@pytest.mark.gpu
def test_real_engine_is_reused_from_the_cache(graphs, tmp_path):
    _skip_without_tensorrt()
    TensorRTBackend(cache=ArtifactCache(tmp_path), progress=False).open(graphs["fp16"], "fp16", (4,)).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a reused engine must load without any rebuild warning
        runner = TensorRTBackend(cache=ArtifactCache(tmp_path), progress=False).open(graphs["fp16"], "fp16", (4,))
    assert runner.info.extra["engine_cached"] is True
    runner.close()
