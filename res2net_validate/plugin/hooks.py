"""pytest wiring only: options, markers, the header, parametrisation, collection and outputs.  What runs
lives in ``session`` (built in ``wiring``), what tests see in ``fixtures``, what is left behind in ``outputs``.

Installed, this module loads in every pytest session of the environment: where none of our options is set,
it imports nothing heavy and prints nothing until one of our tests is collected.
"""

from __future__ import annotations

import pytest

from .fixtures import *  # noqa: F401,F403 - registers the fixtures with pytest
from .wiring import (
    CHECKED_KEY,
    SESSION_KEY,
    SETTINGS_KEY,
    check_at_start,
    configured_preprocess,
    header_lines,
    is_controller_or_solo,
    options_given,
    session_of,
)

MARKERS = (
    "accuracy: Top-1/Top-5 asserted against the YAML thresholds",
    "performance: FPS recorded with pytest-benchmark",
    "gpu: needs a CUDA GPU (and TensorRT for the tensorrt backend)",
    "res2net_relative: a verdict against FP32 (not collected for fp32 itself)",
    "res2net_baseline: a verdict against --compare-baseline (collected only with it)",
)
# The accuracy tests that decide sampled verdicts, each deciding Top-1 and Top-5: the family --alpha is spent over.
VERDICT_TESTS = ("test_top1_top5_meet_thresholds", "test_drop_vs_fp32_within_allowance",
                 "test_no_regression_vs_baseline")


def pytest_addoption(parser):
    from ..settings import add_options

    add_options(parser)


def pytest_addhooks(pluginmanager):
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_configure(config):
    from ..errors import ValidateError
    from ..settings import misplaced_rootdir, resolve
    from .outputs import ResultCollector, benchmark_json_into_report_dir

    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # xdist worker: pin one GPU before anything touches CUDA
        from ..backends.devices import assign_gpu_for_worker, visible_gpus

        assign_gpu_for_worker(workerinput["workerid"], visible_gpus())
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    problem = misplaced_rootdir(config.invocation_params.dir, config.inipath, config.rootpath,
                                config.invocation_params.args)
    if problem:
        raise pytest.UsageError(problem)
    try:
        settings = resolve(config)
    except ValidateError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    if options_given(settings):
        check_at_start(config)  # otherwise once our tests are collected (quiet where the plugin is unused)
    if is_controller_or_solo(config):
        benchmark_json_into_report_dir(config, settings.report_dir)
    config.pluginmanager.register(ResultCollector(config, settings), "res2net-results")


def pytest_unconfigure(config):
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def pytest_report_header(config):
    if config.stash.get(CHECKED_KEY, False):
        return header_lines(config)
    return None


def pytest_report_collectionfinish(config, items):
    """The header of a run whose options are all defaults, printed once our tests turned out to be collected."""
    if config.stash.get(SESSION_KEY, None) is not None and not options_given(config.stash[SETTINGS_KEY]):
        return header_lines(config)
    return None


def pytest_generate_tests(metafunc):
    # Only our tests: another project's own `precision` fixture is left alone.
    names = metafunc.fixturenames
    if "precision" in names and any(name.startswith("res2net_") for name in names):
        metafunc.parametrize("precision", metafunc.config.stash[SETTINGS_KEY].precision)


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: only the verdicts this run decides share alpha
def pytest_collection_modifyitems(config, items):
    """Verdicts that cannot apply are deselected, not skipped: FP32 against itself, and baseline
    comparisons without a baseline.  Then the run's verdicts are counted."""
    ours = [item for item in items if any(name.startswith("res2net_") for name in getattr(item, "fixturenames", ()))]
    if not ours:
        return
    check_at_start(config)
    settings = config.stash[SETTINGS_KEY]
    keep, drop = [], []
    for item in items:
        precision = _precision_of(item)
        if (item.get_closest_marker("res2net_relative") and precision == "fp32") or (
                item.get_closest_marker("res2net_baseline") and settings.compare_baseline is None):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    session = session_of(config)
    session.verdicts_in_run = _accuracy_verdicts(session, items)


def _accuracy_verdicts(session, items) -> int:
    """How many accuracy verdicts this run decides, counted from the collected items (the same on every
    xdist worker), leaving out relative gates without an allowance, which skip; a test that skips for
    another reason only makes the control conservative.  The thresholds file is read only when a
    relative gate was collected."""
    from ..errors import ValidateError

    def no_allowance(precision):
        try:
            return session.inputs.thresholds().drop_allowance(precision) is None
        except ValidateError:
            return False  # the tests report the file's problem; count the verdict meanwhile

    count = sum(2 for item in items if getattr(item, "originalname", item.name) in VERDICT_TESTS
                and not (item.get_closest_marker("res2net_relative") and no_allowance(_precision_of(item))))
    return max(count, 1)


def _precision_of(item):
    return getattr(getattr(item, "callspec", None), "params", {}).get("precision")


def pytest_collection_finish(session):
    """A --compare-baseline on other data or preprocessing is a usage error before any scoring (hours on
    ImageNet), not a failure after it; the res2net_baseline fixture still checks (under xdist, overrides)."""
    from ..errors import ValidateError

    config = session.config
    run = config.stash.get(SESSION_KEY, None)
    # Not on an xdist worker: a UsageError there is an INTERNALERROR that hides the message (the
    # controller collects nothing), so workers leave the check to the res2net_baseline fixture.
    if (not is_controller_or_solo(config) or run is None or run.settings.compare_baseline is None
            or config.option.collectonly or run.inputs.configured.skip_reason
            or not any(item.get_closest_marker("res2net_baseline") for item in session.items)):
        return
    try:
        run.identity.check_baseline_comparable(configured_preprocess(config))
    except ValidateError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        from dataclasses import asdict

        from .. import __version__
        from ..backends.devices import device_report

        report = device_report()
        machine_info["res2net_validate"] = {"version": __version__, "backend": session.settings.backend}
        machine_info["gpu"] = [asdict(gpu) for gpu in report.gpus]
        machine_info["tensorrt"] = getattr(report, "tensorrt", None)
