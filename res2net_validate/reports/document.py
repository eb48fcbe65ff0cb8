"""What the report says, as a list of blocks; ``markdown.py`` and ``html.py`` only lay it out.

Figures are deferred (a function and its kind), so the Markdown report never imports matplotlib.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..constants import MODEL_LABEL, PRECISIONS
from .merge import Kind, Merged, SeriesKey


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Text:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    title: str
    draw: Callable[[Kind], bytes | None]
    kind: Kind


Block = Heading | Text | Bullets | Table | Figure

CARD_COLUMNS = ["Model", "BatchSize", "Precision", "Backend", "FPS", "Top-1(%)", "Top-5(%)", "Images", "Run"]
VERDICT_COLUMNS = ["Result", "Precision", "Check", "Metric", "Measured", "Bounds", "Threshold", "p-value",
                   "Images", "Message"]


# Characters that start Markdown markup anywhere in a line, and what starts a block at its beginning.
_MARKUP = re.compile(r"([\\`*\[\]<>&!~$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")  # res2net50_14w_8s stays
_BLOCK_START = re.compile(r"^([#>+=-])|^(\d+)([.)])")


def md(value) -> str:
    """Free text from a file (a device, host, path, note, message) as Markdown that renders as itself:
    one line (a newline could open a heading), every markup character escaped.  ``|`` is left to the
    table writer, which escapes it in cells; outside a table it is plain text."""
    text = _MARKUP.sub(r"\\\1", " ".join(str(value).split()))
    return _BLOCK_START.sub(lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}", text)


def code(value) -> str:
    """Free text as a code span (its content is never markup), or escaped text where a backtick or
    newline would end the span early."""
    text = str(value)
    return f"`{text}`" if text and "`" not in text and "\n" not in text and "\r" not in text else md(text)


def _num(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(verdict: dict) -> str:
    interval = verdict.get("interval")
    if isinstance(interval, list) and len(interval) == 2 and None not in interval:
        return f"[{interval[0]:.2f}, {interval[1]:.2f}]"
    return "-"


def _series_order(key: SeriesKey) -> tuple:
    rank = {p: i for i, p in enumerate(PRECISIONS)}
    return key.device, rank.get(key.precision, 99), key.backend


def build(merged: Merged, fps_tolerance: float, accuracy_tolerance: float) -> list[Block]:
    from . import plots

    # (an FPS-only run, and its benchmark file, may sit in more than one kind: count each once)
    runs = len({id(run) for kind in merged.kinds for run in kind.runs})
    benchmarks = len({id(b) for kind in merged.kinds for b in kind.benchmarks}) + len(merged.unmatched_benchmarks)
    labels = " / ".join(dict.fromkeys(kind.label for kind in merged.kinds)) or MODEL_LABEL
    blocks: list[Block] = [Heading(1, f"{md(labels)} validation report"),
                           Text(f"{runs} result file(s), {benchmarks} benchmark file(s).")]
    if merged.mixed:
        blocks.append(Text(f"**These runs are of {len(merged.kinds)} different kinds** (model, thresholds file or "
                           "dataset differ): each kind has its own section below, and nothing is compared or "
                           "averaged across sections."))
    for kind in merged.kinds:
        blocks += _kind_blocks(kind, merged.mixed, fps_tolerance, accuracy_tolerance, plots)
    if merged.unmatched_benchmarks:
        blocks.append(Heading(2, "Benchmark files not matched to a result file"))
        blocks.append(Bullets([f"{code(b.path)}: {len(b.entries)} benchmark(s) on "
                               + ", ".join(md(d) for d in sorted({e.device for e in b.entries}))
                               for b in merged.unmatched_benchmarks]))
    return blocks


def _kind_blocks(kind: Kind, mixed: bool, fps_tolerance: float, accuracy_tolerance: float, plots) -> list[Block]:
    latest = kind.latest()
    blocks: list[Block] = [Heading(2, md(kind.title()) if mixed else f"Runs: {md(kind.title())}"), _runs_table(kind)]
    blocks += _problem_blocks(kind, latest, fps_tolerance, accuracy_tolerance)
    blocks += _card_tables(kind, latest)
    blocks += _verdict_blocks(latest, kind.devices())
    blocks += _fidelity_blocks(latest)
    blocks += _latency_blocks(kind)
    blocks += _history_blocks(kind)
    blocks.append(Heading(3, "Plots"))
    blocks += [Figure("FPS per precision and device, with the reference figures", plots.fps_by_device, kind),
               Figure("Latency per batch, per precision", plots.latency, kind),
               Figure("Top-1 / Top-5 with their intervals against the floors", plots.accuracy, kind),
               Figure("Agreement with FP32 and the classes that lost most", plots.fidelity, kind),
               Figure("FPS and Top-1 over time", plots.over_time, kind)]
    notes = list(dict.fromkeys(note for run in kind.runs for note in run.notes))
    if notes:
        blocks += [Heading(3, "Notes"), Bullets([md(note) for note in notes])]
    return blocks


def _outcome(verdict: dict) -> str:
    """FAIL or pass, with the state an accuracy verdict ended in (shown, not shown, missed)."""
    outcome = "FAIL" if verdict.get("passed") is False else "pass"
    return f"{outcome} ({verdict['state']})" if isinstance(verdict.get("state"), str) else outcome


def _p_values(verdict: dict) -> str:
    raw, adjusted = verdict.get("p_value"), verdict.get("p_adjusted")
    if not isinstance(raw, (int, float)):
        return "-"
    if isinstance(adjusted, (int, float)) and (verdict.get("verdicts_in_run") or 1) > 1:
        return f"{raw:.3g} ({adjusted:.3g} adj.)"
    return f"{raw:.3g}"


def _subset(run: dict) -> str:
    """Which images the run scored: all, or a --num-images subset and its seed."""
    if run.get("num_images") is None:
        return "all" if "num_images" in run else "-"
    return f"{run['num_images']} (seed {run.get('subset_seed', '-')})"


def _runs_table(kind: Kind) -> Table:
    return Table(["Run", "File", "Devices", "Rows", "Scored", "Thresholds", "Source"], [
        [md(run.label), code(run.path), ", ".join(dict.fromkeys(md(r.get("device") or "-") for r in run.rows)),
         str(len(run.rows)), md(_subset(run.run)), md((run.run.get("thresholds") or {}).get("path") or "-"),
         md(run.run.get("source") or "-")]
        for run in kind.runs
    ])


def _problem_blocks(kind: Kind, latest: dict, fps_tolerance: float, accuracy_tolerance: float) -> list[Block]:
    failures = sorted(kind.failures(), key=lambda f: _series_order(f[0]))
    items = [f"**FAIL** {md(v.get('metric', '?'))} {md(key.precision.upper())} on {md(key.device)} "
             f"({md(key.backend)}): measured {_num(v.get('measured'))}, interval {_interval(v)}, threshold "
             f"{_num(v.get('threshold'))} ({md(v.get('kind', 'check'))}; run {md(point.run_of(v).label)})"
             + (f": {md(v['message'])}" if v.get("message") else "")
             for key, point, v in failures]
    items += [f"**REGRESSION** {r.metric} {md(r.series.precision.upper())} on {md(r.series.device)} "
              f"({md(r.series.backend)}): {_num(r.best)} → {_num(r.latest)} ({r.change}) since {md(r.since_run)}; "
              f"best was {md(r.best_run)}, latest {md(r.latest_run)}"
              for r in kind.regressions(fps_tolerance, accuracy_tolerance)]
    blocks: list[Block] = [Heading(3, "Failures and regressions")]
    if items:
        blocks.append(Bullets(items))
    elif any(p.row.get("verdicts") for p in latest.values()):
        blocks.append(Text("None: every verdict passed and nothing regressed."))
    else:
        blocks.append(Text("No verdicts recorded in these files (older results JSON); nothing regressed."))
    blocks.append(Text(f"Regression: the latest run below the best earlier run of the same device, precision and "
                       f"backend by more than {fps_tolerance:g}% FPS or {accuracy_tolerance:g} points of accuracy."))
    return blocks


def _card_tables(kind: Kind, latest: dict) -> list[Block]:
    blocks: list[Block] = []
    for device in kind.devices():
        keys = sorted((k for k in latest if k.device == device), key=_series_order)
        blocks.append(Heading(3, f"{md(kind.label)} card table: {md(device)}"))
        blocks.append(Table(CARD_COLUMNS, [
            [md(kind.label), str(k.batch_size or "-"), md(k.precision.upper()), md(k.backend),
             _num(latest[k].row.get("fps")), _num(latest[k].row.get("top1")), _num(latest[k].row.get("top5")),
             str(latest[k].row.get("images") or "-"), md(latest[k].label)] for k in keys]))
    return blocks


def _verdict_blocks(latest: dict, devices: list[str]) -> list[Block]:
    """One table per device, failures first; the run of each row is the card table's."""
    blocks: list[Block] = []
    for device in devices:
        verdicts = [(key, v) for key, point in latest.items() if key.device == device
                    for v in point.row.get("verdicts", ())]
        verdicts.sort(key=lambda item: (item[1].get("passed") is not False, _series_order(item[0])))
        if verdicts:
            blocks += [Heading(3, f"Verdicts: {md(device)}"), Table(VERDICT_COLUMNS, [
                [md(_outcome(v)), md((v.get("precision") or key.precision).upper()),
                 md(v.get("kind") or "-"), md(v.get("metric") or "-"), _num(v.get("measured")), _interval(v),
                 _num(v.get("threshold")), _p_values(v),
                 str(v.get("images") or "-"), md(v.get("message") or "-")]
                for key, v in verdicts])]
    return blocks


def _history_blocks(kind: Kind) -> list[Block]:
    if len(kind.runs) < 2:
        return []
    history = sorted(((key, p) for key, points in kind.series().items() for p in points),
                     key=lambda item: _series_order(item[0]))
    return [Heading(3, "History"), Table(["Device", "Precision", "Backend", "Run", "FPS", "Top-1(%)", "Top-5(%)"], [
        [md(key.device), md(key.precision.upper()), md(key.backend), md(p.run.label), _num(p.row.get("fps")),
         _num(p.row.get("top1")), _num(p.row.get("top5"))] for key, p in history])]


def _fidelity_blocks(latest: dict) -> list[Block]:
    rows = []
    for key in sorted(latest, key=_series_order):
        fidelity = latest[key].row.get("fidelity_vs_fp32") or {}
        if fidelity.get("top1_agreement") is None:
            continue
        lost = sorted(fidelity.get("classes_lost") or (), key=lambda c: -c.get("lost", 0))[:10]
        rows.append([md(key.device), md(key.precision.upper()), str(fidelity.get("images", "-")),
                     _num(fidelity.get("top1_agreement")), _num(fidelity.get("mean_cosine"), 5),
                     "-" if fidelity.get("mean_kl") is None else f"{fidelity['mean_kl']:.3g}",
                     ", ".join(f"{md(c.get('label') or c.get('class'))} −{c.get('lost', 0)}/+{c.get('gained', 0)}"
                               for c in lost) or "-"])
    if not rows:
        return []
    return [Heading(3, "Agreement with FP32"),
            Table(["Device", "Precision", "Images", "Top-1 agreement (%)", "Mean cosine", "Mean KL",
                   "Classes that lost most (lost/gained)"], rows)]


def _latency_blocks(kind: Kind) -> list[Block]:
    entries = {}
    for bench in kind.benchmarks:
        for entry in bench.entries:
            entries[(entry.device, entry.backend, entry.precision)] = entry
    if not entries:
        return []
    rank = {p: i for i, p in enumerate(PRECISIONS)}
    rows = []
    for entry in sorted(entries.values(), key=lambda e: (e.device, rank.get(e.precision, 99), e.backend)):
        stats = entry.stats
        compute = (entry.trtexec_like or {}).get("compute_ms") or {}
        rows.append([md(entry.device), md(entry.precision.upper()), md(entry.backend), str(entry.batch_size or "-"),
                     str(len(entry.round_seconds) or stats.get("rounds", "-")),
                     *(_num(stats[name] * 1000, 3) if stats.get(name) is not None else "-"
                       for name in ("min", "median", "max")),
                     _num(compute.get("p99"), 3) if compute else "-"])
    return [Heading(3, "Latency per batch (pytest-benchmark)"),
            Table(["Device", "Precision", "Backend", "Batch", "Rounds", "Min (ms)", "Median (ms)", "Max (ms)",
                   "GPU p99 (ms)"], rows)]
