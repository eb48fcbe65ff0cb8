"""What to run in the first minutes a GPU machine is available (``make gpu-check``), and the
wheelhouse it installs from (``make wheelhouse``).

    python scripts/gpu_check.py wheelhouse [--dir .wheelhouse] [--python-version 3.12]
        On a machine with the project's venv and network: wheels of the project's
        pure-Python dependencies (the versions installed here, where the suite passes) plus
        onnxsim (binary, needed by the export) for the GPU machine's Python, and
        wheelhouse.json saying which requirement each one satisfies.

    python scripts/gpu_check.py run [--out out/gpu-check] [--wheelhouse .wheelhouse]
        On the GPU machine (torch with CUDA and onnxruntime installed, no network): a venv
        that sees the machine's packages (--system-site-packages), the wheelhouse's wheels
        that the machine lacks or has too old, the project itself with --no-deps, then

          1. the gpu-marked unit tests,
          2. torch CUDA fp32 + fp16 accuracy and FPS on the embedded default,
          3. CUDA-graph timing through backends.timing.CudaRuntime (cuda-python),
          4. TensorRT fp16 + int8 accuracy and FPS on the embedded default, where it imports,

        writing gpu-check.json and gpu-check.log into --out.  A step that cannot run here
        (no GPU, no TensorRT) is reported as skipped with the reason; the exit status is 1
        only when a step that ran failed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRA_BINARY = {"onnxsim"}  # binary wheels the export needs that GPU images tend to lack
# Guards against a hung step, not estimates of how long a step takes (no GPU run has been timed yet).
STEP_TIMEOUT_S = {"gpu-unit-tests": 150, "torch-cuda": 330, "cuda-graph-timing": 60, "tensorrt": 330}


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
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"].get("dev", []))


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
    print(f"{directory}: {len(plan)} wheels, {size / 2**20:.1f} MiB (pure-Python, plus {', '.join(EXTRA_BINARY)})")
    return 0


# ============================================================================ run: setup


class Log:
    def __init__(self, path: Path):
        self.file = path.open("w")

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def _run(command: list[str], log: Log, timeout: float, env: dict | None = None, label: str = "") -> tuple[int, str]:
    """Run ``command``, streaming its output into the log; 124 when it ran past ``timeout``."""
    log(f"$ {label or shlex.join(command)}")
    env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
    finally:
        timer.cancel()
    if killed.is_set():
        lines.append(f"(killed after {timeout:.0f} s)\n")
        log(lines[-1].strip())
        code = 124
    return code, "".join(lines)


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


def install(python: Path, wheelhouse: Path, log: Log) -> dict:
    record_path = wheelhouse / "wheelhouse.json"
    result = {"wheelhouse": str(wheelhouse), "installed": [], "kept": []}
    if record_path.is_file():
        packages = json.loads(record_path.read_text())["packages"]
        files, result["kept"] = wheels_to_install(packages, _installed_version(python, list(packages)))
        result["installed"] = files
        wheels = [str(wheelhouse / name) for name in files]
        if wheels:
            code, _ = _run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile",
                            "--disable-pip-version-check", *wheels], log, 300)  # fmt: skip
            if code != 0:
                raise RuntimeError("installing the wheelhouse failed (see the log)")
    else:
        result["note"] = f"no {record_path}: nothing installed from a wheelhouse (make wheelhouse builds one)"
        log(result["note"])
    code, _ = _run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-e", str(ROOT)], log, 300)  # fmt: skip
    if code != 0:
        raise RuntimeError("installing the project with --no-deps failed (see the log)")
    missing = [n for n, v in _installed_version(python, ["torch", "onnx", "onnxruntime", "numpy"]).items() if not v]
    if missing:
        raise RuntimeError(f"this machine lacks {', '.join(missing)}, which the wheelhouse does not carry")
    return result


# ============================================================================ run: probes


_PROBE = r"""
import json, sys
from res2net_validate.backends import devices
report = devices.probe_devices()
out = {"gpus": [g.__dict__ for g in report.gpus], "driver": report.driver or report.all_driver,
       "cuda_driver": report.cuda_driver, "tensorrt": report.tensorrt, "cuda_python": report.cuda_python,
       "gpu_skip": devices.gpu_skip_reason(report), "tensorrt_skip": devices.tensorrt_skip_reason(report),
       "python": sys.version.split()[0]}
try:
    import torch
    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.version.cuda
    out["torch_cuda_available"] = torch.cuda.is_available()
    if out["torch_cuda_available"]:
        out["torch_device"] = torch.cuda.get_device_name(0)
except Exception as exc:
    out["torch"] = f"not importable: {exc}"
try:
    from res2net_validate.backends.timing import import_cudart
    import_cudart()
    out["cuda_python_importable"] = True
except Exception as exc:
    out["cuda_python_importable"] = False
    out["cuda_python_problem"] = f"{type(exc).__name__}: {exc}"
print("PROBE_JSON " + json.dumps(out))
"""

_CUDA_GRAPH = r"""
import json
import numpy as np
from res2net_validate.backends.timing import CudaEventTimer, CudaRuntime, run_timed_loop, throughput_report, time_repeated
cuda = CudaRuntime()
name, capability = cuda.device_properties()
stream = cuda.stream_create()
batch = np.random.default_rng(0).standard_normal((32, 3, 224, 224)).astype(np.float32)
host = cuda.pinned_empty(batch.shape, np.float32)
back = cuda.pinned_empty(batch.shape, np.float32)
host[...] = batch
src, dst = cuda.malloc(batch.nbytes), cuda.malloc(batch.nbytes)
kind = cuda.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
def d2d():
    cuda._check(cuda.rt.cudaMemcpyAsync(dst, src, batch.nbytes, kind, stream), "D2D copy")
cuda.copy_htod_async(src, host, stream)
graph = cuda.capture_graph(stream, d2d)
cuda.graph_launch(graph, stream)
cuda.copy_dtoh_async(back, dst, stream)
cuda.stream_synchronize(stream)
assert np.array_equal(back, batch), "the graph's copy did not arrive"
timer = CudaEventTimer(cuda, stream)
loop = run_timed_loop(lambda: cuda.graph_launch(graph, stream), timer, warmup_s=0.2, duration_s=1.0)
h2d = time_repeated(lambda: cuda.copy_htod_async(src, host, stream), timer, 20)
report = throughput_report(loop, 32, h2d_ms=h2d, cuda_graph=True)
timer.close()
cuda.graph_destroy(graph)
for p in (src, dst):
    cuda.free(p)
cuda.pinned_free(host); cuda.pinned_free(back); cuda.stream_destroy(stream)
out = report.as_dict()
out.update({"device": name, "compute_capability": f"{capability[0]}.{capability[1]}", "driver_cuda": cuda.driver_version(),
            "what": "CUDA graph of one 32x3x224x224 float32 device-to-device copy, launched and timed with CUDA events",
            "copy_gb_per_s": round(2 * batch.nbytes / (report.compute.median / 1e3) / 1e9, 1)})
print("CUDA_GRAPH_JSON " + json.dumps(out))
"""


def _junit_counts(path: Path) -> dict:
    if not path.is_file():
        return {}
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    keys = ("tests", "failures", "errors", "skipped")
    counts = {k: int(suite.get(k, 0)) for k in keys} if suite is not None else {}
    if suite is not None:
        counts["skip_reasons"] = sorted({(s.get("message") or "")[:200] for s in suite.iter("skipped")})
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
            row["trtexec_like"] = {k: like.get(k) for k in ("throughput_ips", "cuda_graph", "compute_ms", "h2d_ms")}
        for key in ("convolution_precisions", "typing", "tensorrt", "build_seconds", "engine_cached"):
            if key in extra:
                row[key] = extra[key]
        rows.append(row)
    return rows


# ============================================================================ run: steps


def run_checks(
    out: Path, wheelhouse: Path, venv: Path, cache: Path, without_gpu: bool = False, timeout_scale: float = 1.0
) -> int:
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "gpu-check.log")
    started = time.perf_counter()
    record: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": []}
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))

    def finish(code: int) -> int:
        record["seconds"] = round(time.perf_counter() - started, 1)
        record["exit_status"] = code
        tmp = out / "gpu-check.json.tmp"
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        tmp.replace(out / "gpu-check.json")
        shutil.rmtree(scratch, ignore_errors=True)
        log(f"gpu-check: {json.dumps({s['name']: s['status'] for s in record['steps']})} in {record['seconds']} s")
        return code

    try:
        python = make_venv(venv, log)
        record["setup"] = install(python, wheelhouse, log)
    except Exception as exc:
        record["setup"] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"setup failed: {exc}")
        return finish(1)
    code, text = _run([str(python), "-c", _PROBE], log, 120, label="python -c <probe: devices, torch, cuda-python>")
    line = next((ln for ln in text.splitlines() if ln.startswith("PROBE_JSON ")), "")
    env_info = json.loads(line.split(" ", 1)[1]) if code == 0 and line else {"error": text[-2000:]}
    record["environment"] = env_info
    no_gpu = env_info.get("gpu_skip") or ("" if code == 0 else "the environment probe failed")
    cpu_ok = None if without_gpu else no_gpu  # --run-without-gpu: the pytest steps run anyway (on the CPU)

    def step(name: str, skip: str | None, command: list[str] | None, summarise=None, label: str = "") -> None:
        entry: dict = {"name": name}
        if skip:
            entry.update(status="skipped", reason=skip)
            log(f"[{name}] skipped: {skip}")
        else:
            t0 = time.perf_counter()
            returncode, output = _run(command, log, STEP_TIMEOUT_S[name] * timeout_scale, label=label)
            entry.update(status="passed" if returncode == 0 else "failed", returncode=returncode,
                         seconds=round(time.perf_counter() - t0, 1), command=label or shlex.join(command))  # fmt: skip
            if summarise is not None:
                entry.update(summarise(output))
            if returncode != 0:
                entry["output_tail"] = output[-3000:]
        record["steps"].append(entry)

    pytest_base = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs"]
    unit_xml = scratch / "gpu-unit.xml"
    step("gpu-unit-tests", cpu_ok, pytest_base + ["-m", "gpu", "tests/unit", f"--junitxml={unit_xml}"],
         lambda _: {"tests": _junit_counts(unit_xml)})  # fmt: skip

    def acceptance(backend: str, precisions: str) -> tuple[list[str], callable]:
        bench, table, xml = (scratch / f"{backend}-{n}" for n in ("benchmark.json", "table.json", "junit.xml"))
        command = pytest_base + ["-m", "accuracy or performance", "--embedded", f"--backend={backend}",
                                 f"--precision={precisions}", f"--checkpoints-dir={cache}",
                                 f"--benchmark-json={bench}", f"--report-json={table}", f"--junitxml={xml}"]  # fmt: skip

        def summarise(_output: str) -> dict:
            found = {"tests": _junit_counts(xml), "fps": _benchmark_summary(bench)}
            if table.is_file():
                found["table"] = json.loads(table.read_text())
            return found

        return command, summarise

    torch_skip = no_gpu or (None if env_info.get("torch_cuda_available") else
                            f"torch {env_info.get('torch')} cannot use CUDA (torch CUDA {env_info.get('torch_cuda')})")
    torch_skip = None if without_gpu else torch_skip
    command, summarise = acceptance("torch", "fp32,fp16")
    step("torch-cuda", torch_skip, command, summarise)

    graph_skip = no_gpu or (None if env_info.get("cuda_python_importable") else
                            f"needs cuda-python: {env_info.get('cuda_python_problem', 'not importable')}")

    def graph_summary(output: str) -> dict:
        line = next((ln for ln in output.splitlines() if ln.startswith("CUDA_GRAPH_JSON ")), "")
        return {"timing": json.loads(line.split(" ", 1)[1])} if line else {}

    step("cuda-graph-timing", graph_skip, [str(python), "-c", _CUDA_GRAPH], graph_summary,
         label="python -c <CudaRuntime: H2D, CUDA graph of a D2D copy, D2H, event timing>")

    trt_skip = no_gpu or env_info.get("tensorrt_skip")
    command, summarise = acceptance("tensorrt", "fp16,int8")
    step("tensorrt", trt_skip, command, summarise)
    failed = [s["name"] for s in record["steps"] if s["status"] == "failed"]
    return finish(1 if failed else 0)


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
    run.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every step's time limit (slow CPUs)")
    args = parser.parse_args(argv)
    if args.command == "wheelhouse":
        return build_wheelhouse(args.dir.resolve(), args.python_version)
    return run_checks(args.out.resolve(), args.wheelhouse.resolve(), args.venv.resolve(), args.cache.resolve(),
                      args.run_without_gpu, args.timeout_scale)


if __name__ == "__main__":
    sys.exit(main())
