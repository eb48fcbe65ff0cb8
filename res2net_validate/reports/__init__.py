"""Merged reports over many runs: ``report.md`` (Markdown, for a CI job summary) and ``report.html``
(self-contained, with plots), from results JSONs and pytest-benchmark JSONs.

``write_report`` is what both the ``res2net-validate report`` command and ``--report-dir`` call.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import atomic_write_bytes, check_can_create, file_sha256
from ..errors import ValidateError

DEFAULT_FPS_TOLERANCE = 5.0  # percent
DEFAULT_ACCURACY_TOLERANCE = 0.5  # points


@dataclass
class WrittenReport:
    markdown: Path
    html: Path | None  # None when matplotlib is missing
    skipped: str = ""  # why report.html was not written
    duplicates: list[str] = field(default_factory=list)  # files given more than once, counted once


def check_tolerance(value: float, label: str) -> float:
    """A regression tolerance: finite and >= 0 (NaN would compare false and switch detection off)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValidateError(f"{label}={value!r}: expected a finite number >= 0")
    return float(value)


def check_output_dir(path: Path, label: str) -> None:
    """The report folder must be creatable and writable before any file is read."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValidateError(f"{label} {path}: is a file, not a folder; pass a folder for report.md and report.html")
    check_can_create(path, f"{label} {path}")


def _once(paths: list) -> tuple[list[Path], list[str]]:
    """Each file once, by content: the same file twice (or a copy) is one run, not two."""
    seen, kept, duplicates = set(), [], []
    for path in map(Path, paths):
        try:
            digest = file_sha256(path) if path.is_file() else str(path.resolve())
        except OSError:
            digest = str(path.resolve())  # the loader names the problem
        if digest in seen:
            duplicates.append(str(path))
            continue
        seen.add(digest)
        kept.append(path)
    return kept, duplicates


def write_report(results: list, benchmarks: list, out_dir: str | os.PathLike, *, one_kind: bool = False,
                 fps_tolerance: float = DEFAULT_FPS_TOLERANCE,
                 accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE) -> WrittenReport:
    """Merge result files and benchmark files (paths) into ``out_dir``/report.md and report.html."""
    from . import document, html, markdown
    from .load import load_benchmark_file, load_result_file
    from .merge import merge
    from .plots import MATPLOTLIB_HINT, matplotlib_available

    fps_tolerance = check_tolerance(fps_tolerance, "--fps-tolerance")
    accuracy_tolerance = check_tolerance(accuracy_tolerance, "--accuracy-tolerance")
    out_dir = Path(out_dir)
    check_output_dir(out_dir, "--out")
    results, duplicate_results = _once(results)
    benchmarks, duplicate_benchmarks = _once(benchmarks)
    merged = merge([load_result_file(p) for p in results], [load_benchmark_file(p) for p in benchmarks],
                   refuse_mixed=one_kind)
    blocks = document.build(merged, fps_tolerance, accuracy_tolerance)
    written = WrittenReport(out_dir / "report.md", None, duplicates=duplicate_results + duplicate_benchmarks)
    atomic_write_bytes(written.markdown, markdown.render(blocks).encode("utf-8"))
    if not matplotlib_available():
        written.skipped = f"report.html not written: {MATPLOTLIB_HINT}"
        return written
    written.html = out_dir / "report.html"
    atomic_write_bytes(written.html, html.render(blocks, title=blocks[0].text).encode("utf-8"))
    return written
