"""The session resolves what a backend runs before opening it: the INT8 flavour is decided once
(by --int8-flavour, else by the backend's declaration), and a missing calibration set skips
before any backend is opened."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_tensorrt import FakeCudaRuntime, FakeTensorRT

from res2net_validate.backends.onnxruntime import OnnxRuntimeBackend
from res2net_validate.backends.pytorch import TorchBackend
from res2net_validate.backends.tensorrt import TensorRTBackend
from res2net_validate.cache import ArtifactCache
from res2net_validate.errors import NotConfigured
from res2net_validate.graphs.artifacts import Artifacts
from res2net_validate.graphs.calibrate import CalibrationSettings
from res2net_validate.graphs.checkpoint import Checkpoint
from res2net_validate.session import ValidationSession
from res2net_validate.settings import Settings


def _session(tmp_path: Path, runs_on=None, **values) -> ValidationSession:
    defaults = {"embedded": False, "weights": None, "dataset_dir": None, "checkpoints_dir": tmp_path / "cache",
                "backend": "onnxruntime", "int8_flavour": "auto", "batch_size": 2, "lock_timeout": None,
                "calib_method": "minmax", "calib_percentile": 99.99, "calib_dir": None, "precision": ("fp32",),
                "thresholds": None}
    sources = {name: "default" for name in (*defaults, *values)}
    return ValidationSession(Settings({**defaults, **values}, sources), progress=False, backend=runs_on)


def _fake_tensorrt(cache) -> TensorRTBackend:
    cuda = FakeCudaRuntime()
    return TensorRTBackend(cache=cache, trt=FakeTensorRT(cuda=cuda), cuda=cuda, progress=False)


@pytest.mark.parametrize("chosen, backend, flavour", [
    ("auto", "onnxruntime", "onnxruntime"),
    ("auto", "tensorrt", "tensorrt"),
    ("onnxruntime", "tensorrt", "onnxruntime"),  # --int8-flavour wins over the backend's declaration
    ("tensorrt", "onnxruntime", "tensorrt"),
])
def test_the_int8_flavour_is_the_option_or_the_backends_declaration(tmp_path, chosen, backend, flavour):
    cache = ArtifactCache(tmp_path / "cache")
    session = _session(tmp_path, int8_flavour=chosen,
                       runs_on=_fake_tensorrt(cache) if backend == "tensorrt" else OnnxRuntimeBackend())
    assert session.backend.int8_flavour == backend
    assert session.capabilities.int8_flavour() == flavour


def test_the_registry_hands_the_tensorrt_backend_the_sessions_cache(tmp_path):
    session = _session(tmp_path, backend="tensorrt")
    assert session.backend.name == "tensorrt" and session.backend.cache is session.cache


def test_int8_without_calibration_images_skips_before_any_backend_opens(tmp_path):
    opened = []

    class Recording(OnnxRuntimeBackend):  # the real backend, noting what it is asked to open
        def open(self, graph, precision, batch_sizes=(32,)):
            opened.append(graph)
            return super().open(graph, precision, batch_sizes)

    session = _session(tmp_path, runs_on=Recording(), precision=("int8",))
    assert not session.capabilities.calibrate()
    artifacts = Artifacts(session.cache, Checkpoint(tmp_path / "unused.pth"), None, CalibrationSettings("minmax"),
                          progress=False)
    with pytest.raises(NotConfigured, match=r"^INT8 needs calibration images: pass --calib-dir DIR, or "
                                            r"--dataset-dir DIR to carve them out of val$"):
        session.pipeline.runner("int8", artifacts)
    assert opened == [] and artifacts.graphs == {}


def test_artifacts_never_choose_an_int8_flavour(tmp_path):
    artifacts = Artifacts(tmp_path, Checkpoint(tmp_path / "unused.pth"), None, CalibrationSettings("minmax"),
                          progress=False)
    with pytest.raises(ValueError, match="needs its Q/DQ flavour"):
        artifacts.graph("int8")


def test_every_backend_declares_what_open_receives(tmp_path):
    from res2net_validate.backends.base import RUNS_ONNX, RUNS_TORCH, Backend

    backends = (OnnxRuntimeBackend(), TorchBackend(device="cpu"),
                TensorRTBackend(cache=ArtifactCache(tmp_path), trt=FakeTensorRT()))
    assert [(b.runs, b.int8_flavour) for b in backends] == [
        (RUNS_ONNX, "onnxruntime"), (RUNS_TORCH, None), (RUNS_ONNX, "tensorrt")]
    assert all(isinstance(b, Backend) for b in backends)
    assert not TorchBackend(device="cpu").supports("int8")


def test_the_checkpoint_is_loaded_once_per_run_with_a_cold_cache(tmp_path, monkeypatch):
    """source() checks the weights, the torch backend runs them and the FP32 export needs them:
    one load between them, and the export's cache key is the file's content as before."""
    import numpy as np
    import torch

    from res2net_validate.data.preprocess import Preprocess
    from res2net_validate.graphs import checkpoint
    from res2net_validate.graphs.export import fp32_graph

    torch.manual_seed(0)
    weights = tmp_path / "res2net50_14w_8s-random.pth"
    torch.save(checkpoint.create_model().state_dict(), weights)
    loads = []
    real_load = checkpoint.load_model
    monkeypatch.setattr(checkpoint, "load_model", lambda *args, **kw: loads.append(args) or real_load(*args, **kw))

    # CPU even where a GPU is visible
    session = _session(tmp_path, weights=weights, runs_on=TorchBackend(device="cpu"), precision=("fp32",))
    session.inputs.source()
    artifacts = session.pipeline.artifacts(None, Preprocess())
    runner = session.pipeline.runner("fp32", artifacts)
    exported = artifacts.graph_info("fp32")  # what an ONNX consumer of the same run asks for, on a cold cache
    assert [args[0] for args in loads] == [weights]
    assert runner.model is session.inputs.checkpoint().model() and exported.built and exported.check.max_abs_diff < 1e-3
    images = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with torch.inference_mode():
        assert np.allclose(runner.infer(images), real_load(weights)(torch.from_numpy(images)).numpy(), atol=1e-5)

    again = fp32_graph(session.cache, weights)  # the default loader's key: the same cache entry, a hit
    assert again.path == exported.path and not again.built
    runner.close()


@pytest.mark.parametrize("values, score, calibrate", [
    ({}, "no weights: pass --weights FILE", "INT8 needs calibration images"),
    ({"weights": "w.pth"}, "no ImageNet val: pass --dataset-dir DIR", "INT8 needs calibration images"),
    ({"weights": "w.pth", "calib_dir": "calib"}, "no ImageNet val", None),
    ({"weights": "w.pth", "dataset_dir": "val"}, None, None),
    ({"embedded": True}, None, None),
])
def test_one_object_says_what_can_run_here_and_why_not(tmp_path, values, score, calibrate):
    values = {name: tmp_path / value if isinstance(value, str) else value for name, value in values.items()}
    capabilities = _session(tmp_path, runs_on=OnnxRuntimeBackend(), precision=("fp32", "int8"), **values).capabilities
    for answer, expected in ((capabilities.score(), score), (capabilities.calibrate(), calibrate)):
        assert bool(answer) is (expected is None) and (expected or "") in answer.reason
    # INT8 runs where the backend runs it and it has calibration images; the reason is the first "no"
    assert bool(capabilities.run("int8")) is (calibrate is None)
    torch = _session(tmp_path, runs_on=TorchBackend(device="cpu"), **values).capabilities.run("int8")
    assert not torch and torch.reason.startswith("backend torch cannot run int8: ")


def test_a_backend_named_explicitly_that_cannot_run_a_precision_is_refused_at_start(tmp_path):
    from res2net_validate.errors import ValidateError

    session = _session(tmp_path, runs_on=TorchBackend(device="cpu"), precision=("int8",), weights=tmp_path / "w.pth",
                       backend="torch")
    with pytest.raises(ValidateError, match=r"^--backend torch \(from default\) cannot run int8: "):
        session.preflight.check_backend()


def test_memoised_answers_are_per_argument_and_keep_unhashable_arguments_alive():
    from res2net_validate.session.memo import memoised

    class Counting:
        calls = 0

        @memoised
        def twice(self, value):
            Counting.calls += 1
            return [value, value]

    counting = Counting()
    listed = [1]  # unhashable: keyed by identity
    assert counting.twice(3) is counting.twice(3) and counting.twice(4) == [4, 4]
    assert counting.twice(listed) is counting.twice(listed) and counting.twice([1]) is not counting.twice(listed)
    assert Counting.calls == 4
