"""Group runs into kinds, and find what failed and what regressed within a kind.

Runs are the same kind -- and may share a table or a plot -- only when model, thresholds file
(sha256) and dataset fingerprint match.  Different kinds get their own sections; with
``refuse_mixed`` they are one error instead, for a caller that wants a single table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ValidateError
from .load import BenchmarkFile, ResultFile

UNKNOWN_DEVICE = "unknown device"


@dataclass(frozen=True)
class KindKey:
    model: str
    thresholds_sha256: str | None
    dataset_fingerprint: str | None

    @staticmethod
    def of(result: ResultFile) -> KindKey:
        thresholds = result.run.get("thresholds") or {}
        dataset = result.run.get("dataset") or {}
        fingerprint = dataset.get("fingerprint") or dataset.get("sha256")  # the first run identities said sha256
        return KindKey(result.model, thresholds.get("sha256") or None, fingerprint or None)


@dataclass(frozen=True)
class SeriesKey:
    device: str
    precision: str
    backend: str
    batch_size: int | None

    @property
    def label(self) -> str:
        return f"{self.device} {self.precision.upper()} {self.backend}".strip()


@dataclass
class Point:
    """One row of one run."""
    run: ResultFile
    row: dict


@dataclass
class Regression:
    series: SeriesKey
    metric: str
    best: float
    best_run: str
    latest: float
    latest_run: str
    since_run: str

    @property
    def change(self) -> str:
        if self.metric == "fps":
            return f"{(self.latest / self.best - 1) * 100:+.1f}%"
        return f"{self.latest - self.best:+.2f} points"


@dataclass
class Kind:
    key: KindKey
    runs: list[ResultFile] = field(default_factory=list)
    benchmarks: list[BenchmarkFile] = field(default_factory=list)

    @property
    def thresholds(self) -> dict:
        return next((r.run["thresholds"] for r in self.runs if r.run.get("thresholds")), {})

    @property
    def dataset(self) -> dict:
        return next((r.run["dataset"] for r in self.runs if r.run.get("dataset")), {})

    def title(self) -> str:
        parts = [self.key.model or "unknown model"]
        thresholds = self.thresholds
        if self.key.thresholds_sha256:
            name = Path(str(thresholds.get("path") or "thresholds")).name
            parts.append(f"thresholds {name} (sha256 {self.key.thresholds_sha256[:12]})")
        else:
            parts.append("thresholds not recorded")
        dataset = self.dataset
        if self.key.dataset_fingerprint:
            size = f", {dataset['images']} images" if dataset.get("images") else ""
            parts.append(f"dataset {self.key.dataset_fingerprint[:12]}{size}")
        else:
            parts.append("dataset not recorded")
        return " · ".join(parts)

    def series(self) -> dict[SeriesKey, list[Point]]:
        """Every row, by device/precision/backend/batch, in run order (oldest first)."""
        out: dict[SeriesKey, list[Point]] = defaultdict(list)
        for run in self.runs:
            for row in run.rows:
                key = SeriesKey(str(row.get("device") or UNKNOWN_DEVICE), row["precision"],
                                str(row.get("backend") or ""), row.get("batch_size"))
                out[key].append(Point(run, row))
        return dict(out)

    def latest(self) -> dict[SeriesKey, Point]:
        return {key: points[-1] for key, points in self.series().items()}

    def devices(self) -> list[str]:
        return list(dict.fromkeys(key.device for key in self.series()))

    def failures(self) -> list[tuple[SeriesKey, Point, dict]]:
        return [(key, point, verdict) for key, point in self.latest().items()
                for verdict in point.row.get("verdicts", ()) if verdict.get("passed") is False]

    def regressions(self, fps_tolerance: float, accuracy_tolerance: float) -> list[Regression]:
        found = []
        for key, points in self.series().items():
            for metric in ("fps", "top1", "top5"):
                valued = [(p.run.label, p.row[metric]) for p in points if p.row.get(metric) is not None]
                regression = _regression(key, metric, valued, fps_tolerance if metric == "fps" else None,
                                         accuracy_tolerance)
                if regression:
                    found.append(regression)
        return found


def _regression(key: SeriesKey, metric: str, valued: list[tuple[str, float]], fps_tolerance: float | None,
                accuracy_tolerance: float) -> Regression | None:
    """The latest value against the best earlier one; 'since' is where the run of low values began."""
    if len(valued) < 2:
        return None
    earlier = valued[:-1]
    best_index = max(range(len(earlier)), key=lambda i: earlier[i][1])
    best = earlier[best_index][1]

    def low(value: float) -> bool:
        if fps_tolerance is not None:
            return value < best * (1 - fps_tolerance / 100)
        return value < best - accuracy_tolerance

    if not low(valued[-1][1]):
        return None
    since = len(valued) - 1
    while since - 1 > best_index and low(valued[since - 1][1]):
        since -= 1
    return Regression(key, metric, best, earlier[best_index][0], valued[-1][1], valued[-1][0], valued[since][0])


@dataclass
class Merged:
    kinds: list[Kind]
    unmatched_benchmarks: list[BenchmarkFile]

    @property
    def mixed(self) -> bool:
        return len(self.kinds) > 1


def _order(runs: list[ResultFile]) -> list[ResultFile]:
    """Oldest first by run timestamp; runs without one keep their given order, after the dated ones."""
    dated = sorted((r for r in runs if r.timestamp), key=lambda r: r.timestamp)
    return dated + [r for r in runs if not r.timestamp]


def merge(results: list[ResultFile], benchmarks: list[BenchmarkFile] = (), refuse_mixed: bool = False) -> Merged:
    if not results:
        raise ValidateError("no results files given (pass one or more RESULTS.json).")
    kinds: dict[KindKey, Kind] = {}
    for result in results:
        kinds.setdefault(KindKey.of(result), Kind(KindKey.of(result))).runs.append(result)
    if refuse_mixed and len(kinds) > 1:
        listing = "; ".join(f"{kind.title()}: {', '.join(str(r.path) for r in kind.runs)}" for kind in kinds.values())
        raise ValidateError(f"these results files are of {len(kinds)} different kinds (model, thresholds "
                            f"file, dataset) and cannot share one table: {listing}. Report them separately, or "
                            "drop --one-kind to get one section per kind.")
    for kind in kinds.values():
        kind.runs = _order(kind.runs)
    unmatched = []
    for bench in benchmarks:
        kind = _kind_for_benchmark(bench, list(kinds.values()))
        (kind.benchmarks if kind else unmatched).append(bench)
    for kind in kinds.values():  # oldest first, so a later night's rounds replace an earlier night's
        kind.benchmarks.sort(key=lambda b: (b.datetime is None, b.datetime or 0))
    return Merged(list(kinds.values()), unmatched)


def _kind_for_benchmark(bench: BenchmarkFile, kinds: list[Kind]) -> Kind | None:
    """The kind of the results file written with it (NAME.res2net.json, or results.json in the same
    folder), else the only kind that ran on its devices."""
    beside = {bench.path.with_name(bench.path.stem + ".res2net.json").resolve()}
    same_folder = [k for k in kinds for r in k.runs if r.path.resolve().parent == bench.path.resolve().parent]
    for kind in kinds:
        if any(r.path.resolve() in beside for r in kind.runs):
            return kind
    if len(same_folder) == 1:
        return same_folder[0]
    devices = {e.device for e in bench.entries}
    candidates = [k for k in kinds if devices & set(k.devices())]
    return candidates[0] if len(candidates) == 1 else None
