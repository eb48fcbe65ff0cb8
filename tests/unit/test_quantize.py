"""INT8 Q/DQ graphs: both flavours, their properties, the cache contract, the CLI."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

from res2net_validate.cache import ArtifactCache
from res2net_validate.graphs.calibrate import CalibrationSettings
from res2net_validate.errors import ValidateError
from res2net_validate.predictions import compare_logits
from res2net_validate.constants import INT8_GRAPH_FLAVOURS as FLAVOURS
from res2net_validate.graphs.quantize import int8_graph, recipe_for, unquantized_weights
from res2net_validate.ort_sessions import cpu_session_options


class TinyRes2Net(torch.nn.Module):
    """Res2Net's op mix in miniature: conv-bn-relu, split, branch add, concat, residual add, pool, fc."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=4, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
        self.branch = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fuse = torch.nn.Conv2d(16, 16, 1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        a, b = torch.split(x, 8, dim=1)
        b = torch.relu(self.branch(b + a))
        y = torch.relu(self.fuse(torch.cat([a, b], dim=1)) + x)
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1))


def export_tiny(path, size):
    import onnxsim

    torch.manual_seed(0)
    model = TinyRes2Net().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, torch.zeros(1, 3, size, size), str(path), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17, dynamo=False)
    simplified, ok = onnxsim.simplify(onnx.load(str(path)))
    assert ok
    onnx.save(simplified, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("tiny") / "tiny.onnx", size=32)


def images(n, seed=0, size=32):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size), dtype=np.float32)


def run(path, x):
    session = ort.InferenceSession(str(path), cpu_session_options(), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


def build(cache, graph, flavour, data, key="calib-a", settings=CalibrationSettings(), calls=None):
    def batches():
        if calls is not None:
            calls.append(flavour)
        for start in range(0, len(data), 8):
            yield data[start:start + 8]

    return int8_graph(cache, graph, batches, key, len(data), settings, flavour, progress=False)


@pytest.fixture(scope="module")
def built(tiny_graph, tmp_path_factory):
    cache = ArtifactCache(tmp_path_factory.mktemp("cache"))
    data = images(32)
    return cache, data, {flavour: build(cache, tiny_graph, flavour, data) for flavour in FLAVOURS}


def initializers(model):
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_weight_is_int8_and_the_graph_follows_fp32(built, tiny_graph, flavour):
    _, _, graphs = built
    result = graphs[flavour]
    assert result.built and result.flavour == flavour and result.calibration_images == 32
    assert result.unquantized_weights == ()
    x = images(16, seed=7)
    agreement = compare_logits(run(tiny_graph, x), run(result.path, x))
    assert agreement["mean_cosine"] > 0.98 and agreement["top1_agreement"] >= 80


def test_tensorrt_flavour_is_signed_symmetric_per_channel_with_float_bias(built):
    model = onnx.load(str(built[2]["tensorrt"].path))
    values = initializers(model)
    producers = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero_point = values[node.input[2]]
            assert zero_point.dtype == np.int8 and not zero_point.any()
        if node.op_type == "Conv":
            weight_dq = producers[node.input[1]]
            assert weight_dq.op_type == "DequantizeLinear"
            assert values[weight_dq.input[0]].dtype == np.int8
            out_channels = values[weight_dq.input[0]].shape[0]
            assert values[weight_dq.input[1]].shape == (out_channels,)  # one scale per output channel
            if len(node.input) > 2:
                assert values[node.input[2]].dtype == np.float32  # bias left in float
            assert producers[node.input[0]].op_type == "DequantizeLinear"  # activation input quantized
    ops = {node.op_type for node in model.graph.node}
    assert "Relu" in ops  # kept for TensorRT to fuse


def test_onnxruntime_flavour_is_unsigned_and_fuses_into_integer_kernels(built, tmp_path):
    path = built[2]["onnxruntime"].path
    model = onnx.load(str(path))
    values = initializers(model)
    activation_zero_points = [values[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert activation_zero_points and all(zp.dtype == np.uint8 for zp in activation_zero_points)
    options = cpu_session_options()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    fused = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert fused.count("QLinearConv") == 3 and "Conv" not in fused


def test_unquantized_weights_names_float_weights(tiny_graph):
    assert len(unquantized_weights(tiny_graph)) == 4  # 3 Conv + 1 Gemm, all float in the FP32 graph


def test_cache_reuses_ranges_and_graphs(built, tiny_graph):
    cache, data, graphs = built
    calls = []
    again = build(cache, tiny_graph, "tensorrt", data, calls=calls)
    assert not again.built and again.path == graphs["tensorrt"].path and calls == []
    # Same images, different calibration settings: new ranges, new graph.
    other = build(cache, tiny_graph, "tensorrt", data, settings=CalibrationSettings(method="minmax"), calls=calls)
    assert other.built and other.ranges_path != graphs["tensorrt"].ranges_path and calls == ["tensorrt"]
    # Different calibration images (key): recalibrated.
    zeros = build(cache, tiny_graph, "tensorrt", np.zeros_like(data), key="calib-zeros", calls=calls)
    assert zeros.ranges_path != graphs["tensorrt"].ranges_path and len(calls) == 2


def test_interrupted_calibration_leaves_nothing_cached(tiny_graph, tmp_path):
    cache = ArtifactCache(tmp_path)

    def failing():
        yield images(8)
        raise KeyboardInterrupt  # e.g. Ctrl-C half-way

    with pytest.raises(KeyboardInterrupt):
        int8_graph(cache, tiny_graph, failing, "k", 16, CalibrationSettings(), "onnxruntime", progress=False)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == []
    result = build(cache, tiny_graph, "onnxruntime", images(16), key="k")
    assert result.built and result.path.is_file()


def test_fewer_images_than_asked_is_an_error(tiny_graph, tmp_path):
    with pytest.raises(ValidateError, match="gave 8 images, 20 were asked"):
        int8_graph(ArtifactCache(tmp_path), tiny_graph, lambda: [images(8)], "k", 20, CalibrationSettings(),
                   "tensorrt", progress=False)
    with pytest.raises(ValidateError, match="--flavour"):
        int8_graph(ArtifactCache(tmp_path), tiny_graph, lambda: [images(8)], "k", 8, CalibrationSettings(), "tflite")


# ----------------------------------------------------------------------------------------
# CLI


@pytest.fixture(scope="module")
def jpeg_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for index in range(6):
        # smooth, photo-like pixels; real JPEG files through the real preprocessing
        base = rng.integers(0, 255, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(base).resize((300, 240), Image.Resampling.BICUBIC).save(folder / f"img_{index}.JPEG", quality=90)
    return folder


@pytest.fixture(scope="module")
def tiny224(tmp_path_factory):
    """The tiny graph at the size the real preprocessing crops to (what the CLI feeds it)."""
    return export_tiny(tmp_path_factory.mktemp("tiny224") / "tiny224.onnx", size=224)


def cli(*argv):
    from res2net_validate.cli import main

    return main(["quantize", *map(str, argv)])


def test_cli_calibrates_a_directory_and_writes_the_graph(tiny224, jpeg_dir, tmp_path, capsys):
    graph = tiny224
    out = tmp_path / "int8.onnx"
    args = ["--graph", graph, "--calib-dir", jpeg_dir, "--calib-count", 5, "--flavour", "tensorrt",
            "--cache-dir", tmp_path / "cache", "--out", out]
    assert cli(*args) == 0
    printed = capsys.readouterr().out
    assert "calibration: 5 images" in printed and "s per 100 images" in printed
    assert "4/4 Conv/Gemm weights in int8 (left in float: none)" in printed
    assert "peak RSS" in printed and out.is_file()
    onnx.checker.check_model(str(out))
    assert cli(*args, "--worst-layers", 3) == 0
    printed = capsys.readouterr().out
    assert "ranges reused from the cache" in printed
    drift_lines = printed.split("drifting most from FP32")[1].splitlines()[1:4]
    assert len(drift_lines) == 3 and all("cosine" in line and "relative error" in line for line in drift_lines)

    listing = tmp_path / "list.txt"
    listing.write_text("img_3.JPEG\n\nimg_1.JPEG\n")
    assert cli("--graph", graph, "--calib-dir", jpeg_dir, "--calib-list", listing, "--method", "minmax",
               "--cache-dir", tmp_path / "cache") == 0
    assert "calibration: 2 images from --calib-list" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--calib-count", "50"], "fewer than --calib-count 50"),
        (["--calib-list", "missing.txt"], "--calib-list missing.txt: not found"),
        (["--calib-list", "LIST"], "listed images do not exist"),
        (["--method", "percentile", "--percentile", "120"], "--percentile 120"),
    ],
)
def test_cli_bad_input_is_one_clear_error(tiny_graph, jpeg_dir, tmp_path, capsys, extra, message):
    listing = tmp_path / "list.txt"
    listing.write_text("nope.JPEG\n")
    extra = [str(listing) if e == "LIST" else e for e in extra]
    assert cli("--graph", tiny_graph, "--calib-dir", jpeg_dir, "--cache-dir", tmp_path, *extra) == 2
    assert message in capsys.readouterr().err


def test_cli_unreadable_image_and_empty_dir(tiny_graph, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli("--graph", tiny_graph, "--calib-dir", tmp_path / "empty", "--cache-dir", tmp_path / "c") == 2
    assert "no images found" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.JPEG").write_bytes(b"not a jpeg")
    assert cli("--graph", tiny_graph, "--calib-dir", broken, "--cache-dir", tmp_path / "c") == 2
    error = capsys.readouterr().err
    assert "cannot decode image" in error and "skip" not in error  # the command has no --skip-bad-images
    assert not list((tmp_path / "c").rglob("*.json"))  # nothing cached from the failed pass


def test_onnxruntime_flavour_fused_kernels_compute_what_the_graph_means(built):
    """ORT's fused integer kernels give the same logits as running the Q/DQ nodes literally
    (no int16 saturation: reduce_range on x86 without VNNI)."""
    path = built[2]["onnxruntime"].path
    x = images(8, seed=11)
    literal = cpu_session_options()
    literal.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    unfused = ort.InferenceSession(str(path), literal, providers=["CPUExecutionProvider"]).run(["output"], {"input": x})[0]
    np.testing.assert_allclose(run(path, x), unfused, atol=1e-4)


def add_input_producers(path):
    model = onnx.load(str(path))
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    adds = [node for node in model.graph.node if node.op_type == "Add"]
    return sorted(tuple(sorted(producer.get(name) for name in node.input)) for node in adds)


def test_tensorrt_flavour_can_quantize_only_the_shortcut_of_a_residual_add(built, tiny_graph):
    """Default: both inputs of every Add quantized.  --residual-add shortcut: TensorRT's placement
    advice, Q/DQ on the residual Add's shortcut and the conv output in float (so the Add fuses
    into the conv), while the branch sum (inputs not from a conv) keeps both pairs."""
    cache, data, graphs = built
    assert add_input_producers(graphs["tensorrt"].path) == [("DequantizeLinear", "DequantizeLinear")] * 2
    shortcut = int8_graph(cache, tiny_graph, lambda: iter([data]), "calib-a", len(data), CalibrationSettings(),
                          "tensorrt", progress=False, recipe=recipe_for("tensorrt", "shortcut"))
    assert shortcut.built and shortcut.path != graphs["tensorrt"].path  # its own cache entry
    assert add_input_producers(shortcut.path) == [("Conv", "DequantizeLinear"), ("DequantizeLinear", "DequantizeLinear")]
    x = images(16, seed=5)
    assert compare_logits(run(tiny_graph, x), run(shortcut.path, x))["mean_cosine"] > 0.99
    with pytest.raises(ValidateError, match="--residual-add shortcut: only the tensorrt flavour"):
        recipe_for("onnxruntime", "shortcut")
    with pytest.raises(ValueError, match="not the onnxruntime flavour's"):  # one build, one recipe, its flavour's
        int8_graph(cache, tiny_graph, lambda: iter([data]), "calib-a", len(data), CalibrationSettings(),
                   "onnxruntime", progress=False, recipe=recipe_for("tensorrt", "shortcut"))


@pytest.mark.parametrize("content", [b"this is a text file, not a graph\n", b""])
def test_cli_a_graph_that_is_not_onnx_is_one_line_before_any_image_is_read(tmp_path, capsys, content):
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_bytes(content)
    broken = tmp_path / "broken"  # reading these would be a different error: the graph is checked first
    broken.mkdir()
    (broken / "bad.JPEG").write_bytes(b"not a jpeg")
    assert cli("--graph", not_onnx, "--calib-dir", broken, "--cache-dir", tmp_path / "c") == 2
    err = capsys.readouterr().err
    assert f"--graph {not_onnx}: not an ONNX model (" in err and "Pass an FP32 ONNX graph" in err
    assert "Traceback" not in err and "cannot decode image" not in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------
# One calibration source: the CLI and the pytest plugin key the same images alike


def _plugin_session(tmp_path, monkeypatch, cache_dir, calib_dir):
    """A session as the plugin builds it from --calib-dir, without a dataset; the checkpoint is not
    what these tests are about, so loading it is skipped."""
    from res2net_validate.graphs import checkpoint
    from res2net_validate.session import ValidationSession
    from res2net_validate.settings import OPTIONS, Settings

    weights = tmp_path / "res2net50_14w_8s.pth"
    weights.write_bytes(b"not read: load_model is replaced")
    monkeypatch.setattr(checkpoint, "load_model", lambda *args, **kwargs: None)
    values = {option.name: option.default for option in OPTIONS}
    values.update(weights=weights, checkpoints_dir=cache_dir, calib_dir=calib_dir, lock_timeout=None)
    return ValidationSession(Settings(values), progress=False)


def test_the_cli_and_the_plugin_give_the_same_images_the_same_calibration_key(jpeg_dir, tmp_path, monkeypatch):
    import hashlib

    from res2net_validate.cli.quantize import calibration_file_list, calibration_source
    from res2net_validate.data.preprocess import Preprocess

    preprocess = Preprocess()
    files = calibration_file_list(jpeg_dir, None, None)
    from_cli = calibration_source(files, preprocess, ArtifactCache(tmp_path / "cli-cache"), progress=False)
    # Its own cache: the images are decoded again, so equal keys come from equal pixels, not a shared entry.
    session = _plugin_session(tmp_path, monkeypatch, tmp_path / "plugin-cache", jpeg_dir)
    from_plugin = session.pipeline.artifacts(session.inputs.calibration_images(preprocess), preprocess).calibration
    assert from_plugin.count == from_cli.count == len(files) == 6
    assert from_cli.key == from_plugin.key
    # The key users' caches hold: sha256 of the uint8 pixel rows in order, then the preprocessing's key.
    digest = hashlib.sha256()
    for path in files:
        digest.update(preprocess.load_uint8(path).tobytes())
    digest.update(repr(preprocess.key_parts()).encode())
    assert from_plugin.key == digest.hexdigest()


def test_a_cli_quantize_is_reused_by_the_plugins_int8_build(tiny224, jpeg_dir, tmp_path, monkeypatch, capsys):
    from res2net_validate.data.preprocess import Preprocess
    from res2net_validate.graphs import quantize
    from res2net_validate.graphs.export import Graph

    cache = tmp_path / "cache"
    assert cli("--graph", tiny224, "--calib-dir", jpeg_dir, "--cache-dir", cache) == 0  # defaults, as the plugin's
    printed = capsys.readouterr().out
    assert "calibration: 6 images" in printed and "s per 100 images" in printed
    cli_graph = next(line.split(": ", 1)[1] for line in printed.splitlines() if line.startswith("int8 graph ("))

    def recalibrate(*args, **kwargs):
        raise AssertionError("the plugin recomputed the ranges the CLI had cached")

    monkeypatch.setattr(quantize, "collect_ranges", recalibrate)
    session = _plugin_session(tmp_path, monkeypatch, cache, jpeg_dir)
    preprocess = Preprocess()
    artifacts = session.pipeline.artifacts(session.inputs.calibration_images(preprocess), preprocess)
    artifacts.graphs[("fp32", "any")] = Graph(tiny224, "fp32", built=False)  # a Res2Net50 export takes minutes
    int8 = artifacts.graph_info("int8", "onnxruntime")  # the CLI's default flavour
    assert not int8.built and str(int8.path) == cli_graph


def test_one_quantize_decides_its_recipe_once(tiny224, jpeg_dir, tmp_path, monkeypatch, capsys):
    """The CLI decides the recipe (before reading images) and the build uses it: no second decision
    that could disagree with the first."""
    from res2net_validate.cli import quantize as cli_quantize
    from res2net_validate.graphs import quantize

    decided = []

    def counting(*args, **kwargs):
        decided.append(args)
        return recipe_for(*args, **kwargs)

    monkeypatch.setattr(quantize, "recipe_for", counting)
    monkeypatch.setattr(cli_quantize, "recipe_for", counting)
    assert cli("--graph", tiny224, "--calib-dir", jpeg_dir, "--calib-count", 2, "--method", "minmax",
               "--flavour", "tensorrt", "--residual-add", "shortcut", "--cache-dir", tmp_path) == 0
    assert decided == [("tensorrt", "shortcut")]
    assert "int8 graph (tensorrt, residual Adds: shortcut, built)" in capsys.readouterr().out
