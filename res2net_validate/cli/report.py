"""``res2net-validate report``: merge result files (workers, GPUs, CI jobs, nights) into one report."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..reports import DEFAULT_ACCURACY_TOLERANCE, DEFAULT_FPS_TOLERANCE


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="merge results JSONs (and pytest-benchmark JSONs) into report.md and a self-contained report.html",
        description="Merge any number of results JSONs (--report-json) and pytest-benchmark JSONs into DIR/report.md "
        "(Markdown, for a CI job summary) and DIR/report.html (one file, plots inline; needs the 'report' extra). "
        "Runs of different models, thresholds files or datasets get separate sections, never one table.",
    )
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json", help="results JSONs")
    parser.add_argument("--benchmark-json", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                        help="pytest-benchmark JSONs (--benchmark-json) for the latency plot")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where report.md and report.html go")
    parser.add_argument("--one-kind", action="store_true",
                        help="refuse (one error) rather than separate runs of different models/thresholds/datasets")
    parser.add_argument("--fps-tolerance", type=_tolerance, default=DEFAULT_FPS_TOLERANCE, metavar="PERCENT",
                        help=f"FPS drop below the best earlier run that counts as a regression "
                        f"(default {DEFAULT_FPS_TOLERANCE:g})")
    parser.add_argument("--accuracy-tolerance", type=_tolerance, default=DEFAULT_ACCURACY_TOLERANCE, metavar="POINTS",
                        help=f"Top-1/Top-5 drop below the best earlier run that counts as a regression "
                        f"(default {DEFAULT_ACCURACY_TOLERANCE:g})")
    parser.set_defaults(func=_run_cli)


def _tolerance(text: str) -> float:
    """argparse type: a finite number >= 0 (float() takes 'nan', which would switch regressions off)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number >= 0")
    return value


def _run_cli(args: argparse.Namespace) -> int:
    from ..reports import write_report

    written = write_report(args.results, args.benchmark_json, args.out, one_kind=args.one_kind,
                           fps_tolerance=args.fps_tolerance, accuracy_tolerance=args.accuracy_tolerance)
    for path in written.duplicates:
        print(f"report: {path} given more than once (same content): counted once")
    print(f"report: {written.markdown}")
    print(f"report: {written.html}" if written.html else written.skipped)
    return 0
