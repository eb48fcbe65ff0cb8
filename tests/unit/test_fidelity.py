"""Fidelity figures: logit and prediction agreement, and the per-layer drift of a quantized graph."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch

from res2net_validate.cache import ArtifactCache
from res2net_validate.graphs.calibrate import CalibrationSettings
from res2net_validate.errors import ValidateError
from res2net_validate.graphs.fidelity import layer_comparison
from res2net_validate.imagenet import canonical_wnids
from res2net_validate.predictions import Predictions, compare_logits, compare_runs
from res2net_validate.graphs.quantize import int8_graph


def test_identical_logits_agree_perfectly():
    logits = np.random.default_rng(0).standard_normal((50, 1000)).astype(np.float32)
    figures = compare_logits(logits, logits.copy())
    assert figures["top1_agreement"] == 100.0 and figures["images"] == 50
    assert figures["mean_cosine"] == pytest.approx(1.0) and figures["mean_kl"] == pytest.approx(0.0, abs=1e-12)


def test_figures_match_a_direct_computation():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((4, 5))
    candidate = reference + rng.standard_normal((4, 5)) * 0.5
    candidate[0] = reference[0][::-1]  # surely a different top-1 for image 0
    figures = compare_logits(reference, candidate)
    agree = np.mean(reference.argmax(1) == candidate.argmax(1)) * 100
    p = np.exp(reference) / np.exp(reference).sum(1, keepdims=True)
    q = np.exp(candidate) / np.exp(candidate).sum(1, keepdims=True)
    kl = np.mean(np.sum(p * np.log(p / q), axis=1))
    cosine = np.mean([a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(reference, candidate)])
    assert figures["top1_agreement"] == pytest.approx(agree) and agree < 100
    assert figures["mean_kl"] == pytest.approx(kl) and figures["mean_cosine"] == pytest.approx(cosine)


def test_huge_logits_do_not_overflow():
    reference = np.array([[1000.0, 0.0, -1000.0]])
    figures = compare_logits(reference, reference * 1.01)
    assert np.isfinite(figures["mean_kl"])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValidateError, match="same"):
        compare_logits(np.zeros((3, 10)), np.zeros((2, 10)))


def _predictions(precision, top1, labels, logits=None):
    top5 = np.stack([top1, *[(np.asarray(top1) + k) % 1000 for k in range(1, 5)]], axis=1)
    names = tuple(f"img{i}.JPEG" for i in range(len(labels)))
    return Predictions(precision, names, np.asarray(labels, np.int64), top5.astype(np.int32), logits)


def test_runs_compare_by_top1_and_name_the_lost_classes_by_wnid():
    labels = [3, 3, 3, 7]
    reference = _predictions("fp32", [3, 3, 3, 7], labels)
    candidate = _predictions("int8", [3, 9, 9, 7], labels)  # two images of class 3 lost, none gained
    figures = compare_runs(reference, candidate)
    assert figures["images"] == 4 and figures["top1_agreement"] == 50.0
    assert figures["classes_lost"] == [{"class": 3, "label": canonical_wnids()[3], "lost": 2, "gained": 0}]
    assert "mean_cosine" not in figures  # no logits at hand: top-5 only, as from a cached reference


def test_runs_with_logits_add_the_logit_figures():
    logits = np.random.default_rng(2).standard_normal((4, 1000)).astype(np.float32)
    top1 = logits.argmax(1)
    figures = compare_runs(_predictions("fp32", top1, top1, logits), _predictions("fp16", top1, top1, logits * 2))
    assert figures["top1_agreement"] == 100.0 and figures["classes_lost"] == []
    assert figures["mean_cosine"] == pytest.approx(1.0)


def test_runs_on_different_images_are_an_error():
    reference = _predictions("fp32", [1, 2], [1, 2])
    candidate = Predictions("int8", ("a.JPEG", "b.JPEG"), reference.labels, reference.top5)
    with pytest.raises(ValidateError, match="different images"):
        compare_runs(reference, candidate)


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        y = torch.relu(self.conv2(y) + y)
        return self.fc(y.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fidelity")
    torch.manual_seed(0)
    path = folder / "fp32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TinyNet().eval(), torch.zeros(1, 3, 16, 16), str(path), input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          opset_version=17, dynamo=False)
    data = np.random.default_rng(0).standard_normal((16, 3, 16, 16)).astype(np.float32)
    int8 = {
        flavour: int8_graph(ArtifactCache(folder / "cache"), path, lambda: [data], "k", 16, CalibrationSettings("minmax"),
                            flavour, progress=False).path
        for flavour in ("onnxruntime", "tensorrt")
    }
    return path, int8, data


def test_fp32_against_itself_has_no_drift(graphs):
    fp32, _, data = graphs
    drifts = layer_comparison(fp32, fp32, data[:2], top=50)
    assert drifts and all(d.cosine == pytest.approx(1.0) and d.relative_error == pytest.approx(0.0, abs=1e-6) for d in drifts)


@pytest.mark.parametrize("flavour", ["onnxruntime", "tensorrt"])
def test_quantized_layers_are_compared_by_name_worst_first(graphs, flavour):
    fp32, int8, data = graphs
    drifts = layer_comparison(fp32, int8[flavour], data[:2], top=3)
    assert len(drifts) == 3
    assert [d.cosine for d in drifts] == sorted(d.cosine for d in drifts)
    fp32_names = {out for node in onnx.load(str(fp32)).graph.node for out in node.output}
    assert all(d.tensor in fp32_names for d in drifts)
    assert all(0.9 < d.cosine < 1.0 and 0.0 < d.relative_error < 0.3 for d in drifts)
    assert all(set(d.as_dict()) == {"tensor", "producer", "cosine", "relative_error"} for d in drifts)


def test_an_unrelated_graph_is_an_error(graphs, tmp_path):
    from onnx import TensorProto, helper

    fp32, _, data = graphs
    unrelated = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["input"], ["something_else"])], "unrelated",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 16, 16])],
        [helper.make_tensor_value_info("something_else", TensorProto.FLOAT, ["n", 3, 16, 16])]))
    onnx.save(unrelated, str(tmp_path / "unrelated.onnx"))
    with pytest.raises(ValidateError, match="shares no tensor names"):
        layer_comparison(fp32, tmp_path / "unrelated.onnx", data[:1])
