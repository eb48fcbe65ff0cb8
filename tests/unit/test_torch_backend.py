"""Torch backend: the real res2net50_14w_8s on CPU, fed real JPEG files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from res2net_validate.backends import devices
from res2net_validate.backends.base import Runner
from res2net_validate.backends.pytorch import TorchBackend
from res2net_validate.errors import ValidateError
from res2net_validate.graphs.checkpoint import create_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model().eval()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> np.ndarray:
    """Two JPEGs written and decoded for real, preprocessed like the card (256 / 224 crop)."""
    from PIL import Image
    from torchvision import transforms

    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:300, 0:400]
    pictures = [
        np.stack([x * 255 // 400, y * 255 // 300, (x + y) % 256], axis=-1),
        rng.integers(0, 256, size=(280, 360, 3)),
    ]
    preprocess = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        ]
    )
    batch = []
    for index, pixels in enumerate(pictures):
        path = root / f"ILSVRC2012_val_{index + 1:08d}.JPEG"
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)
        with Image.open(path) as image:
            batch.append(preprocess(image.convert("RGB")).numpy())
    return np.stack(batch).astype(np.float32)


def test_cpu_fp32_logits_match_the_models_own_forward(model, images):
    runner = TorchBackend(device="cpu").open(model, "fp32", (2,))
    assert isinstance(runner, Runner)
    assert runner.info.backend == "torch" and runner.info.precision == "fp32"
    assert runner.info.device.startswith("CPU (") and runner.info.extra["dtype"] == "float32"
    logits = runner.infer(images)
    with torch.inference_mode():
        expected = model(torch.from_numpy(images)).numpy()
    assert logits.dtype == np.float32 and logits.shape == (2, 1000)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(runner.infer(images[1:]), expected[1:], rtol=1e-4, atol=1e-4)  # batch-independent
    assert np.abs(logits[0] - logits[1]).max() > 1e-3  # two different pictures, two different answers
    runner.close()
    parameter = next(model.parameters())
    assert parameter.dtype == torch.float32 and parameter.device.type == "cpu"  # shared model untouched


def test_cpu_timed_call_and_benchmark(model, images):
    runner = TorchBackend(device="cpu").open(model, "fp32", (2,))
    run_once = runner.timed_call(images[:1])
    assert run_once() is None
    report = runner.benchmark(images[:1], warmup_s=0.0, duration_s=0.0, min_iterations=1)
    assert report.iterations == 1 and report.batch_size == 1 and report.throughput > 0
    assert report.compute.count == 1 and report.h2d is None and not report.cuda_graph
    runner.close()


def test_int8_is_refused_with_a_clear_message(model):
    backend = TorchBackend(device="cpu")
    assert not backend.supports("int8")
    with pytest.raises(ValidateError, match="int8 is not supported by the torch backend.*--backend onnxruntime"):
        backend.open(model, "int8", (32,))


def test_fp16_needs_cuda(model):
    backend = TorchBackend(device="cpu")
    assert "needs a CUDA GPU" in backend.supports("fp16").reason
    with pytest.raises(
        ValidateError, match="--backend torch --precision fp16: fp16 with the torch backend needs a CUDA GPU"
    ):
        backend.open(model, "fp16", (32,))
    assert not TorchBackend().supports("bf16")


def test_default_device_follows_cuda_availability(monkeypatch):
    import res2net_validate.backends.pytorch as module

    monkeypatch.setattr(module, "_cuda_available", lambda: False)
    assert TorchBackend().device() == "cpu" and TorchBackend().availability()
    assert not TorchBackend(device="cuda").availability()
    monkeypatch.setattr(module, "_cuda_available", lambda: True)
    assert TorchBackend().device() == "cuda"


@pytest.mark.gpu
def test_cuda_fp16_agrees_with_cpu_fp32(model, images):
    reason = devices.gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    reference = TorchBackend(device="cpu").open(model, "fp32", (2,)).infer(images)
    for precision in ("fp32", "fp16"):
        runner = TorchBackend(device="cuda").open(model, precision, (2,))
        try:
            assert runner.info.extra["memory_format"] == "channels_last"
            logits = runner.infer(images)
            assert logits.dtype == np.float32
            scale = float(np.abs(reference).max())  # random weights: judge the error against the logit scale
            tolerance = (0.02 if precision == "fp16" else 1e-3) * scale + 1e-3
            assert float(np.abs(logits - reference).max()) <= tolerance
            report = runner.benchmark(images, warmup_s=0.05, duration_s=0.1, min_iterations=3, copy_repeats=3)
            assert report.h2d is not None and report.throughput > 0
        finally:
            runner.close()
    assert next(model.parameters()).dtype == torch.float32  # the shared CPU model was copied, not converted


def test_precision_proof_reads_the_dtype_of_every_conv_and_linear_weight_that_runs(model):
    import copy

    runner = TorchBackend(device="cpu").open(copy.deepcopy(model), "fp32")
    proof = runner.precision_proof()
    assert proof.proven and proof.layers == sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
                                                for m in model.modules())
    runner.model.fc.half()  # a module that is not in the asked dtype
    broken = runner.precision_proof()
    assert not broken.proven and broken.offending == ["fc (Linear) [float16]"]
