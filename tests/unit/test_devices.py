"""GPU / driver / CUDA / TensorRT discovery, skip reasons and xdist worker -> GPU mapping."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from res2net_validate.backends import devices
from res2net_validate.backends.devices import DeviceReport, GpuInfo

SMI_CSV = (
    "0, NVIDIA H100 80GB HBM3, 550.54.15, 9.0, 81559, GPU-0f5e1a2b-aaaa-bbbb-cccc-000000000000\n"
    "1, NVIDIA H100 80GB HBM3, 550.54.15, 9.0, 81559, GPU-1f5e1a2b-aaaa-bbbb-cccc-000000000001\n"
)
SMI_BANNER = """
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
"""


def test_parse_nvidia_smi_rows():
    gpus = devices.parse_nvidia_smi_csv(SMI_CSV)
    assert gpus[0] == GpuInfo(
        "0", "NVIDIA H100 80GB HBM3", "550.54.15", "9.0", 81559, "GPU-0f5e1a2b-aaaa-bbbb-cccc-000000000000"
    )
    assert [g.index for g in gpus] == ["0", "1"]
    old = devices.parse_nvidia_smi_csv("0, Tesla T4, 470.82.01, [N/A], [N/A], GPU-x\n")
    assert old[0].compute_capability == "" and old[0].memory_mib is None
    odd = devices.parse_nvidia_smi_csv("0, NVIDIA Graphics Device, Rev B, 535.1, 9.0, 1024, GPU-y\n")
    assert odd[0].name == "NVIDIA Graphics Device, Rev B" and odd[0].driver == "535.1"
    assert devices.parse_cuda_version(SMI_BANNER) == "12.4"
    assert devices.parse_cuda_version("no banner") == ""


def _fake_smi(csv_ok_with_compute_cap=True):
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        query = next((a for a in cmd if a.startswith("--query-gpu=")), None)
        if query is None:
            return subprocess.CompletedProcess(cmd, 0, SMI_BANNER, "")
        if "compute_cap" in query and not csv_ok_with_compute_cap:
            return subprocess.CompletedProcess(cmd, 2, "", 'Field "compute_cap" is not a valid field to query.')
        rows = SMI_CSV if "compute_cap" in query else SMI_CSV.replace(" 9.0,", "")
        return subprocess.CompletedProcess(cmd, 0, rows, "")

    return run, calls


def test_query_nvidia_smi_retries_without_compute_cap_on_old_drivers():
    run, calls = _fake_smi(csv_ok_with_compute_cap=False)
    gpus, cuda, problem = devices.query_nvidia_smi(run, which=lambda name: "/usr/bin/nvidia-smi")
    assert len(calls) == 3 and "compute_cap" not in calls[1][1]
    assert [g.name for g in gpus] == ["NVIDIA H100 80GB HBM3"] * 2 and gpus[0].memory_mib == 81559
    assert cuda == "12.4" and problem == ""
    assert devices.query_nvidia_smi(run, which=lambda name: None) == ([], "", "nvidia-smi not found")


def test_probe_uses_nvidia_smi_and_reports_tensorrt(monkeypatch):
    monkeypatch.setattr(devices, "tensorrt_version", lambda: ("10.9.0.34", ""))
    run, _ = _fake_smi()
    report = devices.probe_devices(run, which=lambda name: "/usr/bin/nvidia-smi", use_torch=False, env={})
    assert report.source == "nvidia-smi" and report.has_gpu and report.driver == "550.54.15"
    assert report.tensorrt == "10.9.0.34" and report.cuda_driver == "12.4"


@pytest.mark.parametrize("value", ["-1", "", "7", "GPU-ffff"])
def test_cuda_visible_devices_that_hides_every_gpu_means_no_gpu(value):
    run, _ = _fake_smi()
    env = {"CUDA_VISIBLE_DEVICES": value}
    report = devices.probe_devices(run, which=lambda name: "/usr/bin/nvidia-smi", use_torch=False, env=env)
    assert not report.has_gpu and report.all_driver == "550.54.15"
    assert devices.gpu_skip_reason(report) == f"needs a CUDA GPU: CUDA_VISIBLE_DEVICES={value!r} hides every GPU nvidia-smi lists"


@pytest.mark.parametrize(
    "value, indices",
    [("1", ["1"]), ("1,0", ["1", "0"]), ("GPU-1f5e", ["1"]), ("GPU-0f5e1a2b-aaaa-bbbb-cccc-000000000000,9,1", ["0"]),
     ("MIG-abcd", ["0", "1"])],
)  # fmt: skip
def test_nvidia_smi_gpus_are_filtered_the_way_cuda_reads_the_variable(value, indices):
    run, _ = _fake_smi()
    env = {"CUDA_VISIBLE_DEVICES": value}
    report = devices.probe_devices(run, which=lambda name: "/usr/bin/nvidia-smi", use_torch=False, env=env)
    assert [g.index for g in report.gpus] == indices


@pytest.mark.parametrize(
    "cuda_driver, driver, extra",
    [("12.4", "550.54.15", "trt-cu12"), ("13.0", "580.65.06", "trt-cu13"), ("", "580.65.06", "trt-cu13"),
     ("", "575.57.08", "trt-cu12"), ("11.8", "520.61.05", ""), ("", "", "")],
)  # fmt: skip
def test_the_tensorrt_extra_follows_the_driver(cuda_driver, driver, extra):
    assert devices.recommended_trt_extra(cuda_driver, driver) == extra


def test_install_hints_name_the_extra_for_the_driver_found():
    report = DeviceReport(gpus=devices.parse_nvidia_smi_csv(SMI_CSV), cuda_driver="12.4")
    assert devices.trt_install_hint(report) == (
        "pip install .[trt-cu12] (driver 550.54.15 supports CUDA up to 12.4; the CUDA 12 tensorrt and cuda-python wheels)"
    )
    hidden = DeviceReport(all_driver="580.65.06")
    assert devices.trt_install_hint(hidden).startswith("pip install .[trt-cu13] (driver 580.65.06")
    old = DeviceReport(cuda_driver="11.4", all_driver="470.82.01")
    assert devices.trt_install_hint(old).startswith("update the NVIDIA driver to 525+")
    assert devices.trt_install_hint(DeviceReport()) == devices.TRT_INSTALL_HINT


def test_header_lines_for_a_gpu_machine(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    report = DeviceReport(
        gpus=devices.parse_nvidia_smi_csv(SMI_CSV), cuda_driver="12.4", torch_cuda="12.1",
        tensorrt="10.9.0.34", cuda_python="12.6.0", source="nvidia-smi",
    )  # fmt: skip
    assert devices.report_header_lines(report) == [
        "res2net_validate GPU: 2 x NVIDIA H100 80GB HBM3 (sm_90)",
        "res2net_validate CUDA: driver 550.54.15, driver CUDA 12.4, torch CUDA 12.1, CUDA_VISIBLE_DEVICES=1",
        "res2net_validate TensorRT: 10.9.0.34, cuda-python 12.6.0",
    ]
    assert devices.gpu_skip_reason(report) is None and devices.tensorrt_skip_reason(report) is None
    report.cuda_python = ""
    assert "needs cuda-python" in devices.tensorrt_skip_reason(report)


def test_header_and_skip_reasons_without_gpu_or_tensorrt():
    report = DeviceReport(problem="nvidia-smi not found; torch.cuda.is_available() is False",
                          tensorrt_problem="tensorrt is not importable (ModuleNotFoundError: No module named 'tensorrt')")  # fmt: skip
    lines = devices.report_header_lines(report)
    assert lines[0] == "res2net_validate GPU: no CUDA GPU (nvidia-smi not found; torch.cuda.is_available() is False)"
    assert lines[1].startswith("res2net_validate TensorRT: not available (pip install .[trt-cu12] (NVIDIA driver 525+)")
    assert (
        devices.gpu_skip_reason(report) == "needs a CUDA GPU: nvidia-smi not found; torch.cuda.is_available() is False"
    )
    assert devices.tensorrt_skip_reason(report).startswith("needs a CUDA GPU")
    report.gpus = [GpuInfo("0", "NVIDIA L4", compute_capability="8.9")]
    reason = devices.tensorrt_skip_reason(report)
    assert reason.startswith("needs TensorRT: pip install .[trt-cu12]") and "No module named 'tensorrt'" in reason


def test_this_machine_is_described_without_errors():
    lines = devices.report_header_lines(devices.probe_devices())
    assert lines[0].startswith("res2net_validate GPU: ") and lines[-1].startswith("res2net_validate TensorRT: ")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0,1", ["0", "1"]),
        (" 2 , 3 ", ["2", "3"]),
        ("", []),
        ("-1", []),
        ("0,-1,1", ["0"]),  # CUDA ignores everything after an invalid entry
        ("GPU-0f5e1a2b,MIG-1234", ["GPU-0f5e1a2b", "MIG-1234"]),
    ],
)
def test_visible_gpus_honours_cuda_visible_devices(value, expected):
    assert devices.visible_gpus({"CUDA_VISIBLE_DEVICES": value}) == expected


def test_visible_gpus_without_the_variable_lists_every_gpu_by_uuid():
    # by UUID: nvidia-smi's index is PCI order, CUDA's ordinal is fastest first
    report = DeviceReport(gpus=devices.parse_nvidia_smi_csv(SMI_CSV))
    assert devices.visible_gpus({}, report) == [
        "GPU-0f5e1a2b-aaaa-bbbb-cccc-000000000000", "GPU-1f5e1a2b-aaaa-bbbb-cccc-000000000001"
    ]  # fmt: skip
    no_uuid = DeviceReport(gpus=[GpuInfo("0", "Tesla T4")])
    assert devices.visible_gpus({}, no_uuid) == ["0"]


def test_each_xdist_worker_gets_one_gpu_round_robin():
    assignments = {}
    for worker in ("gw0", "gw1", "gw2", "gw3", "gw4"):
        env = {}
        assignments[worker] = devices.assign_gpu_for_worker(worker, ["2", "3"], env)
        assert env == {"CUDA_VISIBLE_DEVICES": assignments[worker]}
    assert assignments == {"gw0": "2", "gw1": "3", "gw2": "2", "gw3": "3", "gw4": "2"}
    env = {"CUDA_VISIBLE_DEVICES": ""}
    assert devices.assign_gpu_for_worker("gw1", [], env) == "" and env == {"CUDA_VISIBLE_DEVICES": ""}
    for bad in ("master", "gw", "gwx", "1"):
        with pytest.raises(ValueError, match="not a pytest-xdist worker id"):
            devices.assign_gpu_for_worker(bad, ["0"], {})


def test_assignment_after_cuda_initialisation_warns(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.warns(RuntimeWarning, match="CUDA was initialised before xdist worker gw1"):
        assert devices.assign_gpu_for_worker("gw1", ["0", "1"]) == "1"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_assignment_takes_effect_in_a_fresh_worker_process():
    """What a worker does in pytest_configure: pin the GPU before CUDA is touched."""
    code = (
        "import os; from res2net_validate.backends import devices;"
        "chosen = devices.assign_gpu_for_worker('gw1', devices.visible_gpus());"
        "print(chosen, os.environ['CUDA_VISIBLE_DEVICES'])"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="4,5")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["5", "5"]


@pytest.mark.gpu
def test_a_gpu_machine_reports_its_gpu():
    reason = devices.gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    report = devices.device_report()
    assert report.gpus[0].name in devices.report_header_lines(report)[0]
    assert report.gpus[0].driver or report.source == "torch.cuda"
