"""pytest wiring: options, the report header, test parametrisation, the closing table.

The work itself lives in ``session.py`` (what runs) and ``fixtures.py`` (what tests see).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager, nullcontext

from pathlib import Path

import pytest

from .. import __version__
from ..errors import ValidateError
from .fixtures import SESSION_KEY, configured_preprocess
from .fixtures import *  # noqa: F401,F403 - registers the fixtures with pytest
from ..settings import OPTIONS, add_options, resolve
from .records import Report, json_path_beside
from ..session import ValidationSession


def pytest_addoption(parser):
    add_options(parser)


def pytest_addhooks(pluginmanager):
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_configure(config):
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # xdist worker: pin one GPU before anything touches CUDA
        from ..backends.devices import assign_gpu_for_worker, visible_gpus

        assign_gpu_for_worker(workerinput["workerid"], visible_gpus())
    for line in (
        "accuracy: Top-1/Top-5 asserted against the YAML thresholds",
        "performance: FPS recorded with pytest-benchmark",
        "gpu: needs a CUDA GPU (and TensorRT for the tensorrt backend)",
        "res2net_relative: a verdict against FP32 (not collected for fp32 itself)",
        "res2net_baseline: a verdict against --compare-baseline (collected only with it)",
    ):
        config.addinivalue_line("markers", line)
    _refuse_misplaced_rootdir(config)
    try:
        settings = resolve(config)
        session = ValidationSession(settings, progress=_is_controller_or_solo(config),
                                    live_output=lambda: _live_output(config))
        session.check_paths()
        benchmark_json = getattr(config.option, "benchmark_json", None)
        if benchmark_json is not None and not hasattr(benchmark_json, "write"):
            from ..session import check_output_file

            check_output_file(Path(benchmark_json), f"--benchmark-json {benchmark_json}")
        session.check_batch_size()
        if not session.configured_source().skip_reason:
            session.thresholds()  # a malformed file fails now, not after minutes of work
        session.check_backend()  # an explicit backend that cannot run a precision must not skip to green
        session.check_dataset()  # a folder without a layout, or too few images, before any export
        if settings.compare_baseline is not None:
            session.baseline()  # likewise an unreadable baseline
    except ValidateError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    _benchmark_json_into_report_dir(config, settings.report_dir)
    config.pluginmanager.register(ResultCollector(config, Report()), "res2net-results")


def pytest_unconfigure(config):
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def pytest_report_header(config):
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return None
    settings = session.settings
    lines = [f"res2net_validate {__version__}: {session.configured_source().describe()}"]
    described = [f"{o.cli[2:]}={settings.describe(o.name)}" + _resolved_backend(session, o.name) for o in OPTIONS
                 if settings.values[o.name] is not None or o.name in ("weights", "dataset_dir")]
    for start in range(0, len(described), 4):
        lines.append("  " + "  ".join(described[start:start + 4]))
    lines.append(f"  thresholds file: {session.thresholds_path()}")
    from ..backends.devices import report_header_lines

    lines.extend(report_header_lines())
    return lines


def pytest_generate_tests(metafunc):
    # Only our tests: another project's own `precision` fixture is left alone.
    names = metafunc.fixturenames
    if "precision" in names and any(name.startswith("res2net_") for name in names):
        session = metafunc.config.stash[SESSION_KEY]
        metafunc.parametrize("precision", session.settings.precision)


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: only the verdicts this run decides share alpha
def pytest_collection_modifyitems(config, items):
    """Verdicts that cannot apply are deselected, not skipped: FP32 against itself, and baseline
    comparisons without a baseline."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    keep, drop = [], []
    for item in items:
        precision = getattr(getattr(item, "callspec", None), "params", {}).get("precision")
        if (item.get_closest_marker("res2net_relative") and precision == "fp32") or (
                item.get_closest_marker("res2net_baseline") and session.settings.compare_baseline is None):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    session.verdicts_in_run = _accuracy_verdicts(session, items)


# The accuracy tests that decide sampled verdicts, each deciding Top-1 and Top-5.
_VERDICT_TESTS = ("test_top1_top5_meet_thresholds", "test_drop_vs_fp32_within_allowance",
                  "test_no_regression_vs_baseline")


def _accuracy_verdicts(session, items) -> int:
    """How many accuracy verdicts this run decides: the family --alpha is spent over.  Counted from the
    collected items (the same on every xdist worker), leaving out relative gates without an allowance,
    which skip; a test that skips for another reason only makes the control conservative.  The
    thresholds file is read only when a relative gate was collected (a run without our tests reads nothing)."""
    count = 0
    for item in items:
        if getattr(item, "originalname", item.name) not in _VERDICT_TESTS:
            continue
        precision = getattr(getattr(item, "callspec", None), "params", {}).get("precision")
        if item.get_closest_marker("res2net_relative") and _no_allowance(session, precision):
            continue
        count += 2
    return max(count, 1)


def _no_allowance(session, precision: str) -> bool:
    try:
        return session.thresholds().drop_allowance(precision) is None
    except ValidateError:
        return False  # the tests report the file's problem; count the verdict meanwhile


def pytest_collection_finish(session):
    """A --compare-baseline on other data or preprocessing is a usage error before any scoring (hours on
    ImageNet), not a failure after it; the res2net_baseline fixture still checks (under xdist, overrides)."""
    config = session.config
    run = config.stash.get(SESSION_KEY, None)
    # Not on an xdist worker: a UsageError there is an INTERNALERROR that hides the message (the
    # controller collects nothing), so workers leave the check to the res2net_baseline fixture.
    if (not _is_controller_or_solo(config) or run is None or run.settings.compare_baseline is None
            or config.option.collectonly
            or run.configured_source().skip_reason
            or not any(item.get_closest_marker("res2net_baseline") for item in session.items)):
        return
    try:
        run.check_baseline_comparable(configured_preprocess(config, run.settings))
    except ValidateError as exc:
        raise pytest.UsageError(str(exc)) from None


class ResultCollector:
    """Gathers results from test reports, so xdist workers' results reach the controller."""

    def __init__(self, config, report: Report):
        self.config = config
        self.report = report

    def pytest_runtest_logreport(self, report):
        for name, value in report.user_properties:
            if name == Report.PROPERTY and report.when == "call":
                self.report.add(value)

    def pytest_terminal_summary(self, terminalreporter):
        if not self.report.rows:
            if self.config.stash[SESSION_KEY].settings.report_dir is not None:
                terminalreporter.write_line("report: no results in this run, so no report written")
            return
        terminalreporter.section("res2net_validate")
        terminalreporter.write_line(self.report.table())
        for line in self.report.verdict_lines():
            terminalreporter.write_line(line)
        for note in self.report.notes:
            terminalreporter.write_line(f"note: {note}")
        settings = self.config.stash[SESSION_KEY].settings
        self.report.run.update(_machine_and_settings(settings))
        if settings.save_baseline is not None and self.report.baseline_entries:
            from ..predictions import write_baseline

            write_baseline(settings.save_baseline, self.report.run, self.report.baseline_entries)
            terminalreporter.write_line(f"baseline ({', '.join(self.report.baseline_entries)}): "
                                        f"{settings.save_baseline}")
        target = settings.report_json
        benchmark_json = getattr(self.config.option, "benchmark_json", None)
        if target is None and benchmark_json:
            # pytest-benchmark hands over a path or an open file, depending on its version
            target = json_path_beside(getattr(benchmark_json, "name", None) if hasattr(benchmark_json, "write")
                                      else benchmark_json)
        report_dir = settings.report_dir
        if target is None and report_dir is not None:
            target = report_dir / "results.json"
        if target is not None:
            self.report.write_json(target)
            terminalreporter.write_line(f"results JSON: {target}")
        if report_dir is not None:
            _write_merged_report(terminalreporter, target, self.config.option, report_dir)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        from dataclasses import asdict

        from ..backends.devices import device_report

        report = device_report()
        machine_info["res2net_validate"] = {"version": __version__, "backend": session.settings.backend}
        machine_info["gpu"] = [asdict(gpu) for gpu in report.gpus]
        machine_info["tensorrt"] = getattr(report, "tensorrt", None)


def _machine_and_settings(settings) -> dict:
    import socket
    from datetime import datetime, timezone

    from ..backends.devices import cpu_description

    return {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": socket.gethostname(),
            "cpu": cpu_description(), "alpha": settings.alpha, "batch_size": settings.batch_size,
            "backend": settings.backend, "precisions": list(settings.precision),
            "num_images": settings.num_images, "subset_seed": settings.subset_seed,
            "require_shown": settings.require_shown}


def _benchmark_json_into_report_dir(config, report_dir) -> None:
    """--report-dir wants the benchmark rounds: ask pytest-benchmark (configured after us) for its JSON there."""
    if (report_dir is not None and _is_controller_or_solo(config) and hasattr(config.option, "benchmark_json")
            and not config.option.benchmark_json):
        report_dir.mkdir(parents=True, exist_ok=True)  # pytest-benchmark does not create folders
        config.option.benchmark_json = report_dir / "benchmark.json"


def _write_merged_report(terminalreporter, results_json, option, report_dir) -> None:
    from ..reports import write_report

    benchmark_json = getattr(option, "benchmark_json", None)
    if hasattr(benchmark_json, "write"):  # a path or an open file, depending on pytest-benchmark's version
        benchmark_json = benchmark_json.name
    benchmarks = [benchmark_json] if benchmark_json and os.path.isfile(benchmark_json) else []
    try:
        written = write_report([results_json], benchmarks, report_dir)
    except ValidateError as exc:
        terminalreporter.write_line(f"report: not written: {exc}")
        return
    terminalreporter.write_line(f"report: {written.markdown}")
    terminalreporter.write_line(f"report: {written.html}" if written.html else written.skipped)


def _resolved_backend(session, option_name: str) -> str:
    if option_name != "backend" or session.settings.backend != "auto":
        return ""
    return f" -> {session.backend().name}"


def _refuse_misplaced_rootdir(config) -> None:
    """pytest picks its rootdir before plugins load, so the value in ``--weights /x/w.pth``
    counts as a test path and can move the rootdir away from our pytest.ini."""
    local_ini = config.invocation_params.dir / "pytest.ini"
    if local_ini.is_file() and config.inipath != local_ini:
        spaced = _spaced_path_options([a for a in config.invocation_params.args if isinstance(a, str)],
                                      config.invocation_params.dir)
        raise pytest.UsageError(
            f"pytest chose rootdir {config.rootpath} and ignored {local_ini}, because an option value looked like "
            f"a test path. Write the value with '=': " + ", ".join(f"{a}=VALUE" for a in spaced or ["--weights"])
            + " (or set it in the environment)."
        )


def _spaced_path_options(args: list[str], invocation_dir: Path) -> list[str]:
    """Our options written ``--name VALUE`` whose VALUE pytest could have taken for a test path: only
    options that take a value (``--embedded=1`` is an error), and only values that look like a path."""
    valued = {o.cli for o in OPTIONS if not o.flag}
    spaced = []
    for option, value in zip(args, args[1:] + [""]):
        if option in valued and value and not value.startswith("-") and (
                os.sep in value or "/" in value or (invocation_dir / value).exists()):
            spaced.append(option)
    return spaced


def _is_controller_or_solo(config) -> bool:
    return not hasattr(config, "workerinput")


@contextmanager
def _live_output(config):
    """Let progress bars reach the terminal while pytest captures output."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        sys.stderr.write("\n")
        yield
