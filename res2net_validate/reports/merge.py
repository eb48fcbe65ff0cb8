"""Group runs into kinds, and find what failed and what regressed within a kind.

Runs are the same kind -- and may share a table or a plot -- only when model, thresholds file
(sha256) and dataset fingerprint match.  A run that scored no images (FPS only, e.g. a separate
``-m performance`` CI job) has no dataset to match: it joins the kind(s) whose scoring runs have its
model, thresholds file and weights (sha256).  Different kinds get their own sections; with
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
        if not result.scored:
            fingerprint = None  # FPS only: whatever dataset it names, it scored none of it
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
    """One row of one run; or, as a series' latest, a row whose FPS came from another run (``fps_run``)."""
    run: ResultFile
    row: dict
    fps_run: ResultFile | None = None
    verdict_runs: dict = field(default_factory=dict)  # id(verdict) -> the run that made it, when combined

    @property
    def label(self) -> str:
        return f"{self.run.label} (FPS: {self.fps_run.label})" if self.fps_run else self.run.label

    def run_of(self, verdict: dict) -> ResultFile:
        return self.verdict_runs.get(id(verdict), self.run)


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

    @property
    def label(self) -> str:
        """The card's label, for the Model column (runs from before cards recorded theirs: the first card's)."""
        from ..cards import label_of
        from ..constants import MODEL_LABEL

        return next(filter(None, (label_of(r.run) for r in self.runs)), MODEL_LABEL)

    def title(self) -> str:
        parts = [self.key.model or "unknown model"]
        thresholds = self.thresholds
        if self.key.thresholds_sha256:
            name = Path(str(thresholds.get("path") or "thresholds")).name
            parts.append(f"thresholds {name} (sha256 {self.key.thresholds_sha256[:12]})")
        else:
            parts.append("thresholds not recorded")
        dataset = self.dataset
        if not any(run.scored for run in self.runs):
            parts.append("no images scored (FPS only)")
        elif self.key.dataset_fingerprint:
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
        return {key: _latest_of_each(points) for key, points in self.series().items()}

    def scored_weights(self) -> set[str]:
        return {str(r.run["weights_sha256"]) for r in self.runs if r.scored and r.run.get("weights_sha256")}

    def takes_fps_only(self, run: ResultFile) -> bool:
        """Whether an FPS-only run measured this kind's model: same model, thresholds file and weights."""
        key, weights = KindKey.of(run), run.run.get("weights_sha256")
        same_model = (key.model, key.thresholds_sha256) == (self.key.model, self.key.thresholds_sha256)
        return bool(same_model and self.key.thresholds_sha256 and weights) and str(weights) in self.scored_weights()

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


def _latest_of_each(points: list[Point]) -> Point:
    """The latest accuracy and the latest FPS of a series, side by side even when separate runs (CI jobs)
    measured them; each verdict stays with the run that made it."""
    scored = next((p for p in reversed(points) if p.row.get("top1") is not None), None)
    timed = next((p for p in reversed(points) if p.row.get("fps") is not None), None)
    if scored is None or timed is None or scored is timed:
        return points[-1]
    # Top-1/Top-5 checks are the scoring run's, FPS's the timing run's; one both made (the precision
    # proof) is the newer run's.
    verdicts: dict[tuple, tuple[dict, ResultFile]] = {}
    for point in sorted((scored, timed), key=points.index):
        for verdict in point.row.get("verdicts", ()):
            metric = verdict.get("metric")
            if (metric == "fps" and point is not timed) or (metric in ("top1", "top5") and point is not scored):
                continue
            verdicts[(verdict.get("kind"), metric, verdict.get("precision"))] = (verdict, point.run)
    row = {**scored.row, "fps": timed.row["fps"], "verdicts": [v for v, _ in verdicts.values()]}
    return Point(scored.run, row, fps_run=timed.run, verdict_runs={id(v): run for v, run in verdicts.values()})


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
    for result in (r for r in results if r.scored):
        kinds.setdefault(KindKey.of(result), Kind(KindKey.of(result))).runs.append(result)
    scoring = list(kinds.values())
    for result in (r for r in results if not r.scored):
        joined = [kind for kind in scoring if kind.takes_fps_only(result)]
        for kind in joined or [kinds.setdefault(KindKey.of(result), Kind(KindKey.of(result)))]:
            kind.runs.append(result)
    if refuse_mixed and len(kinds) > 1:
        listing = "; ".join(f"{kind.title()}: {', '.join(str(r.path) for r in kind.runs)}" for kind in kinds.values())
        raise ValidateError(f"these results files are of {len(kinds)} different kinds (model, thresholds "
                            f"file, dataset) and cannot share one table: {listing}. Report them separately, or "
                            "drop --one-kind to get one section per kind.")
    for kind in kinds.values():
        kind.runs = _order(kind.runs)
    unmatched = []
    for bench in benchmarks:
        matched = _kinds_for_benchmark(bench, list(kinds.values()))
        for kind in matched:
            kind.benchmarks.append(bench)
        if not matched:
            unmatched.append(bench)
    for kind in kinds.values():  # oldest first, so a later night's rounds replace an earlier night's
        kind.benchmarks.sort(key=lambda b: (b.datetime is None, b.datetime or 0))
    return Merged(list(kinds.values()), unmatched)


def _kinds_for_benchmark(bench: BenchmarkFile, kinds: list[Kind]) -> list[Kind]:
    """The kind(s) of the results file written with it (NAME.res2net.json, or results.json in the same
    folder; an FPS-only run may have joined several), else the only kind that ran on its devices."""
    beside = bench.path.with_name(bench.path.stem + ".res2net.json").resolve()
    folder = bench.path.resolve().parent
    with_beside = [k for k in kinds if any(r.path.resolve() == beside for r in k.runs)]
    if with_beside:
        return with_beside
    same_folder = [k for k in kinds if any(r.path.resolve().parent == folder for r in k.runs)]
    folder_runs = {id(r) for k in same_folder for r in k.runs if r.path.resolve().parent == folder}
    if same_folder and len(folder_runs) == 1:
        return same_folder
    devices = {e.device for e in bench.entries}
    candidates = [k for k in kinds if devices & set(k.devices())]
    return candidates if len(candidates) == 1 else []
