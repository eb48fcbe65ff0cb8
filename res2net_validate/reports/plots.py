"""The HTML report's figures, as PNG bytes.  matplotlib is an optional extra (``pip install
res2net_validate[report]``), imported only here and only when a figure is drawn.

Each function takes one kind of runs (``merge.Kind``) and returns PNG bytes, or None when the
runs hold nothing to draw.  matplotlib's object API (``Figure``) is used, not pyplot, so drawing
inside a pytest process leaves no global backend or figure state behind.
"""

from __future__ import annotations

import functools
import io

from ..constants import PRECISIONS
from ..errors import ValidateError
from .card import reference_fps
from .merge import Kind

MATPLOTLIB_HINT = "pip install 'res2net_validate[report]' (matplotlib) for the HTML report's plots"


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plain_text(draw):
    """Draw with every label taken literally: a device or host name holding ``$...$`` would otherwise be
    parsed as math text (and crash the figure, so report.html was not written)."""
    @functools.wraps(draw)
    def literal(*args, **kwargs):
        try:
            import matplotlib
        except ImportError:
            return draw(*args, **kwargs)  # _figure says what to install
        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return draw(*args, **kwargs)

    return literal


def _figure(width: float, height: float, columns: int = 1):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ValidateError(f"report.html needs matplotlib: {MATPLOTLIB_HINT}.") from None
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)
    return buffer.getvalue()


def _ordered(precisions) -> list[str]:
    rank = {p: i for i, p in enumerate(PRECISIONS)}
    return sorted(set(precisions), key=lambda p: (rank.get(p, 99), p))


def _short(device: str, width: int = 34) -> str:
    return device if len(device) <= width else device[: width - 1] + "…"


@_plain_text
def fps_by_device(kind: Kind) -> bytes | None:
    latest = {k: p for k, p in kind.latest().items() if p.row.get("fps") is not None}
    if not latest:
        return None
    precisions = _ordered(k.precision for k in latest)
    bars = list(dict.fromkeys((k.device, k.backend) for k in latest))
    source, references = reference_fps(kind.thresholds)
    figure, (axes,) = _figure(9, 4.5)
    width = 0.8 / len(bars)
    values = []
    for index, (device, backend) in enumerate(bars):
        xs, ys = [], []
        for x, precision in enumerate(precisions):
            point = next((p for k, p in latest.items() if (k.device, k.backend, k.precision) ==
                          (device, backend, precision)), None)
            if point is not None:
                xs.append(x - 0.4 + width * (index + 0.5))
                ys.append(point.row["fps"])
        values += ys
        drawn = axes.bar(xs, ys, width * 0.9, label=f"{_short(device)} ({backend})")
        axes.bar_label(drawn, fmt="%.1f", fontsize=8)
    for device, floors in references.items():
        for x, precision in enumerate(precisions):
            if precision in floors:
                values.append(floors[precision])
                axes.hlines(floors[precision], x - 0.45, x + 0.45, colors="black", linestyles="dashed")
                axes.annotate(f"{device} {floors[precision]:g}", (x + 0.45, floors[precision]), fontsize=8,
                              ha="right", va="bottom")
    if max(values) / max(min(values), 1e-9) > 20:
        axes.set_yscale("log")  # the card's GPU figures and a CPU run differ by orders of magnitude
    axes.set_xticks(range(len(precisions)), [p.upper() for p in precisions])
    axes.set_ylabel("images / s")
    axes.set_title(f"FPS per precision and device (dashed: reference, {source})")
    axes.legend(fontsize=8)
    return _png(figure)


@_plain_text
def latency(kind: Kind) -> bytes | None:
    entries = {}
    for bench in kind.benchmarks:  # oldest first: a later file's entry replaces an earlier one
        for entry in bench.entries:
            entries[(entry.device, entry.backend, entry.precision)] = entry
    if not entries:
        return None
    rank = {p: i for i, p in enumerate(PRECISIONS)}
    ordered = sorted(entries.values(), key=lambda e: (rank.get(e.precision, 99), e.device, e.backend))
    figure, (axes,) = _figure(9, 4.5)
    boxes, percentile_label = [], "GPU compute percentiles (trtexec-like)"
    for x, entry in enumerate(ordered, start=1):
        label = f"{entry.precision.upper()}\n{_short(entry.device, 22)}"
        if entry.round_seconds:
            box = _box_from_rounds([s * 1000 for s in entry.round_seconds])
        else:  # a stored run saved without --benchmark-save-data: pytest-benchmark's summary only
            stats = entry.stats
            box = {key: stats[src] * 1000 for key, src in (("whislo", "min"), ("q1", "q1"), ("med", "median"),
                                                            ("q3", "q3"), ("whishi", "max")) if src in stats}
        boxes.append({**box, "label": label, "fliers": []})
        compute = (entry.trtexec_like or {}).get("compute_ms") or {}
        marks = [(name, compute[name]) for name in ("median", "p90", "p95", "p99") if name in compute]
        if marks:
            axes.scatter([x + 0.3] * len(marks), [v for _, v in marks], marker="_", s=200, color="tab:red",
                         label=percentile_label)
            percentile_label = None
    axes.bxp(boxes, showfliers=False)
    axes.set_ylabel("ms per batch")
    axes.set_title("Latency per batch, pytest-benchmark rounds (box: quartiles, whiskers: min/max)")
    if percentile_label is None:
        axes.legend(fontsize=8)
    return _png(figure)


def _box_from_rounds(values: list[float]) -> dict:
    import numpy as np

    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"whislo": min(values), "q1": q1, "med": median, "q3": q3, "whishi": max(values)}


@_plain_text
def accuracy(kind: Kind) -> bytes | None:
    latest = {k: p for k, p in kind.latest().items() if p.row.get("top1") is not None}
    if not latest:
        return None
    precisions = _ordered(k.precision for k in latest)
    series = list(dict.fromkeys((k.device, k.backend) for k in latest))
    floors = _accuracy_floors(kind, latest)
    # (a panel per metric the runs hold: an empty one would be a bare 0-1 frame)
    metrics = [(m, t) for m, t in (("top1", "Top-1"), ("top5", "Top-5")) if any(p.row.get(m) is not None
                                                                                for p in latest.values())]
    figure, axes_list = _figure(5 * len(metrics), 4.5, columns=len(metrics))
    for axes, (metric, title) in zip(axes_list, metrics):
        step = 0.6 / max(len(series), 1)
        for index, (device, backend) in enumerate(series):
            xs, ys, low, high = [], [], [], []
            for x, precision in enumerate(precisions):
                point = next((p for k, p in latest.items() if (k.device, k.backend, k.precision) ==
                              (device, backend, precision)), None)
                if point is None or point.row.get(metric) is None:
                    continue
                measured = point.row[metric]
                interval = _interval(point.row, metric) or (measured, measured)
                xs.append(x - 0.3 + step * (index + 0.5))
                ys.append(measured)
                low.append(max(measured - interval[0], 0))
                high.append(max(interval[1] - measured, 0))
            if xs:
                axes.errorbar(xs, ys, yerr=[low, high], fmt="o", capsize=4, label=f"{_short(device)} ({backend})")
        for x, precision in enumerate(precisions):
            floor = floors.get((precision, metric))
            if floor is not None:
                axes.hlines(floor, x - 0.4, x + 0.4, colors="tab:red", linestyles="dashed")
                axes.annotate(f"floor {floor:g}", (x + 0.4, floor), fontsize=8, ha="right", va="top")
        axes.set_xticks(range(len(precisions)), [p.upper() for p in precisions])
        axes.set_xlim(-0.6, len(precisions) - 0.4)
        axes.set_ylabel("%")
        axes.set_title(f"{title} with its interval (red dashed: floor)")
        axes.legend(fontsize=8)  # each panel its own: a series may lack one metric
    return _png(figure)


def _interval(row: dict, metric: str) -> tuple[float, float] | None:
    for verdict in row.get("verdicts", ()):  # the floor's verdict: its interval is the accuracy's, not a drop's
        interval = verdict.get("interval")
        if (verdict.get("kind") == "absolute" and verdict.get("metric") == metric and isinstance(interval, list)
                and len(interval) == 2 and None not in interval):
            return float(interval[0]), float(interval[1])
    return None


def _accuracy_floors(kind: Kind, latest) -> dict[tuple[str, str], float]:
    """Floors from the absolute verdicts, else from the thresholds file the runs name."""
    floors = {}
    for point in latest.values():
        for verdict in point.row.get("verdicts", ()):
            if verdict.get("kind") == "absolute" and verdict.get("threshold") is not None:
                floors[(verdict.get("precision") or point.row["precision"], verdict.get("metric"))] = \
                    verdict["threshold"]
    if floors:
        return floors
    from pathlib import Path

    from ..cards import thresholds_of

    path = kind.thresholds.get("path")
    if path and Path(path).is_file():
        try:
            loaded = thresholds_of(path)
        except ValidateError:
            return {}
        for precision, target in loaded.accuracy.items():
            floors[(precision, "top1")], floors[(precision, "top5")] = target.top1, target.top5
    return floors


@_plain_text
def fidelity(kind: Kind, classes: int = 10) -> bytes | None:
    compared = {k: p.row["fidelity_vs_fp32"] for k, p in kind.latest().items()
                if p.row.get("fidelity_vs_fp32") and p.row["fidelity_vs_fp32"].get("top1_agreement") is not None}
    if not compared:
        return None
    with_classes = [(k, f["classes_lost"]) for k, f in compared.items() if f.get("classes_lost")][:3]
    figure, axes_list = _figure(5 + 4.5 * len(with_classes), 4.5, columns=1 + len(with_classes))
    agreement = axes_list[0]
    labels = [f"{k.precision.upper()}\n{_short(k.device, 22)}" for k in compared]
    drawn = agreement.bar(range(len(compared)), [f["top1_agreement"] for f in compared.values()], color="tab:blue")
    agreement.bar_label(drawn, fmt="%.2f", fontsize=8)
    agreement.set_xticks(range(len(compared)), labels, fontsize=8)
    agreement.set_ylim(0, 105)
    agreement.set_ylabel("% of images with FP32's top-1 class")
    agreement.set_title("Top-1 agreement with FP32")
    for axes, (key, lost) in zip(axes_list[1:], with_classes):
        worst = sorted(lost, key=lambda c: (-c.get("lost", 0), str(c.get("label"))))[:classes][::-1]
        names = [str(c.get("label") or c.get("class")) for c in worst]
        axes.barh(range(len(worst)), [c.get("lost", 0) for c in worst], color="tab:red", label="lost")
        axes.barh(range(len(worst)), [-c.get("gained", 0) for c in worst], color="tab:green", label="gained")
        axes.set_yticks(range(len(worst)), names, fontsize=8)
        axes.set_xlabel("images vs FP32 (lost right, gained left)")
        axes.set_title(f"{key.precision.upper()} on {_short(key.device, 24)}: the {len(worst)} classes that lost "
                       "most", fontsize=9)
        axes.legend(fontsize=8)
    return _png(figure)


@_plain_text
def over_time(kind: Kind) -> bytes | None:
    if len(kind.runs) < 2:
        return None
    dated = all(run.timestamp for run in kind.runs)
    # On a time axis when every run has its timestamp; else one tick per run, oldest first.
    position = {id(run): run.timestamp if dated else i for i, run in enumerate(kind.runs)}
    series = kind.series()
    several_batches = len({key.batch_size for key in series}) > 1  # else the label would merge their lines
    panels = []  # (metric, title, {series label: [(x, value)]}), only for metrics some run measured:
    for metric, title in (("fps", "FPS"), ("top1", "Top-1 (%)")):  # a nightly accuracy job times nothing
        lines = {_short(key.label, 40) + (f" batch {key.batch_size}" if several_batches else ""): valued
                 for key, points in series.items()
                 if (valued := [(position[id(p.run)], p.row[metric]) for p in points if p.row.get(metric) is not None])}
        if any(len(valued) > 1 for valued in lines.values()):  # one point per line is no history (separate
            panels.append((metric, title, lines))  # accuracy and FPS jobs), and a date axis of one day spans years
    if not panels:
        return None
    figure, axes_list = _figure(5.5 * len(panels), 4.5, columns=len(panels))
    for axes, (metric, title, lines) in zip(axes_list, panels):
        values = [v for valued in lines.values() for _, v in valued]
        for label, valued in lines.items():
            axes.plot([x for x, _ in valued], [v for _, v in valued], marker="o", label=label)
        if metric == "fps" and max(values) / max(min(values), 1e-9) > 20:
            axes.set_yscale("log")  # GPUs and CPUs on one axis
        if dated:
            axes.tick_params(axis="x", labelrotation=30, labelsize=8)
        else:
            axes.set_xticks(range(len(kind.runs)), [run.label for run in kind.runs], rotation=30, ha="right",
                            fontsize=8)
        axes.set_title(f"{title} over time, one line per device and precision", fontsize=10)
        axes.legend(fontsize=7)
    return _png(figure)
