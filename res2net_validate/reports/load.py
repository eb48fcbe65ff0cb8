"""Read result files (the plugin's results JSON) and pytest-benchmark JSONs, checking what the report uses.

Any field may be missing (older files, FPS-only runs); a field that is present is checked against its
declared schema (``schemas.py``: type, finite, in range) and a wrong one is one FormatError naming the
file and the field path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ValidateError
from ..schemas import BenchmarkSchema, OurBenchmark, ResultsSchema, is_our_benchmark, load_json, validate

@dataclass
class ResultFile:
    path: Path
    model: str
    run: dict
    rows: list[dict]
    notes: list[str] = field(default_factory=list)

    @property
    def timestamp(self) -> datetime | None:
        return parse_timestamp(self.run.get("timestamp"))

    @property
    def scored(self) -> bool:
        """Whether this run scored images (an FPS-only run did not: its dataset does not matter)."""
        return any(row.get(name) is not None for row in self.rows for name in ("top1", "top5", "images"))

    @property
    def host(self) -> str:
        return str(self.run.get("host") or "")

    @property
    def label(self) -> str:
        """How the report names this run: its time and host, else its file name."""
        when = self.timestamp
        parts = [when.strftime("%Y-%m-%d %H:%M") if when else self.path.name]
        if self.host:
            parts.append(self.host)
        return " ".join(parts)


@dataclass
class BenchmarkEntry:
    precision: str
    device: str
    backend: str
    batch_size: int | None
    fps: float | None
    round_seconds: list[float]  # empty when the file carries no per-round data
    stats: dict  # pytest-benchmark's summary (min, q1, median, q3, max, ... in seconds)
    trtexec_like: dict | None


@dataclass
class BenchmarkFile:
    path: Path
    datetime: datetime | None
    host: str
    entries: list[BenchmarkEntry]


def parse_timestamp(text) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _read_json(path: Path, what: str) -> object:
    path = Path(path)
    if not path.exists():
        raise ValidateError(f"{what} {path}: not found.")
    return load_json(path, f"{what} {path}")


def load_result_file(path: str | Path) -> ResultFile:
    """A results JSON, checked against ``schemas.ResultsSchema`` (types, finite numbers in range)."""
    path = Path(path)
    where = f"results file {path}"
    doc = _read_json(path, "results file")
    if isinstance(doc, dict) and "benchmarks" in doc and "rows" not in doc:
        raise ValidateError(f"{where}: this is a pytest-benchmark JSON; pass it with --benchmark-json.")
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ValidateError(f"{where}: not a res2net_validate results JSON (expected an object with a 'rows' list, "
                            "as written by --report-json).")
    validate(ResultsSchema, doc, where)
    run = doc.get("run") or {}
    rows = [{**row, "verdicts": row.get("verdicts") or []} for row in doc["rows"]]
    notes = doc.get("notes") or []
    model = str(run.get("model_name") or doc.get("model") or "")
    return ResultFile(path, model, run, rows, [str(n) for n in notes])


def load_benchmark_file(path: str | Path) -> BenchmarkFile:
    """A pytest-benchmark JSON; our entries (a precision in extra_info) checked against ``schemas.OurBenchmark``."""
    path = Path(path)
    where = f"benchmark file {path}"
    doc = _read_json(path, "benchmark file")
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ValidateError(f"{where}: not a pytest-benchmark JSON (expected an object with a 'benchmarks' list, "
                            "as written by --benchmark-json).")
    validate(BenchmarkSchema, doc, where)
    entries = []
    for index, bench in enumerate(doc["benchmarks"]):
        if not is_our_benchmark(bench):
            continue  # another project's benchmark in the same session: not ours to report
        validate(OurBenchmark, bench, where, prefix=f"benchmarks[{index}]")
        info, stats = bench["extra_info"], bench["stats"]
        trtexec = info.get("trtexec_like")
        entries.append(BenchmarkEntry(
            precision=str(info["precision"]), device=str(info.get("device") or ""),
            backend=str(info.get("backend") or ""), batch_size=info.get("batch_size"), fps=info.get("fps"),
            round_seconds=[float(v) for v in stats.get("data") or []], stats=stats,
            trtexec_like=trtexec if isinstance(trtexec, dict) else None,
        ))
    machine = doc.get("machine_info") or {}
    return BenchmarkFile(path, parse_timestamp(doc.get("datetime")), str(machine.get("node") or ""), entries)
