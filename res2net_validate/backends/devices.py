"""Which CPU, GPU, driver, CUDA and TensorRT this run uses, and which GPU each xdist worker gets.

Discovery never initialises CUDA in the calling process when ``nvidia-smi`` can answer
(so the pytest controller can print its header before xdist workers pick their GPUs);
torch.cuda is the fallback.  Every probe degrades to a sentence saying what is missing.

nvidia-smi ignores ``CUDA_VISIBLE_DEVICES``, so its list is filtered by that variable the
way CUDA reads it ("" or "-1": no GPU).  Under pytest-xdist each worker pins one visible GPU
by UUID (nvidia-smi numbers GPUs in PCI order, CUDA fastest first) by setting
``CUDA_VISIBLE_DEVICES`` in its own process before anything touches CUDA (see
``assign_gpu_for_worker``).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, MutableMapping, Sequence

TRT_INSTALL_HINT = (
    "pip install .[trt-cu12] (NVIDIA driver 525+) or .[trt-cu13] (driver 580+): the tensorrt and cuda-python "
    "wheels for one CUDA major"
)
CUDA13_MIN_DRIVER = 580  # CUDA 13.x wheels need driver 580 or newer; CUDA 12.x ones 525 or newer
CUDA12_MIN_DRIVER = 525


def cpu_description() -> str:
    """The host's CPU model and core count, for the report header and the CPU runners' device field."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"CPU {model} ({os.cpu_count()} cores)".replace("  ", " ").strip()


def recommended_trt_extra(cuda_driver: str = "", driver: str = "") -> str:
    """The extra matching the driver: from the highest CUDA it supports (nvidia-smi banner,
    or cuDriverGetVersion as "13.0"), else from the driver version ("580.65.06"); "" if unknown."""
    major = re.match(r"\s*(\d+)", cuda_driver or "")
    if major:
        cuda_major = int(major.group(1))
        return "trt-cu13" if cuda_major >= 13 else "trt-cu12" if cuda_major == 12 else ""
    branch = re.match(r"\s*(\d+)", driver or "")
    if branch:
        number = int(branch.group(1))
        return "trt-cu13" if number >= CUDA13_MIN_DRIVER else "trt-cu12" if number >= CUDA12_MIN_DRIVER else ""
    return ""


def trt_install_hint(report: "DeviceReport | None" = None) -> str:
    """What to pip install for TensorRT on this machine, named from the driver found."""
    if report is None:
        return TRT_INSTALL_HINT
    driver = report.driver or report.all_driver
    extra = recommended_trt_extra(report.cuda_driver, driver)
    found = f"driver {driver}" if driver else "the driver"
    found += f" supports CUDA up to {report.cuda_driver}" if report.cuda_driver else ""
    if extra:
        return f"pip install .[{extra}] ({found}; the CUDA {extra[-2:]} tensorrt and cuda-python wheels)"
    if driver or report.cuda_driver:
        return f"update the NVIDIA driver to {CUDA12_MIN_DRIVER}+ ({found}), then pip install .[trt-cu12]"
    return TRT_INSTALL_HINT


@dataclass(frozen=True)
class GpuInfo:
    index: str
    name: str
    driver: str = ""
    compute_capability: str = ""  # "9.0"
    memory_mib: int | None = None
    uuid: str = ""


@dataclass
class DeviceReport:
    gpus: list[GpuInfo] = field(default_factory=list)
    cuda_driver: str = ""  # highest CUDA version the driver supports (nvidia-smi banner)
    torch_cuda: str = ""  # CUDA version torch was built with
    tensorrt: str = ""  # tensorrt.__version__, "" when not importable
    tensorrt_problem: str = ""  # why TensorRT is not importable
    cuda_python: str = ""
    source: str = ""  # "nvidia-smi" or "torch.cuda"
    problem: str = ""  # why no GPU was found
    all_driver: str = ""  # the driver nvidia-smi reports even when CUDA_VISIBLE_DEVICES hides every GPU

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def driver(self) -> str:
        return self.gpus[0].driver if self.gpus else ""


# ----------------------------------------------------------------------------- nvidia-smi

_SMI_FIELDS = ("index", "name", "driver_version", "compute_cap", "memory.total", "uuid")


def parse_nvidia_smi_csv(text: str, fields: Sequence[str] = _SMI_FIELDS) -> list[GpuInfo]:
    """Rows of ``nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [v.strip() for v in line.split(",")]
        extra = len(cells) - len(fields)
        if extra > 0 and "name" in fields:  # a GPU name with commas in it
            at = list(fields).index("name")
            cells[at : at + extra + 1] = [", ".join(cells[at : at + extra + 1])]
        values = dict(zip(fields, cells, strict=False))
        memory = values.get("memory.total", "")
        gpus.append(
            GpuInfo(
                index=values.get("index", str(len(gpus))),
                name=values.get("name", "unknown GPU"),
                driver=values.get("driver_version", ""),
                compute_capability=_clean(values.get("compute_cap", "")),
                memory_mib=int(float(memory)) if re.fullmatch(r"\d+(\.\d+)?", memory) else None,
                uuid=_clean(values.get("uuid", "")),
            )
        )
    return gpus


def parse_cuda_version(smi_banner: str) -> str:
    """'CUDA Version: 12.4' from the plain ``nvidia-smi`` banner."""
    match = re.search(r"CUDA Version:\s*([0-9.]+)", smi_banner)
    return match.group(1) if match else ""


def _clean(value: str) -> str:
    return "" if value.strip().lower() in ("", "[n/a]", "n/a", "[not supported]") else value.strip()


Runner = Callable[..., subprocess.CompletedProcess]


def _smi(args: list[str], run: Runner) -> str | None:
    try:
        done = run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def query_nvidia_smi(run: Runner = subprocess.run, which: Callable[[str], str | None] = shutil.which):
    """(gpus, cuda_driver_version, problem) from nvidia-smi, without initialising CUDA here."""
    if which("nvidia-smi") is None:
        return [], "", "nvidia-smi not found"
    fields = list(_SMI_FIELDS)
    text = _smi([f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"], run)
    if text is None:  # old drivers do not know compute_cap
        fields.remove("compute_cap")
        text = _smi([f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"], run)
    if text is None:
        return [], "", "nvidia-smi failed (is the NVIDIA driver loaded?)"
    gpus = parse_nvidia_smi_csv(text, fields)
    banner = _smi([], run) or ""
    return gpus, parse_cuda_version(banner), "" if gpus else "nvidia-smi lists no GPU"


def cuda_visible_entries(env: Mapping[str, str] | None = None) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` as CUDA reads it: None when unset, else the entries up to the
    first invalid one ("" and "-1" hide every GPU)."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" not in env:
        return None
    visible = []
    for entry in (e.strip() for e in env["CUDA_VISIBLE_DEVICES"].split(",")):
        if not entry or entry.startswith("-"):
            break  # CUDA stops at the first invalid entry
        visible.append(entry)
    return visible


def filter_visible(gpus: list[GpuInfo], entries: list[str] | None) -> list[GpuInfo]:
    """The nvidia-smi GPUs that ``CUDA_VISIBLE_DEVICES`` leaves visible, in its order.

    UUID entries (or their unique prefixes) name one GPU exactly; integer entries are CUDA
    ordinals, matched to nvidia-smi's index (the same GPU under CUDA_DEVICE_ORDER=PCI_BUS_ID;
    otherwise at least the same count).  A MIG entry keeps its parent unknown: every GPU stays."""
    if entries is None:
        return list(gpus)
    chosen: list[GpuInfo] = []
    for entry in entries:
        if entry.upper().startswith("MIG-"):
            return list(gpus)
        if entry.isdigit():
            match = [g for g in gpus if g.index == entry]
        else:
            match = [g for g in gpus if g.uuid and g.uuid.lower().startswith(entry.lower())]
        if len(match) != 1:
            break  # an entry CUDA cannot resolve ends the list, as in CUDA
        if match[0] not in chosen:
            chosen.append(match[0])
    return chosen


# ----------------------------------------------------------------------------- probes


def tensorrt_version() -> tuple[str, str]:
    """(version, problem): TensorRT's own ``__version__`` when it imports."""
    try:
        import tensorrt
    except Exception as exc:  # ImportError, or the pip stub failing to find its libraries
        return "", f"tensorrt is not importable ({type(exc).__name__}: {str(exc).strip()[:160]})"
    version = str(getattr(tensorrt, "__version__", ""))
    if not version:
        return "", "the imported tensorrt module has no __version__ (not NVIDIA's TensorRT?)"
    return version, ""


def cuda_python_version() -> str:
    from ..versions import package_versions

    found = package_versions("cuda-python", "cuda-bindings", skip_missing=True)
    return next(iter(found.values()), "")


def _torch_gpus() -> tuple[list[GpuInfo], str, str]:
    try:
        import torch
    except ImportError:
        return [], "", "torch is not importable"
    built_with = torch.version.cuda or ""
    if not built_with:
        return [], "", f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return [], built_with, "torch.cuda.is_available() is False"
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            GpuInfo(
                index=str(index),
                name=props.name,
                compute_capability=f"{props.major}.{props.minor}",
                memory_mib=int(props.total_memory // 2**20),
            )
        )
    return gpus, built_with, ""


def probe_devices(
    run: Runner = subprocess.run, which=shutil.which, use_torch: bool = True, env: Mapping[str, str] | None = None
) -> DeviceReport:
    """Everything the report header shows.  Uncached; see ``device_report``."""
    report = DeviceReport()
    gpus, cuda_driver, smi_problem = query_nvidia_smi(run, which)
    report.cuda_driver = cuda_driver
    report.all_driver = gpus[0].driver if gpus else ""
    entries = cuda_visible_entries(env)
    if gpus and entries is not None:
        gpus = filter_visible(gpus, entries)
        if not gpus:
            value = (os.environ if env is None else env)["CUDA_VISIBLE_DEVICES"]
            smi_problem = f"CUDA_VISIBLE_DEVICES={value!r} hides every GPU nvidia-smi lists"
            use_torch = False  # torch would only confirm it, after initialising CUDA here
    torch_problem = ""
    if use_torch:
        try:
            import torch

            report.torch_cuda = torch.version.cuda or ""
        except ImportError:
            pass
    if gpus:
        report.gpus, report.source = gpus, "nvidia-smi"
    elif use_torch:  # initialises CUDA in this process: only when nvidia-smi cannot answer
        gpus, _, torch_problem = _torch_gpus()
        if gpus:
            report.gpus, report.source = gpus, "torch.cuda"
    if not report.gpus:
        report.problem = "; ".join(p for p in (smi_problem, torch_problem) if p) or "no CUDA GPU found"
    report.tensorrt, report.tensorrt_problem = tensorrt_version()
    report.cuda_python = cuda_python_version()
    return report


@functools.lru_cache(maxsize=1)
def device_report() -> DeviceReport:
    """``probe_devices()`` once per process."""
    return probe_devices()


# ----------------------------------------------------------------------------- report text


def describe_gpus(report: DeviceReport) -> str:
    if not report.gpus:
        return f"no CUDA GPU ({report.problem})" if report.problem else "no CUDA GPU"
    names: dict[str, int] = {}
    for gpu in report.gpus:
        label = gpu.name + (f" (sm_{gpu.compute_capability.replace('.', '')})" if gpu.compute_capability else "")
        names[label] = names.get(label, 0) + 1
    return ", ".join(f"{count} x {label}" if count > 1 else label for label, count in names.items())


def report_header_lines(report: DeviceReport | None = None) -> list[str]:
    """Lines for ``pytest_report_header`` (and the CLI's ``info``)."""
    report = report or device_report()
    lines = [f"res2net_validate GPU: {describe_gpus(report)}"]
    if report.gpus:
        parts = []
        if report.driver:
            parts.append(f"driver {report.driver}")
        if report.cuda_driver:
            parts.append(f"driver CUDA {report.cuda_driver}")
        if report.torch_cuda:
            parts.append(f"torch CUDA {report.torch_cuda}")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            parts.append(f"CUDA_VISIBLE_DEVICES={visible}")
        if parts:
            lines.append("res2net_validate CUDA: " + ", ".join(parts))
    if report.tensorrt:
        extra = f", cuda-python {report.cuda_python}" if report.cuda_python else ", cuda-python missing"
        lines.append(f"res2net_validate TensorRT: {report.tensorrt}{extra}")
    else:
        lines.append(f"res2net_validate TensorRT: not available ({trt_install_hint(report)})")
    return lines


def gpu_skip_reason(report: DeviceReport | None = None) -> str | None:
    """None when a CUDA GPU is present, else the reason for ``pytest.skip``."""
    report = report or device_report()
    if report.has_gpu:
        return None
    return f"needs a CUDA GPU: {report.problem or 'none found'}"


def tensorrt_skip_reason(report: DeviceReport | None = None) -> str | None:
    """None when TensorRT, cuda-python and a GPU are all present."""
    report = report or device_report()
    no_gpu = gpu_skip_reason(report)
    if no_gpu:
        return no_gpu
    if not report.tensorrt:
        return f"needs TensorRT: {trt_install_hint(report)}; {report.tensorrt_problem}"
    if not report.cuda_python:
        return f"needs cuda-python for TensorRT's buffers and streams: {trt_install_hint(report)}"
    return None


# ----------------------------------------------------------------------------- xdist workers


def visible_gpus(env: Mapping[str, str] | None = None, report: DeviceReport | None = None) -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries.

    An existing ``CUDA_VISIBLE_DEVICES`` wins ("" or "-1" means none) and is kept as written,
    since CUDA reads a worker's entry the way it read the parent's; otherwise every GPU
    nvidia-smi lists, by UUID: nvidia-smi's index is PCI order, but CUDA's default order
    (CUDA_DEVICE_ORDER=FASTEST_FIRST) may differ, so an index could pin the wrong GPU.
    Call it before CUDA is initialised.
    """
    entries = cuda_visible_entries(env)
    if entries is not None:
        return entries
    if report is None:
        gpus, _, _ = query_nvidia_smi()
    else:
        gpus = report.gpus
    return [gpu.uuid or gpu.index for gpu in gpus]


def worker_index(worker_id: str) -> int:
    """'gw3' -> 3 (pytest-xdist worker ids)."""
    match = re.fullmatch(r"gw(\d+)", worker_id.strip())
    if not match:
        raise ValueError(f"not a pytest-xdist worker id: {worker_id!r} (expected 'gw<N>')")
    return int(match.group(1))


def assign_gpu_for_worker(
    worker_id: str,
    visible: list[str],
    env: MutableMapping[str, str] | None = None,
) -> str:
    """Pin xdist worker ``gw<N>`` to ``visible[N % len(visible)]`` by setting
    ``CUDA_VISIBLE_DEVICES`` in this process; returns the chosen entry ("" when there is
    no GPU, leaving the environment alone).

    It only works before CUDA is initialised in this process, so call it first thing in
    ``pytest_configure`` on workers.  More workers than GPUs share GPUs round-robin (fine
    for accuracy; performance numbers are then contended, and pytest-benchmark disables
    itself under xdist anyway).
    """
    env = os.environ if env is None else env
    if not visible:
        return ""
    chosen = visible[worker_index(worker_id) % len(visible)]
    torch = sys.modules.get("torch")
    if torch is not None and env is os.environ and getattr(torch.cuda, "is_initialized", lambda: False)():
        warnings.warn(
            f"CUDA was initialised before xdist worker {worker_id} could pick GPU {chosen}; "
            "CUDA_VISIBLE_DEVICES has no effect now and every worker may share one GPU",
            RuntimeWarning,
            stacklevel=2,
        )
    env["CUDA_VISIBLE_DEVICES"] = chosen
    return chosen
