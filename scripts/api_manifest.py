"""Write the API manifest of a TensorRT or cuda-python bindings wheel: every public name of
the module, each class's member names (with the pybind/Cython signature line) and each
enum's values, as JSON.  tests/unit/test_api_manifest.py checks the backend and the fake
against these files.

    pip download --no-deps tensorrt-cu12-bindings==10.13.3.9 -d /tmp/w
    pip download --no-deps tensorrt-cu13-bindings==11.4.0.106 -d /tmp/w
    pip download --no-deps 'cuda-bindings==12.9.*' 'cuda-bindings==13.*' -d /tmp/w   # one at a time
    python scripts/api_manifest.py /tmp/w/*.whl --out-dir tests/unit/data/api

The wheel is imported for real (the names are what its module registers, not a reading of
headers): the TensorRT bindings need libnvinfer & co only for their symbols at load time,
so the script links them against stub libraries it compiles (gcc) and never calls into
them.  No GPU or driver is needed.  Run it with the Python version of the wheel's cp tag.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# Runs in a child process that imports the unpacked module; prints the manifest body.
_DUMP = r"""
import enum, inspect, json, sys
module = __import__(sys.argv[1], fromlist=["_"])

def signature(obj):
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    return doc[0].strip() if doc else ""

def enum_values(obj):
    members = getattr(obj, "__members__", None)
    if isinstance(members, dict) and members:
        return {name: int(value) for name, value in members.items()}
    return None

def describe(obj):
    values = enum_values(obj) if isinstance(obj, type) else None
    if values is not None:
        return {"kind": "enum", "values": values}
    if isinstance(obj, type):
        members = {}
        for name in dir(obj):
            if name.startswith("__") or name == "_pybind11_conduit_v1_":
                continue
            raw = inspect.getattr_static(obj, name, None)
            kind = "property" if isinstance(raw, property) or type(raw).__name__ == "getset_descriptor" else "method"
            members[name] = "property" if kind == "property" else signature(getattr(obj, name, None))
        return {"kind": "class", "members": members}
    if callable(obj):
        return {"kind": "function", "signature": signature(obj)}
    if isinstance(obj, (int, float, str)):
        return {"kind": "constant", "value": obj if not isinstance(obj, bool) else int(obj)}
    return {"kind": type(obj).__name__}

names = {name: describe(getattr(module, name)) for name in sorted(dir(module)) if not name.startswith("__")}
print(json.dumps(names))
"""


def _wheel_metadata(wheel: zipfile.ZipFile) -> tuple[str, str]:
    meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    text = wheel.read(meta).decode()
    name = re.search(r"^Name: (.+)$", text, re.M).group(1).strip()
    version = re.search(r"^Version: (.+)$", text, re.M).group(1).strip()
    return name, version


def _stub_libraries(extension: Path, into: Path) -> None:
    """Stub shared libraries for the extension's NVIDIA dependencies (their symbols only)."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", _run(["readelf", "-d", str(extension)]))
    ours = [lib for lib in needed if lib.startswith("libnv")]
    undefined = []
    for line in _run(["nm", "-D", "--undefined-only", str(extension)]).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1] and not parts[1].startswith(("Py", "_Py")):
            undefined.append(parts[1])
    source = into / "stubs.c"
    source.write_text("".join(f"void *{name}(void) {{ return 0; }}\n" for name in undefined))
    for index, lib in enumerate(ours):  # every symbol in the first; the rest only have to exist
        args = [str(source)] if index == 0 else ["-x", "c", os.devnull]
        _run(["gcc", "-shared", "-fPIC", "-o", str(into / lib), *args])


def _run(command: list[str], **kwargs) -> str:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def manifest_for_wheel(path: Path) -> tuple[str, dict]:
    with zipfile.ZipFile(path) as wheel:
        dist, version = _wheel_metadata(wheel)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            wheel.extractall(root / "site")
            env = dict(os.environ, PYTHONPATH=str(root / "site"), PYTHONDONTWRITEBYTECODE="1")
            if dist.startswith("tensorrt"):
                package = next(p.parent for p in (root / "site").glob("tensorrt*/tensorrt*.so"))
                _stub_libraries(package / next(p.name for p in package.glob("tensorrt*.so")), root)
                env["LD_LIBRARY_PATH"] = str(root)
                env["PYTHONPATH"] = str(package)  # import the extension itself, not the loader package
                module, kind = "tensorrt", "tensorrt"
            elif dist == "cuda-bindings":
                module, kind = "cuda.bindings.runtime", "cuda-runtime"
            else:
                raise SystemExit(f"{path}: not a TensorRT or cuda-bindings wheel ({dist})")
            body = json.loads(_run([sys.executable, "-c", _DUMP, module], env=env, cwd=root))
    major_minor = ".".join(version.split(".")[:2])
    header = {
        "module": module,
        "distribution": dist,
        "version": version,
        "wheel": path.name,
        "wheel_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "generated_by": "scripts/api_manifest.py",
    }
    return f"{kind}-{major_minor}.json", {**header, "names": body}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", nargs="+", type=Path)
    parser.add_argument("--out-dir", type=Path, default=Path("tests/unit/data/api"))
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for wheel in args.wheels:
        name, manifest = manifest_for_wheel(wheel)
        target = args.out_dir / name
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        tmp.replace(target)
        print(f"{target}: {len(manifest['names'])} names from {wheel.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
