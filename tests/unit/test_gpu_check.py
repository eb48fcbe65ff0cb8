"""scripts/gpu_check.py: the wheelhouse plan, the install choice and a real `run` on a CPU
machine, where every GPU step must be skipped with its reason and the run must succeed."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from res2net_validate.backends import devices

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check  # noqa: E402


def test_the_wheelhouse_is_the_pure_python_closure_plus_onnxsim():
    plan = gpu_check.wheelhouse_plan("3.12")
    for name in ("pytest", "pluggy", "pytest-benchmark", "pytest-xdist", "execnet", "platformdirs", "tqdm"):
        assert plan[name]["pure"] and plan[name]["version"] == metadata.version(name), name
    assert ">=9" in plan["pytest"]["requires"]  # the project's own pin, checked on the GPU machine
    assert not plan["onnxsim"]["pure"]  # the one binary wheel: the export needs it
    for binary in ("torch", "numpy", "onnxruntime", "onnx", "pillow", "pyyaml"):
        assert binary not in plan, binary  # the GPU machine's own
    assert all(entry["pure"] or name in gpu_check.EXTRA_BINARY for name, entry in plan.items())


def test_only_missing_or_too_old_packages_are_installed():
    packages = {
        "pytest": {"version": "9.2.0", "requires": [">=9"], "file": "pytest-9.2.0-py3-none-any.whl"},
        "tqdm": {"version": "4.70.1", "requires": [">=4.66"], "file": "tqdm-4.70.1-py3-none-any.whl"},
        "platformdirs": {"version": "4.14.9", "requires": [">=4"], "file": "platformdirs-4.14.9-py3-none-any.whl"},
        "execnet": {"version": "2.1.2", "requires": [], "file": "execnet-2.1.2-py3-none-any.whl"},
    }
    have = {"pytest": "8.3.5", "tqdm": "4.67.0", "platformdirs": None, "execnet": "2.0.0"}
    install, kept = gpu_check.wheels_to_install(packages, have)
    assert install == ["pytest-9.2.0-py3-none-any.whl", "platformdirs-4.14.9-py3-none-any.whl"]
    assert kept == ["tqdm 4.67.0", "execnet 2.0.0"]


def test_gpu_check_on_a_cpu_machine_skips_every_gpu_step_with_its_reason(tmp_path):
    reason = devices.gpu_skip_reason()
    if reason is None:
        pytest.skip("a GPU is present: `make gpu-check` runs the real steps there")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "run", f"--out={out}",
         f"--wheelhouse={tmp_path / 'no-wheelhouse'}", f"--venv={tmp_path / 'venv'}", f"--cache={tmp_path / 'cache'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu-check.json", "gpu-check.log"]
    record = json.loads((out / "gpu-check.json").read_text())
    assert [s["name"] for s in record["steps"]] == ["gpu-unit-tests", "torch-cuda", "cuda-graph-timing", "tensorrt"]
    for step in record["steps"]:
        assert step["status"] == "skipped" and step["reason"] == reason, step
    assert record["exit_status"] == 0 and "no-wheelhouse" in record["setup"]["note"]
    assert record["environment"]["gpus"] == [] and record["environment"]["python"]
    log = (out / "gpu-check.log").read_text()
    assert "[tensorrt] skipped: needs a CUDA GPU" in log and "-e " in log  # the project went in with --no-deps
