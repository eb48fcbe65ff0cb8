"""Fixtures the acceptance tests use: each hands one part of the session to the tests, turning a
user error into a failure and a "cannot run here" into a skip.  Session-scoped ones are lazy, and each
can be overridden in a conftest.py (e.g. ``res2net_calibration_images`` to calibrate on other data).

Nothing heavy is imported at module level: the plugin loads in every pytest session of an environment.
"""

from __future__ import annotations

import pytest

from ..errors import NotConfigured, ValidateError
from .wiring import configured_preprocess, session_of


def _or_fail(build, *args):
    """``build(*args)``, turning a user error into a failure with its one-line message.

    The outcome is raised outside the ``except`` block so pytest shows no exception chain.
    """
    try:
        return build(*args)
    except ValidateError as exc:
        outcome, message = pytest.fail, str(exc)
    except NotConfigured as exc:
        outcome, message = pytest.skip, str(exc)
    if outcome is pytest.fail:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def res2net_session(request):
    """The run's ``session.ValidationSession``."""
    return session_of(request.config)


@pytest.fixture(scope="session")
def res2net_source(res2net_session):
    configured = res2net_session.inputs.configured
    if configured.skip_reason:
        pytest.skip(configured.skip_reason)
    return _or_fail(res2net_session.inputs.source)


@pytest.fixture(scope="session")
def res2net_thresholds(res2net_session, res2net_source):
    return _or_fail(res2net_session.inputs.thresholds)


@pytest.fixture(scope="session")
def res2net_preprocess(request, res2net_session):
    return configured_preprocess(request.config)


@pytest.fixture(scope="session")
def res2net_scored_images(res2net_session, res2net_source, res2net_preprocess):
    return _or_fail(res2net_session.inputs.scored_images, res2net_preprocess)


@pytest.fixture(scope="session")
def res2net_calibration_images(res2net_session, res2net_source, res2net_preprocess):
    """uint8 NCHW images INT8 is calibrated on (``data.image_cache.PreprocessedImages``); None when INT8 is
    not selected or has no calibration images (then the INT8 runner skips, saying why)."""
    if "int8" not in res2net_session.settings.precision or not res2net_session.capabilities.calibrate():
        return None
    return _or_fail(res2net_session.inputs.calibration_images, res2net_preprocess)


@pytest.fixture(scope="session")
def res2net_artifacts(res2net_session, res2net_source, res2net_calibration_images, res2net_preprocess):
    return _or_fail(res2net_session.pipeline.artifacts, res2net_calibration_images, res2net_preprocess)


@pytest.fixture
def res2net_runner(res2net_session, res2net_artifacts, precision):
    return _or_fail(res2net_session.pipeline.runner, precision, res2net_artifacts)


@pytest.fixture
def res2net_accuracy(res2net_session, res2net_recorder, res2net_artifacts, res2net_scored_images, res2net_preprocess,
                     precision):
    """The AccuracyResult for ``precision``; also recorded for the closing table."""
    scored = _or_fail(res2net_session.pipeline.accuracy, precision, res2net_artifacts, res2net_scored_images,
                      res2net_preprocess)
    _or_fail(res2net_recorder.accuracy, res2net_session, precision, scored, res2net_artifacts,
             res2net_scored_images, res2net_preprocess)
    return scored.result


@pytest.fixture
def res2net_predictions(res2net_session, res2net_accuracy, res2net_artifacts, res2net_scored_images,
                        res2net_preprocess, precision):
    """Per-image top-5 predictions of ``precision`` (``predictions.Predictions``)."""
    return _or_fail(res2net_session.pipeline.accuracy, precision, res2net_artifacts, res2net_scored_images,
                    res2net_preprocess).predictions


@pytest.fixture
def res2net_reference(res2net_session, res2net_artifacts, res2net_scored_images, res2net_preprocess):
    """FP32 predictions on the same images: the reference of the relative gates."""
    return _or_fail(res2net_session.pipeline.reference, res2net_artifacts, res2net_scored_images, res2net_preprocess)


@pytest.fixture(scope="session")
def res2net_baseline(res2net_session, res2net_source, res2net_preprocess):
    """The ``--compare-baseline`` file, checked to be comparable with this run."""
    if res2net_session.settings.compare_baseline is None:
        pytest.skip("no baseline: pass --compare-baseline=FILE (saved by a run with --save-baseline=FILE)")
    _or_fail(res2net_session.identity.check_baseline_comparable, res2net_preprocess)
    return res2net_session.identity.baseline()


@pytest.fixture
def res2net_recorder(request):
    """Records results (``recorder.Recorder``) for the closing table, the results JSON and junitxml."""
    from .recorder import Recorder

    return Recorder(request)


@pytest.fixture
def res2net_check(res2net_session, res2net_recorder):
    """Decides verdicts (``checker.VerdictChecker``: floor, drop, baseline, fps, precision), records
    them and fails the test on any that fail."""
    from .checker import VerdictChecker

    return VerdictChecker(res2net_session, res2net_recorder)


def record_result(request, record) -> None:
    """Attach a result record (``records``' typed records, or their dicts) to the running test's report, for
    tests of your own; ours record through the ``res2net_recorder`` fixture (the same ``Recorder``)."""
    from .recorder import Recorder

    Recorder(request).record(record)
