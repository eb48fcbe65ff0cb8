"""Every TensorRT and cuda-python name the backend uses, and every name the fake offers,
exists in the real bindings of each supported version.

The manifests in tests/unit/data/api are generated from the real wheels by
scripts/api_manifest.py (tensorrt-cu12-bindings 10.13.3.9, tensorrt-cu13-bindings 11.4.0.106,
cuda-bindings 12.9 and 13.5).  The names used are read from the syntax tree of every file that
names TensorRT or cuda-bindings APIs (the backend, backends.cuda_runtime.CudaRuntime, backends.devices,
scripts/gpu_check.py; a test finds such files and fails on one left out), so a misspelled or
removed name fails here, without a GPU.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import fake_tensorrt

ROOT = Path(__file__).resolve().parents[2]
API = Path(__file__).parent / "data" / "api"
TRT_VERSIONS = ("10.13", "11.4")
CUDA_VERSIONS = ("12.9", "13.5")
MODULE = "<module>"

# What each receiver name in the backend holds (the real class name in the bindings).
TRT_RECEIVERS = {
    "trt": MODULE, "self.trt": MODULE, "self._trt": MODULE,
    "builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser", "config": "IBuilderConfig",
    "profile": "IOptimizationProfile", "tensor": "ITensor", "engine": "ICudaEngine", "self.engine": "ICudaEngine",
    "context": "IExecutionContext", "self.context": "IExecutionContext", "inspector": "EngineInspector",
    "current": "ITimingCache", "_runtime()": "Runtime",
}  # fmt: skip
# Names 11.x removed on purpose; the backend only touches them behind hasattr (weak typing, 10.x).
EXPECTED_ABSENT = {
    "10.13": set(),
    "11.4": {("BuilderFlag", "FP16"), ("BuilderFlag", "INT8")},
}
# Set by the tensorrt package's __init__.py around the bindings module.
PACKAGE_NAMES = {"__version__"}


def manifest(kind: str, version: str) -> dict:
    return json.loads((API / f"{kind}-{version}.json").read_text())["names"]


def has(names: dict, owner: str, member: str | None) -> bool:
    """Is ``owner`` (a module-level name) or ``owner.member`` in the manifest?"""
    if owner == MODULE:
        return member in PACKAGE_NAMES or member in names
    entry = names.get(owner)
    if entry is None:
        return False
    if member is None:
        return True
    return member in entry.get("members", {}) or member in entry.get("values", {})


def _receiver(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return f"{node.func.id}()"
    return None


def _name_of(node: ast.AST, receivers: dict[str, str]) -> tuple[str, str | None] | None:
    """(owner, member) for an expression naming a module attribute or a class member."""
    if isinstance(node, ast.Attribute):
        owner = receivers.get(_receiver(node.value) or "")
        if owner == MODULE:
            return MODULE, node.attr
        if owner:
            return owner, node.attr
        inner = _name_of(node.value, receivers)
        if inner and inner[0] == MODULE:  # trt.Class.MEMBER
            return inner[1], node.attr
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
        if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
            target = node.args[0]
            owner = receivers.get(_receiver(target) or "")
            if owner == MODULE:
                return MODULE, node.args[1].value
            inner = _name_of(target, receivers)
            if inner and inner[0] == MODULE:  # getattr(getattr(trt, "Class"), "MEMBER")
                return inner[1], node.args[1].value
    return None


def used_names(source: Path, receivers: dict[str, str]) -> set[tuple[str, str]]:
    """Every (owner, member) the source touches through the receivers, plus the methods of
    classes subclassing a bindings class (they override its members)."""
    tree = ast.parse(source.read_text())
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        name = _name_of(node, receivers)
        if name and name[1] is not None and not (name[1].startswith("__") and name[1] not in PACKAGE_NAMES):
            found.add(name)
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                base_name = _name_of(base, receivers)
                if base_name and base_name[0] == MODULE:
                    found |= {
                        (base_name[1], item.name)
                        for item in node.body
                        if isinstance(item, ast.FunctionDef) and not item.name.startswith("_")
                    }
    return found


def missing(used: set[tuple[str, str]], names: dict) -> set[tuple[str, str]]:
    result = set()
    for owner, member in used:
        if owner == MODULE:
            if not has(names, MODULE, member):
                result.add((owner, member))
        elif not has(names, owner, member):
            result.add((owner, member))
    return result


# ----------------------------------------------------------------------------- the backend


# Every module of the backends/tensorrt subpackage (engine, inspector, builder, runner, backend).
BACKEND_MODULES = sorted((ROOT / "res2net_validate" / "backends" / "tensorrt").glob("*.py"))


def backend_names(receivers: dict[str, str]) -> set[tuple[str, str]]:
    return set().union(*(used_names(module, receivers) for module in BACKEND_MODULES))


def test_the_collector_sees_the_backends_tensorrt_calls():
    assert {m.name for m in BACKEND_MODULES} >= {"backend.py", "builder.py", "inspector.py", "runner.py"}
    used = backend_names(TRT_RECEIVERS)
    for expected in [
        ("EngineInspector", "execution_context"), ("IBuilderConfig", "set_timing_cache"),
        ("IExecutionContext", "execute_async_v3"), ("NetworkDefinitionCreationFlag", "STRONGLY_TYPED"),
        ("IProgressMonitor", "phase_start"), ("Runtime", "deserialize_cuda_engine"), (MODULE, "Builder"),
        ("ITimingCache", "combine"), ("BuilderFlag", "FP16"),
    ]:  # fmt: skip
        assert expected in used, expected
    seen = {_receiver(node) for module in BACKEND_MODULES for node in ast.walk(ast.parse(module.read_text()))}
    stale = [name for name in TRT_RECEIVERS if name not in seen]
    assert not stale, f"receivers no longer used in the backend (update TRT_RECEIVERS): {stale}"


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_every_tensorrt_name_the_backend_uses_exists(version):
    gone = missing(backend_names(TRT_RECEIVERS), manifest("tensorrt", version))
    unexpected = sorted(gone - EXPECTED_ABSENT[version])
    assert not unexpected, f"TensorRT {version} bindings have no " + ", ".join(f"{o}.{m}" for o, m in unexpected)
    assert gone == EXPECTED_ABSENT[version], "an expected absence is back or no longer used: update EXPECTED_ABSENT"


# ----------------------------------------------------------------------------- the fake


def _fake_classes():
    return [obj for obj in vars(fake_tensorrt).values() if isinstance(obj, type) and hasattr(obj, "REAL_NAME")]


def _public_names(cls: type) -> set[str]:
    """Class-body names and ``self.x = ...`` attributes of the fake class, minus test hooks."""
    tree = ast.parse(Path(fake_tensorrt.__file__).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    names = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(item.name)
        elif isinstance(item, ast.Assign):
            for target in item.targets:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                names |= {e.id for e in elements if isinstance(e, ast.Name)}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store):
            if isinstance(sub.value, ast.Name) and sub.value.id == "self":
                names.add(sub.attr)
    return {n for n in names if not n.startswith("_") and n not in ("REAL_NAME", "FAKE_ONLY")} - set(cls.FAKE_ONLY)


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_every_name_the_fake_offers_exists_and_no_test_hook_hides_a_real_one(version):
    names = manifest("tensorrt", version)
    problems = []
    for cls in _fake_classes():
        owner = MODULE if cls.REAL_NAME == "tensorrt" else cls.REAL_NAME
        for name in sorted(_public_names(cls)):
            if owner == MODULE and name.startswith("__"):
                continue
            if not (has(names, MODULE, name) if owner == MODULE else has(names, owner, name)):
                problems.append(f"{cls.__name__}.{name} (no {owner}.{name})")
        real_members = set(names.get(cls.REAL_NAME, {}).get("members", {})) if owner != MODULE else set(names)
        problems += [f"{cls.__name__}.{hook} is a test hook named like a real member" for hook in
                     sorted(set(cls.FAKE_ONLY) & real_members)]  # fmt: skip
    assert not problems, f"TensorRT {version}: " + "; ".join(problems)


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_the_fakes_enums_match_the_real_ones(version):
    names = manifest("tensorrt", version)
    fake = fake_tensorrt.FakeTensorRT(v11=version.startswith("11"))
    problems = []
    for attr, value in vars(fake).items():
        if not isinstance(value, SimpleNamespace):
            continue
        entry = names.get(attr, {})
        real = entry.get("values", entry.get("members", {}))
        for member, fake_value in vars(value).items():
            if member not in real:
                problems.append(f"{attr}.{member} does not exist")
            elif isinstance(fake_value, int) and entry.get("values", {}).get(member) != fake_value:
                problems.append(f"{attr}.{member} is {fake_value}, the real one {entry['values'][member]}")
    assert not problems, f"TensorRT {version}: " + "; ".join(problems)
    flag = fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED  # the value the glue shifts: must be the real one
    assert flag == names["NetworkDefinitionCreationFlag"]["values"]["STRONGLY_TYPED"]


# ----------------------------------------------------------------------------- cuda-python


CUDA_RUNTIME = ROOT / "res2net_validate" / "backends" / "cuda_runtime.py"
# Every file outside the TensorRT subpackage that may name bindings APIs, with what its receivers hold.
CUDA_RUNTIME_FILES = {CUDA_RUNTIME: {"self.rt": MODULE}, ROOT / "scripts" / "gpu_check.py": {"cuda.rt": MODULE}}
OTHER_TENSORRT_FILES = {ROOT / "res2net_validate" / "backends" / "devices.py": {"tensorrt": MODULE}}


@pytest.mark.parametrize("version", CUDA_VERSIONS)
def test_every_cuda_runtime_name_the_cuda_wrapper_uses_exists(version):
    used = used_names(CUDA_RUNTIME, {"self.rt": MODULE})
    assert (MODULE, "cudaStreamBeginCapture") in used and ("cudaMemcpyKind", "cudaMemcpyHostToDevice") in used
    assert (MODULE, "cudaGetLastError") in used and ("cudaMemcpyKind", "cudaMemcpyDeviceToDevice") in used
    for path, receivers in CUDA_RUNTIME_FILES.items():
        gone = sorted(missing(used_names(path, receivers), manifest("cuda-runtime", version)))
        assert not gone, f"cuda-bindings {version} runtime has no " + ", ".join(
            f"{m}" if o == MODULE else f"{o}.{m}" for o, m in gone
        ) + f" (used in {path.relative_to(ROOT)})"


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_every_tensorrt_name_outside_the_backend_exists(version):
    for path, receivers in OTHER_TENSORRT_FILES.items():
        used = used_names(path, receivers)
        assert (MODULE, "__version__") in used, path  # the collector sees devices.py's tensorrt.__version__
        assert not missing(used, manifest("tensorrt", version)), path


def names_bindings_apis(source: str) -> bool:
    """Does this Python source import tensorrt or cuda-python, or name a CUDA runtime call?"""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("tensorrt", "cuda") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] in ("tensorrt",
                                                                                                       "cuda"):
            return True
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = ast.unparse(node.func)
            if called in ("importlib.import_module", "import_module", "__import__") and str(
                node.args[0].value
            ).split(".")[0] in ("tensorrt", "cuda"):
                return True
        if isinstance(node, ast.Attribute) and (re.match(r"cuda[A-Z]", node.attr) or ast.unparse(node.value) == "trt"):
            return True
    return False


def test_the_detector_sees_each_way_of_naming_the_bindings():
    for source in ["import tensorrt", "from cuda.bindings import runtime", "import importlib\n"
                   "importlib.import_module('tensorrt')", "x.rt.cudaMalloc(1)", "trt.Builder", "from cuda import cudart"]:
        assert names_bindings_apis(source), source
    for source in ["import torch\ntorch.cuda.CUDAGraph()", "name = 'tensorrt'", "trtexec = 1", "from .tensorrt import X"]:
        assert not names_bindings_apis(source), source


def test_every_file_that_names_tensorrt_or_cuda_bindings_apis_is_scanned():
    scanned = set(BACKEND_MODULES) | set(CUDA_RUNTIME_FILES) | set(OTHER_TENSORRT_FILES)
    sources = sorted((ROOT / "res2net_validate").rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
    naming = {path for path in sources if names_bindings_apis(path.read_text())}
    assert naming >= {CUDA_RUNTIME, *OTHER_TENSORRT_FILES, BACKEND_MODULES[0].parent / "backend.py"}
    left_out = sorted(str(p.relative_to(ROOT)) for p in naming - scanned)
    assert not left_out, f"these files name TensorRT or cuda-bindings APIs but no manifest test scans them: {left_out}"
