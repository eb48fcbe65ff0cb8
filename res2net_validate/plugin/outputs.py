"""What a run leaves behind: the closing table and verdicts in the terminal, the results JSON, the
baseline file and the merged report.  Results arrive through test reports, so xdist workers' results
reach the controller too."""

from __future__ import annotations

import os
from pathlib import Path

from ..constants import RESULT_PROPERTY


class ResultCollector:
    def __init__(self, config, settings):
        self.config = config
        self.settings = settings
        self.report = None  # records.Report, made on the first result

    def pytest_runtest_logreport(self, report):
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY and report.when == "call":
                if self.report is None:
                    from .records import Report

                    self.report = Report()
                self.report.add(value)

    def pytest_terminal_summary(self, terminalreporter):
        settings = self.settings
        if self.report is None or not self.report.rows:
            if settings.report_dir is not None:
                terminalreporter.write_line("report: no results in this run, so no report written")
            return
        report = self.report
        terminalreporter.section("res2net_validate")
        terminalreporter.write_line(report.table())
        for line in report.verdict_lines():
            terminalreporter.write_line(line)
        for note in report.notes:
            terminalreporter.write_line(f"note: {note}")
        report.run.update(machine_and_settings(settings))
        if settings.save_baseline is not None and report.baseline_entries:
            from ..predictions import write_baseline

            write_baseline(settings.save_baseline, report.run, report.baseline_entries)
            terminalreporter.write_line(f"baseline ({', '.join(report.baseline_entries)}): {settings.save_baseline}")
        target = results_json_path(settings, self.config.option)
        if target is not None:
            report.write_json(target)
            terminalreporter.write_line(f"results JSON: {target}")
        if settings.report_dir is not None:
            _write_merged_report(terminalreporter, target, self.config.option, settings.report_dir)


def results_json_path(settings, option) -> Path | None:
    """--report-json, else beside --benchmark-json, else in --report-dir."""
    from .records import json_path_beside

    if settings.report_json is not None:
        return settings.report_json
    benchmark_json = _benchmark_json_path(option)
    if benchmark_json:
        return json_path_beside(benchmark_json)
    if settings.report_dir is not None:
        return settings.report_dir / "results.json"
    return None


def benchmark_json_into_report_dir(config, report_dir) -> None:
    """--report-dir wants the benchmark rounds: ask pytest-benchmark (configured after us) for its JSON there."""
    if report_dir is not None and hasattr(config.option, "benchmark_json") and not config.option.benchmark_json:
        report_dir.mkdir(parents=True, exist_ok=True)  # pytest-benchmark does not create folders
        config.option.benchmark_json = report_dir / "benchmark.json"


def machine_and_settings(settings) -> dict:
    import socket
    from datetime import datetime, timezone

    from ..backends.devices import cpu_description

    return {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": socket.gethostname(),
            "cpu": cpu_description(), "alpha": settings.alpha, "batch_size": settings.batch_size,
            "backend": settings.backend, "precisions": list(settings.precision),
            "num_images": settings.num_images, "subset_seed": settings.subset_seed,
            "require_shown": settings.require_shown}


def _benchmark_json_path(option):
    # pytest-benchmark hands over a path or an open file, depending on its version
    benchmark_json = getattr(option, "benchmark_json", None)
    return benchmark_json.name if hasattr(benchmark_json, "write") else benchmark_json


def _write_merged_report(terminalreporter, results_json, option, report_dir) -> None:
    from ..errors import ValidateError
    from ..reports import write_report

    benchmark_json = _benchmark_json_path(option)
    benchmarks = [benchmark_json] if benchmark_json and os.path.isfile(benchmark_json) else []
    try:
        written = write_report([results_json], benchmarks, report_dir)
    except ValidateError as exc:
        terminalreporter.write_line(f"report: not written: {exc}")
        return
    terminalreporter.write_line(f"report: {written.markdown}")
    terminalreporter.write_line(f"report: {written.html}" if written.html else written.skipped)
