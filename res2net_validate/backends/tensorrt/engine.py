"""Engine identity: build settings, the cache key, ``header.json`` and the trtexec lines.

Engines live in the artifact cache as a directory ``engine/<key>.trt/`` holding
``model.engine`` (the plan, loadable by trtexec), ``header.json`` (what it was built from
and for) and ``layers.json`` (the inspector's output).  The key hashes the ONNX bytes,
the TensorRT version, the GPU name and compute capability and the build settings; the
header is compared again on load.  The builder's timing cache is kept beside them, keyed
by TensorRT version + GPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...cache import content_key
from ...errors import ValidateError

ENGINE_FORMAT = 1  # bump when the engine directory layout or the build recipe changes
PLAN_NAME = "model.engine"
HEADER_NAME = "header.json"
LAYERS_NAME = "layers.json"


# ============================================================================ build settings


def profile_batches(batch_sizes: tuple[int, ...]) -> tuple[int, int, int]:
    """(min, opt, max) batch of the optimisation profile: min 1; opt and max the largest
    batch asked for, which is the benchmark batch (``--batch-size``).  The smaller ones
    (single images, the last partial batch) only need to fit in the profile."""
    sizes = tuple(batch_sizes)
    if not sizes or any(not isinstance(b, (int, np.integer)) or isinstance(b, bool) or b < 1 for b in sizes):
        raise ValidateError(f"--batch-size: batch sizes {sizes!r} must be positive integers")
    largest = int(max(sizes))
    return 1, largest, largest


def engine_settings(precision: str, batch_sizes: tuple[int, ...], workspace_bytes: int | None = None) -> dict:
    """Everything besides the graph and the toolchain that changes the engine."""
    return {
        "format": ENGINE_FORMAT,
        "precision": precision,
        "batch_profile": list(profile_batches(batch_sizes)),
        "workspace_bytes": workspace_bytes,
        "profiling_verbosity": "detailed",
        "typing": "strong",  # what is asked for; header.json records what was used
    }


def engine_key_parts(
    onnx_sha256: str, tensorrt_version: str, gpu_name: str, compute_capability: str, settings: dict
) -> dict:
    return {
        "onnx_sha256": onnx_sha256,
        "tensorrt": tensorrt_version,
        "gpu": gpu_name,
        "compute_capability": compute_capability,
        "settings": settings,
    }


def timing_cache_path(cache_root: Path, tensorrt_version: str, gpu_name: str, compute_capability: str) -> Path:
    key = content_key({"tensorrt": tensorrt_version, "gpu": gpu_name, "compute_capability": compute_capability})
    return Path(cache_root) / "tensorrt-timing" / f"{key}.cache"


def trtexec_commands(
    engine_path: Path,
    onnx_path: Path,
    input_name: str,
    input_chw: tuple[int, ...],
    batches: tuple[int, int, int],
    timing_cache: Path | None = None,
) -> dict[str, str]:
    """The trtexec lines that rebuild this engine and time it the way the runner does."""
    dims = "x".join(str(d) for d in input_chw)
    lo, opt, hi = batches
    build = (
        f"trtexec --onnx={onnx_path} --stronglyTyped --minShapes={input_name}:{lo}x{dims} "
        f"--optShapes={input_name}:{opt}x{dims} --maxShapes={input_name}:{hi}x{dims} "
        f"--profilingVerbosity=detailed --saveEngine={engine_path}"
    )
    if timing_cache is not None:
        build += f" --timingCacheFile={timing_cache}"
    run = f"trtexec --loadEngine={engine_path} --shapes={input_name}:{opt}x{dims} --useCudaGraph --noDataTransfers"
    return {"trtexec": run, "trtexec_build": build}


# ============================================================================ engine header


@dataclass
class EngineHeader:
    """What an engine was built from and for; ``header.json`` beside the plan."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    settings: dict
    format: int = ENGINE_FORMAT
    plan_sha256: str = ""
    plan_bytes: int = 0
    typing: str = ""  # "strong", or "weak (fallback: ...)"
    build_seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


_IDENTITY_FIELDS = ("format", "onnx_sha256", "tensorrt_version", "gpu_name", "compute_capability", "settings")


def header_problem(engine_dir: Path, expected: EngineHeader) -> str | None:
    """None when ``engine_dir`` holds an intact engine built for ``expected``; else why not."""
    try:
        found = json.loads((engine_dir / HEADER_NAME).read_text())
    except (OSError, ValueError):
        return f"has no readable {HEADER_NAME}"
    if not isinstance(found, dict):
        return f"has a malformed {HEADER_NAME}"
    wanted = asdict(expected)
    for name in _IDENTITY_FIELDS:
        if found.get(name) != wanted[name]:
            return f"was built for {name} {found.get(name)!r}, but this run needs {wanted[name]!r}"
    plan = engine_dir / PLAN_NAME
    if not plan.is_file():
        return f"has no {PLAN_NAME}"
    return None  # the plan's bytes: the cache's manifest checked their sha256 before this
