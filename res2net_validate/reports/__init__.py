"""Merged reports over many runs: ``report.md`` (Markdown, for a CI job summary) and ``report.html``
(self-contained, with plots), from results JSONs and pytest-benchmark JSONs.

``write_report`` is what both the ``res2net-validate report`` command and ``--report-dir`` call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..cache import atomic_write_bytes

DEFAULT_FPS_TOLERANCE = 5.0  # percent
DEFAULT_ACCURACY_TOLERANCE = 0.5  # points


@dataclass
class WrittenReport:
    markdown: Path
    html: Path | None  # None when matplotlib is missing
    skipped: str = ""  # why report.html was not written


def write_report(results: list, benchmarks: list, out_dir: str | os.PathLike, *, one_kind: bool = False,
                 fps_tolerance: float = DEFAULT_FPS_TOLERANCE,
                 accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE) -> WrittenReport:
    """Merge result files and benchmark files (paths) into ``out_dir``/report.md and report.html."""
    from . import document, html, markdown
    from .load import load_benchmark_file, load_result_file
    from .merge import merge
    from .plots import MATPLOTLIB_HINT, matplotlib_available

    merged = merge([load_result_file(p) for p in results], [load_benchmark_file(p) for p in benchmarks],
                   refuse_mixed=one_kind)
    blocks = document.build(merged, fps_tolerance, accuracy_tolerance)
    out_dir = Path(out_dir)
    written = WrittenReport(out_dir / "report.md", None)
    atomic_write_bytes(written.markdown, markdown.render(blocks).encode("utf-8"))
    if not matplotlib_available():
        written.skipped = f"report.html not written: {MATPLOTLIB_HINT}"
        return written
    written.html = out_dir / "report.html"
    atomic_write_bytes(written.html, html.render(blocks, title=blocks[0].text).encode("utf-8"))
    return written
