"""The closing table, in the card's format, and its JSON twin."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import atomic_write_bytes
from ..cards import label_of
from ..constants import MODEL_LABEL, PRECISIONS, RESULT_PROPERTY

COLUMNS = ("Model", "BatchSize", "Precision", "Backend", "FPS", "Top-1(%)", "Top-5(%)")


@dataclass
class ReportRow:
    precision: str
    backend: str
    batch_size: int | None = None
    fps: float | None = None
    top1: float | None = None
    top5: float | None = None
    images: int | None = None
    device: str = ""
    extra: dict = field(default_factory=dict)
    verdicts: list = field(default_factory=list)  # verdicts.Verdict.as_dict() records


# -- what a test records (record_result): typed, rendered by as_dict() into the public dict -------------
# The dicts' keys and their order are a public format: the results JSON, and junitxml's
# res2net_result property (the dict's text).  tests/plugin/test_report_dir.py pins them.


class ResultRecord:
    def as_dict(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class AccuracyRecord(ResultRecord):
    precision: str
    backend: str
    batch_size: int
    top1: float
    top5: float
    images: int
    device: str
    run: dict  # session.identity(): what identifies the run's inputs
    seconds: float  # scoring time
    skipped_images: int
    fidelity: dict | None = None  # vs FP32 on the same images, when it was scored
    notes: tuple[str, ...] = ()
    baseline: dict | None = None  # predictions.baseline_entry(), with --save-baseline

    def as_dict(self) -> dict:
        record = {"precision": self.precision, "backend": self.backend, "batch_size": self.batch_size,
                  "top1": self.top1, "top5": self.top5, "images": self.images, "device": self.device,
                  "run": self.run,
                  "extra": {"accuracy_seconds": round(self.seconds, 2), "skipped_images": self.skipped_images,
                            **({"fidelity_vs_fp32": self.fidelity} if self.fidelity else {})},
                  "notes": list(self.notes)}
        if self.baseline is not None:
            record["baseline"] = self.baseline
        return record


@dataclass(frozen=True)
class PerformanceRecord(ResultRecord):
    precision: str
    backend: str
    batch_size: int
    fps: float
    device: str
    notes: tuple[str, ...] = ()
    run: dict | None = None  # session.model_identity(): so an FPS-only run joins its accuracy runs' report

    def as_dict(self) -> dict:
        record = {"precision": self.precision, "backend": self.backend, "batch_size": self.batch_size,
                  "fps": self.fps, "device": self.device}
        if self.run is not None:
            record["run"] = self.run
        return {**record, "notes": list(self.notes)}


@dataclass(frozen=True)
class VerdictRecord(ResultRecord):
    precision: str
    backend: str
    verdicts: tuple = ()  # verdicts.Verdict

    def as_dict(self) -> dict:
        return {"precision": self.precision, "backend": self.backend,
                "verdicts": [verdict.as_dict() for verdict in self.verdicts]}


class Report:
    """Results gathered from test reports (``user_properties``), so xdist workers' results arrive too."""

    PROPERTY = RESULT_PROPERTY

    def __init__(self):
        self.rows: dict[tuple[str, str], ReportRow] = {}
        self.notes: list[str] = []
        self.run: dict = {}  # what identifies the run: model, weights, dataset, preprocessing, machine
        self.baseline_entries: dict[str, dict] = {}  # per precision, with --save-baseline

    def add(self, record: dict) -> None:
        key = (record["precision"], record["backend"])
        row = self.rows.setdefault(key, ReportRow(record["precision"], record["backend"]))
        for name in ("batch_size", "fps", "top1", "top5", "images", "device"):
            if record.get(name) is not None:
                setattr(row, name, record[name])
        row.extra.update(record.get("extra", {}))
        row.verdicts.extend(record.get("verdicts", ()))
        self.run.update(record.get("run") or {})
        if "baseline" in record:
            self.baseline_entries[record["precision"]] = record["baseline"]
        for note in record.get("notes", ()):
            if note not in self.notes:
                self.notes.append(note)

    @property
    def label(self) -> str:
        """The card's label for the Model column (results of a run that recorded none: the first card's)."""
        return label_of(self.run) or MODEL_LABEL

    def sorted_rows(self) -> list[ReportRow]:
        order = {p: i for i, p in enumerate(PRECISIONS)}
        return sorted(self.rows.values(), key=lambda r: (order.get(r.precision, 99), r.backend))

    def table(self) -> str:
        cells = [COLUMNS] + [
            (
                self.label,
                str(row.batch_size) if row.batch_size else "-",
                row.precision.upper(),
                row.backend,
                f"{row.fps:.2f}" if row.fps is not None else "-",
                f"{row.top1:.2f}" if row.top1 is not None else "-",
                f"{row.top5:.2f}" if row.top5 is not None else "-",
            )
            for row in self.sorted_rows()
        ]
        widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
        lines = [" | ".join(c.ljust(w) for c, w in zip(cells[0], widths)),
                 "-|-".join("-" * w for w in widths)]
        lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells[1:]]
        return "\n".join(lines)

    def verdicts(self) -> list[dict]:
        """Every verdict, failures first."""
        return sorted((v for row in self.sorted_rows() for v in row.verdicts), key=lambda v: v["passed"])

    def verdict_lines(self) -> list[str]:
        return [f"{'PASS' if v['passed'] else 'FAIL'}{' (' + v['state'] + ')' if v.get('state') else ''} "
                f"{v['kind']} {v['precision']}: {v['message']}" for v in self.verdicts()]

    def to_json(self) -> dict:
        return {
            "model": self.label,
            "card": (self.run.get("card") or {}).get("name"),
            "run": self.run,
            "rows": [
                {"precision": r.precision, "backend": r.backend, "batch_size": r.batch_size, "fps": r.fps,
                 "top1": r.top1, "top5": r.top5, "images": r.images, "device": r.device, **r.extra,
                 "verdicts": r.verdicts}
                for r in self.sorted_rows()
            ],
            "notes": self.notes,
        }

    def write_json(self, path: Path) -> None:
        # (the project's atomic writer: mode 0666 less the umask, like the reports beside it; a
        # NamedTemporaryFile would leave it 0600, unreadable to a merge step run as another user)
        atomic_write_bytes(Path(path), json.dumps(self.to_json(), indent=2).encode("utf-8"))


def json_path_beside(benchmark_json: str | os.PathLike) -> Path:
    path = Path(benchmark_json)
    return path.with_name(path.stem + ".res2net.json")
