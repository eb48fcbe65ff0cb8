"""Torch backend: the real res2net50_14w_8s on CPU, fed real JPEG files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from res2net_validate.backends import devices
from res2net_validate.backends.base import Runner
from res2net_validate.backends.pytorch import CudaMathMode, TorchBackend, math_mode_for
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
            assert report.cuda_graph and runner.info.extra["cuda_graph"], report.notes  # captured, or why not
            proof = runner.precision_proof()
            assert proof.proven, proof.offending[:3]
            if precision == "fp32":  # the flags torch reported while the forward ran
                assert proof.summary["torch_flags"]["cudnn.allow_tf32"] is False
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


@pytest.fixture
def hopper_defaults():
    """torch's defaults on a CUDA build (cuDNN TF32 allowed) with matmul TF32 allowed too, restored after."""
    backends = torch.backends
    saved = backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32, backends.cudnn.benchmark
    backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32, backends.cudnn.benchmark = True, True, False
    yield
    backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32, backends.cudnn.benchmark = saved


def _flags_while_layers_run(model) -> dict:
    """What torch's real flags say at the moment the first convolution and the classifier run."""
    seen = {}

    def at_conv(*_):
        seen.update(conv=torch.backends.cudnn.allow_tf32, benchmark=torch.backends.cudnn.benchmark)

    def at_fc(*_):
        seen.update(fc=torch.backends.cuda.matmul.allow_tf32)

    next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).register_forward_pre_hook(at_conv)
    model.fc.register_forward_pre_hook(at_fc)
    return seen


def test_a_cuda_runner_runs_fp32_with_tf32_off_and_restores_the_flags(model, images, hopper_defaults):
    """The forward runs under the math mode a CUDA fp32 runner gets (math_mode_for(..., "cuda", "fp32")):
    real torch flags, read by hooks while the layers run; only the device is the CPU here."""
    import copy

    mode = math_mode_for(torch, "cuda", "fp32")
    assert isinstance(mode, CudaMathMode) and math_mode_for(torch, "cpu", "fp32") is None
    runner = TorchBackend(device="cpu").open(copy.deepcopy(model), "fp32", (2,))
    runner.math_mode = mode
    seen = _flags_while_layers_run(runner.model)
    runner.infer(images)
    assert seen == {"conv": False, "fc": False, "benchmark": True}  # IEEE fp32, autotuned algorithms
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)  # restored
    assert torch.backends.cudnn.benchmark is False
    proof = runner.precision_proof()
    assert proof.proven and proof.summary["torch_flags"]["cudnn.allow_tf32"] is False
    assert "cudnn.allow_tf32=False, cuda.matmul.allow_tf32=False" in proof.checked
    assert proof.summary["layer_precisions"] == {"float32": proof.layers}


def test_the_proof_names_fp32_layers_that_ran_in_tf32(model, images, hopper_defaults):
    """A runner that left TF32 on (torch's default for convolutions) must not pass as FP32."""
    import copy

    runner = TorchBackend(device="cpu").open(copy.deepcopy(model), "fp32", (2,))
    runner.math_mode = CudaMathMode(torch, "fp32", allow_tf32=True)
    runner.infer(images)
    proof = runner.precision_proof()
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert not proof.proven and len(proof.offending) == proof.layers == convs + 1  # every Conv2d and the fc
    assert "fc (Linear) [tf32]" in proof.offending and proof.summary["layer_precisions"] == {"tf32": convs + 1}
    assert "cudnn.allow_tf32=True" in proof.checked


def test_fp16_leaves_tf32_alone_and_the_proof_before_any_forward_reads_what_the_runner_sets(hopper_defaults):
    with CudaMathMode(torch, "fp16") as mode:
        assert mode.in_effect() == {"cudnn.allow_tf32": True, "cuda.matmul.allow_tf32": True, "cudnn.benchmark": True}
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    runner = TorchBackend(device="cpu").open(net, "fp32", (1,))
    assert runner.precision_proof().summary.get("torch_flags") is None  # CPU: TF32 does not apply
    runner.math_mode = math_mode_for(torch, "cuda", "fp32")
    assert runner.flags_seen is None and runner.precision_proof().proven  # what it would set: TF32 off
