"""Streaming calibration: statistics, KL search, tensor selection, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from res2net_validate.graphs.calibrate import (
    CalibrationSettings,
    TensorRanges,
    _TensorStats,
    calibration_tensors,
    collect_ranges,
    entropy_threshold_bins,
    relu_fed_tensors,
)
from res2net_validate.errors import ValidateError


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


def export_tiny(path, size=32):
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
    return export_tiny(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def images(n, seed=0, size=32):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size), dtype=np.float32)


def batches_of(data, size):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def all_activations(graph, data):
    """Every calibrated tensor computed in one plain ORT run (the reference for min/max)."""
    model = onnx.load(str(graph))
    names = [n for n in calibration_tensors(model) if n != "input"]
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n != "output")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip(names, session.run(names, {"input": data})))
    values["input"] = data
    return values


def brute_force_kl_bins(hist, levels):
    hist = hist.astype(np.float64)
    best = (math.inf, None)
    for cut in range(levels, len(hist) + 1):
        p = hist[:cut].copy()
        p[-1] += hist[cut:].sum()
        width = cut // levels
        q = np.zeros(cut)
        for level in range(levels):
            start, end = level * width, (level + 1) * width if level < levels - 1 else cut
            part = hist[start:end]
            if (part > 0).any():
                q[start:end] = np.where(part > 0, part.sum() / (part > 0).sum(), 0)
        p, q = p / p.sum(), q / q.sum()
        mask = p > 0
        kl = math.inf if (q[mask] == 0).any() else float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
        if kl <= best[0]:  # ties: the widest range
            best = (kl, cut)
    return best[1]


@pytest.mark.parametrize("seed", range(8))
def test_entropy_search_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    values = np.abs(rng.standard_t(2 + seed % 4, size=20_000))
    hist, _ = np.histogram(values, bins=int(rng.integers(140, 500)), range=(0, values.max()))
    if seed % 2:  # empty bins inside and an isolated outlier bin at the end
        hist[rng.integers(0, len(hist), size=len(hist) // 3)] = 0
        hist[-1] = 2
    levels = 16 if seed % 3 else 128
    assert entropy_threshold_bins(hist, levels) == brute_force_kl_bins(hist, levels)


def test_entropy_clips_a_long_tail_and_keeps_a_bounded_one():
    rng = np.random.default_rng(0)
    long_tail = np.abs(rng.standard_cauchy(200_000))
    hist, edges = np.histogram(long_tail, bins=2048, range=(0, long_tail.max()))
    assert entropy_threshold_bins(hist, 128) < 2048 // 4  # most of the range is outliers
    uniform = rng.uniform(0, 1, 200_000)
    hist, _ = np.histogram(uniform, bins=2048, range=(0, 1))
    assert entropy_threshold_bins(hist, 128) > 2048 * 0.9  # nothing worth clipping


def test_streaming_histogram_equals_one_shot_histogram():
    rng = np.random.default_rng(1)
    chunks = [rng.standard_normal(5000).astype(np.float32) * scale for scale in (1, 1.5, 9, 40, 2)]
    stats = _TensorStats(num_bins=64, with_histogram=True)
    for chunk in chunks:
        stats.update(chunk)
    everything = np.abs(np.concatenate(chunks))
    used = len(np.trim_zeros(stats.hist, "b"))
    assert 64 <= used <= 128  # grew and merged, resolution kept
    direct = np.bincount(np.minimum((everything / stats.bin_width).astype(int), len(stats.hist) - 1), minlength=len(stats.hist))
    assert stats.hist.sum() == everything.size
    assert np.abs(stats.hist - direct).sum() <= 4  # float rounding at bin edges only
    assert stats.min == np.concatenate(chunks).min() and stats.max == np.concatenate(chunks).max()


def onnxruntime_minmax(graph, data, tmp_path):
    """onnxruntime's own (memory-hungry) MinMax calibrator on ``data`` in one go."""
    from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": data}])

        def get_next(self):
            return next(self.items, None)

    calibrator = create_calibrator(graph, augmented_model_path=str(tmp_path / "aug.onnx"), calibrate_method=CalibrationMethod.MinMax)
    calibrator.collect_data(Reader())
    return {name: tuple(float(np.ravel(v)[0]) for v in td.range_value) for name, td in calibrator.compute_data().items()}


def test_minmax_matches_a_full_run_and_onnxruntime_calibrator(tiny_graph, tmp_path):
    data = images(24)
    ranges = collect_ranges(tiny_graph, batches_of(data, 5), CalibrationSettings(method="minmax", batch_size=4), progress=False)
    borrowed = relu_fed_tensors(onnx.load(str(tiny_graph)))
    assert len(borrowed) == 3  # stem conv, branch conv, residual add: each read only by its Relu
    reference = all_activations(tiny_graph, data)
    theirs = onnxruntime_minmax(tiny_graph, data, tmp_path)
    assert set(ranges.ranges) == set(reference) == set(theirs)
    for name, value in reference.items():
        expected = reference[borrowed[name]] if name in borrowed else value
        assert ranges.ranges[name] == pytest.approx((expected.min(), expected.max()), rel=1e-6)
        if name not in borrowed:
            assert ranges.ranges[name] == pytest.approx(theirs[name], rel=1e-6)


@pytest.mark.parametrize("flavour", ["onnxruntime", "tensorrt"])
def test_borrowed_relu_ranges_give_the_same_graph_as_onnxruntime_ranges(tiny_graph, tmp_path, flavour):
    """Not measuring Relu-fed tensors changes nothing in what the quantizer writes."""
    from res2net_validate.graphs.quantize import quantize_graph, recipe_for

    data = images(16, seed=5)
    ours = collect_ranges(tiny_graph, [data], CalibrationSettings(method="minmax"), progress=False)
    theirs = TensorRanges("minmax", {}, 16, onnxruntime_minmax(tiny_graph, data, tmp_path))
    quantize_graph(tiny_graph, ours, recipe_for(flavour), tmp_path / "ours.onnx")
    quantize_graph(tiny_graph, theirs, recipe_for(flavour), tmp_path / "theirs.onnx")
    a, b = (onnx.load(str(tmp_path / f)) for f in ("ours.onnx", "theirs.onnx"))
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    b_values = {i.name: onnx.numpy_helper.to_array(i) for i in b.graph.initializer}
    for init in a.graph.initializer:
        np.testing.assert_allclose(onnx.numpy_helper.to_array(init), b_values[init.name], rtol=1e-6)


def test_results_do_not_depend_on_the_callers_batching(tiny_graph):
    data = images(20, seed=3)
    settings = CalibrationSettings(method="entropy", num_bins=256, num_quantized_bins=32, batch_size=8)
    one = collect_ranges(tiny_graph, batches_of(data, 3), settings, progress=False)
    other = collect_ranges(tiny_graph, batches_of(data, 20), settings, progress=False)
    assert one.ranges == other.ranges and one.num_images == 20


def test_methods_clip_within_minmax(tiny_graph):
    data = images(16, seed=4)
    data[0, 0, 0, 0] = 60.0  # one outlier pixel
    runs = {
        m: collect_ranges(tiny_graph, batches_of(data, 8), CalibrationSettings(method=m, percentile=99.9), progress=False)
        for m in ("minmax", "percentile", "entropy")
    }
    full = collect_ranges(tiny_graph, batches_of(data, 8), CalibrationSettings(method="percentile", percentile=100.0), progress=False)
    assert full.ranges == runs["minmax"].ranges  # the 100th percentile is the max
    for method in ("percentile", "entropy"):
        lo, hi = runs[method].ranges["input"]
        assert hi < 10.0  # the outlier is clipped
        for name, (lo, hi) in runs[method].ranges.items():
            mn, mx = runs["minmax"].ranges[name]
            assert mn <= lo <= hi <= mx


def test_ranges_round_trip_and_feed_onnxruntime(tiny_graph, tmp_path):
    ranges = collect_ranges(tiny_graph, [images(4)], CalibrationSettings(), progress=False)
    ranges.save(tmp_path / "r.json")
    loaded = TensorRanges.load(tmp_path / "r.json")
    assert loaded.ranges == ranges.ranges and loaded.num_images == 4 and loaded.method == "entropy"
    data = loaded.to_tensors_data()
    assert data["input"].range_value[0].dtype == np.float32
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValidateError, match="bad.json"):
        TensorRanges.load(tmp_path / "bad.json")


def test_memory_is_bounded_by_the_run_size(tiny_graph, monkeypatch):
    """The session never sees more than batch_size images at once, whatever the caller sends."""
    from res2net_validate.graphs import calibrate

    seen = []
    real = calibrate._augmented_session

    def spying(model, names):
        session = real(model, names)

        class Spy:
            def run(self, outputs, feeds):
                seen.append(len(feeds["input"]))
                return session.run(outputs, feeds)

        return Spy()

    monkeypatch.setattr(calibrate, "_augmented_session", spying)
    collect_ranges(tiny_graph, [images(13)], CalibrationSettings(method="minmax", batch_size=4), progress=False)
    assert seen == [4, 4, 4, 1]


@pytest.mark.parametrize(
    "source, message",
    [
        ([], "no images"),
        ([np.zeros((0, 3, 32, 32), np.float32)], "no images"),
        ([np.zeros((2, 3, 16, 16), np.float32)], "expected float32 N x 3x32x32"),
        ([np.zeros((2, 3, 32, 32), np.uint8)], "dtype uint8"),
        ([np.full((2, 3, 32, 32), np.nan, np.float32)], "NaN or inf in the calibration images"),
    ],
)
def test_bad_calibration_sources(tiny_graph, source, message):
    with pytest.raises(ValidateError, match=message):
        collect_ranges(tiny_graph, iter(source), CalibrationSettings(), progress=False)


def test_bad_settings():
    with pytest.raises(ValidateError, match="--method"):
        CalibrationSettings(method="kl")
    with pytest.raises(ValidateError, match="--percentile"):
        CalibrationSettings(method="percentile", percentile=0)
    with pytest.raises(ValidateError, match="num_bins"):
        CalibrationSettings(num_bins=64, num_quantized_bins=128)
    assert CalibrationSettings("minmax").key_parts() == CalibrationSettings("minmax", percentile=50).key_parts()
    assert CalibrationSettings("entropy").key_parts() != CalibrationSettings("entropy", num_bins=1024).key_parts()


def test_zero_and_denormal_tensors_do_not_break_the_histogram():
    stats = _TensorStats(num_bins=16, with_histogram=True)
    stats.update(np.zeros(10, np.float32))
    stats.update(np.full(10, 1e-40, np.float32))
    assert stats.clip_threshold(CalibrationSettings(num_bins=16, num_quantized_bins=4)) == math.inf
    stats.update(np.linspace(-2, 2, 101, dtype=np.float32))
    assert stats.hist.sum() == 121 and stats.hist[0] >= 20
    lo, hi = stats.range(CalibrationSettings(method="percentile", percentile=100.0, num_bins=16, num_quantized_bins=4))
    assert (lo, hi) == (-2.0, 2.0)


def test_entropy_ignores_the_spike_of_exact_zeros():
    """Half of a ReLU output is exactly 0; that must not pull the threshold into the bulk."""
    rng = np.random.default_rng(2)
    relu_like = np.maximum(rng.standard_normal(400_000).astype(np.float32), 0)
    stats = _TensorStats(num_bins=2048, with_histogram=True)
    stats.update(relu_like)
    settings = CalibrationSettings(method="entropy")
    assert stats.clip_threshold(settings) > 0.6 * relu_like.max()
    without_zeros = _TensorStats(num_bins=2048, with_histogram=True)
    without_zeros.update(relu_like[relu_like > 0])
    assert stats.clip_threshold(settings) == pytest.approx(without_zeros.clip_threshold(settings), rel=0.1)
