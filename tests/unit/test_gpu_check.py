"""scripts/gpu_check.py: the wheelhouse plan, the install choice, the budgets of one device call,
and real `run`s on a CPU machine: every GPU phase skipped with its reason, a phase stopped at the
deadline, and a run killed midway that still leaves a valid JSON naming finished and pending phases."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import signal
import subprocess
import sys
import time
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
    assert ">=69" in plan["setuptools"]["requires"]  # the build requirement: `pip install -e` needs it
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


PHASES = ["probe", "setup", "torch-cuda", "cuda-graph-timing", "gpu-unit-tests", "tensorrt"]


def test_the_budgets_fit_one_device_call_in_the_order_that_gets_evidence_first():
    assert list(gpu_check.BUDGET_S) == PHASES
    assert gpu_check.LIMIT_S <= 540 and sum(gpu_check.BUDGET_S.values()) < gpu_check.LIMIT_S
    assert gpu_check.budgets_fit() and not gpu_check.budgets_fit(sum(gpu_check.BUDGET_S.values()))
    assert len(gpu_check.OUT_FILES) <= 8  # what one call brings back
    assert set(gpu_check.ACCEPTANCE_PHASE.values()) <= set(PHASES)  # OUT_FILES names the files of real phases


def _no_gpu_reason() -> str:
    reason = devices.gpu_skip_reason()
    if reason is None:
        pytest.skip("a GPU is present: `make gpu-check` runs the real steps there")
    return reason


def _command(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "run", f"--out={tmp_path / 'out'}",
            f"--wheelhouse={tmp_path / 'no-wheelhouse'}", f"--venv={tmp_path / 'venv'}",
            f"--cache={tmp_path / 'cache'}", *extra]  # fmt: skip


def _record(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "gpu-check.json").read_text())


def test_gpu_check_on_a_cpu_machine_skips_every_gpu_step_with_its_reason(tmp_path):
    reason = _no_gpu_reason()
    out = tmp_path / "out"
    done = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu-check.json", "gpu-check.log"]
    record = _record(tmp_path)
    assert [s["name"] for s in record["steps"]] == PHASES and record["finished"] == PHASES
    assert record["pending"] == [] and record["complete"] and record["exit_status"] == 0
    assert [s["status"] for s in record["steps"][:2]] == ["passed", "passed"]
    for step in record["steps"][2:]:
        assert step["status"] == "skipped" and step["reason"] == reason, step
    assert "no-wheelhouse" in record["setup"]["note"] and record["seconds"] < gpu_check.LIMIT_S
    assert record["environment"]["gpus"] == [] and record["environment"]["python"]
    assert record["environment"]["packages"]["pytest"] == metadata.version("pytest")
    log = (out / "gpu-check.log").read_text()
    assert "[tensorrt] skipped: needs a CUDA GPU" in log and "-e " in log  # the project went in with --no-deps


def test_a_phase_stops_at_the_calls_deadline_and_later_ones_are_skipped_for_lack_of_time(tmp_path):
    _no_gpu_reason()
    # --run-without-gpu: the torch phase really runs (on the CPU) and cannot finish within 14 s
    done = subprocess.run(_command(tmp_path, "--run-without-gpu", "--limit=14"), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    record = _record(tmp_path)
    steps = {s["name"]: s for s in record["steps"]}
    assert done.returncode == 1 and record["exit_status"] == 1 and record["complete"]
    assert steps["torch-cuda"]["status"] == "timed-out" and steps["torch-cuda"]["returncode"] == 124
    assert steps["gpu-unit-tests"]["status"] == "skipped" and "no time left" in steps["gpu-unit-tests"]["reason"]
    assert record["seconds"] < 14 + 10  # the deadline held (plus the record's own bookkeeping)


@pytest.mark.parametrize("how", ["SIGKILL of the whole call", "SIGTERM"])
def test_a_run_killed_midway_leaves_a_valid_json_naming_finished_and_pending_phases(tmp_path, how):
    _no_gpu_reason()
    process = subprocess.Popen(_command(tmp_path, "--run-without-gpu"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        running = None
        for _ in range(600):  # until the torch phase runs (a few seconds), at most 60 s
            time.sleep(0.1)
            path = tmp_path / "out" / "gpu-check.json"
            running = path.is_file() and _record(tmp_path)["steps"][2]["status"] == "running"
            if running:
                break
        assert running, "the torch phase never started"
        if how == "SIGTERM":
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGKILL)  # what a call's time limit does: nothing can run after it
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    record = _record(tmp_path)  # valid JSON, whatever moment the kill came
    assert record["finished"] == ["probe", "setup"] and record["pending"] == PHASES[2:]
    assert not record["complete"] and record["environment"]["python"]
    statuses = [s["status"] for s in record["steps"][2:]]
    if how == "SIGTERM":  # a polite stop: the running phase is named and the child is gone
        assert process.returncode == 1 and record["exit_status"] == 1 and record["interrupted"] == "SIGTERM"
        assert statuses == ["interrupted", "pending", "pending", "pending"]
    else:
        assert statuses == ["running", "pending", "pending", "pending"] and "exit_status" not in record
