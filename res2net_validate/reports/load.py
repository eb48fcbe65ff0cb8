"""Read result files (the plugin's results JSON) and pytest-benchmark JSONs, checking what the report uses.

Any field may be missing (older files, FPS-only runs); a field that is present but of the wrong type
is one ValidateError naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ValidateError

_NUMBERS = ("batch_size", "fps", "top1", "top5", "images")


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
    if not path.is_file():
        raise ValidateError(f"{what} {path}: not found.")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidateError(f"{what} {path}: not valid JSON ({exc}).") from None


def _number(value, where: str):
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise ValidateError(f"{where} is {value!r}, expected a number or null.")


def load_result_file(path: str | Path) -> ResultFile:
    path = Path(path)
    where = f"results file {path}"
    doc = _read_json(path, "results file")
    if isinstance(doc, dict) and "benchmarks" in doc and "rows" not in doc:
        raise ValidateError(f"{where}: this is a pytest-benchmark JSON; pass it with --benchmark-json.")
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ValidateError(f"{where}: not a res2net_validate results JSON (expected an object with a 'rows' list, "
                            "as written by --report-json).")
    run = doc.get("run") or {}
    if not isinstance(run, dict):
        raise ValidateError(f"{where}: 'run' is {type(run).__name__}, expected an object.")
    rows = []
    for index, row in enumerate(doc["rows"]):
        here = f"{where}: rows[{index}]"
        if not isinstance(row, dict) or not isinstance(row.get("precision"), str):
            raise ValidateError(f"{here}: expected an object with a 'precision' string.")
        for name in _NUMBERS:
            _number(row.get(name), f"{here}.{name}")
        for key in ("verdicts",):
            if not isinstance(row.get(key, []), list):
                raise ValidateError(f"{here}.{key}: expected a list.")
        if not isinstance(row.get("fidelity_vs_fp32", {}) or {}, dict):
            raise ValidateError(f"{here}.fidelity_vs_fp32: expected an object.")
        rows.append(row)
    notes = doc.get("notes") or []
    model = str(run.get("model_name") or doc.get("model") or "")
    return ResultFile(path, model, run, rows, [str(n) for n in notes] if isinstance(notes, list) else [])


def load_benchmark_file(path: str | Path) -> BenchmarkFile:
    path = Path(path)
    where = f"benchmark file {path}"
    doc = _read_json(path, "benchmark file")
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ValidateError(f"{where}: not a pytest-benchmark JSON (expected an object with a 'benchmarks' list, "
                            "as written by --benchmark-json).")
    entries = []
    for index, bench in enumerate(doc["benchmarks"]):
        here = f"{where}: benchmarks[{index}]"
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        if not isinstance(info, dict) or "precision" not in info:
            continue  # another project's benchmark in the same session: not ours to report
        stats = bench.get("stats")
        if not isinstance(stats, dict):
            raise ValidateError(f"{here}.stats: expected an object.")
        data = stats.get("data") or []
        if not isinstance(data, list) or not all(isinstance(v, (int, float)) for v in data):
            raise ValidateError(f"{here}.stats.data: expected a list of seconds.")
        trtexec = info.get("trtexec_like")
        entries.append(BenchmarkEntry(
            precision=str(info["precision"]), device=str(info.get("device") or ""),
            backend=str(info.get("backend") or ""), batch_size=_number(info.get("batch_size"), f"{here}.batch_size"),
            fps=_number(info.get("fps"), f"{here}.extra_info.fps"), round_seconds=[float(v) for v in data],
            stats=stats, trtexec_like=trtexec if isinstance(trtexec, dict) else None,
        ))
    machine = doc.get("machine_info") if isinstance(doc.get("machine_info"), dict) else {}
    return BenchmarkFile(path, parse_timestamp(doc.get("datetime")), str(machine.get("node") or ""), entries)
