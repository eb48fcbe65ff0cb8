"""Fixtures the acceptance tests use.  Each is session-scoped and lazy, and each can be
overridden in a conftest.py (e.g. ``res2net_calibration_images`` to calibrate on other data).
"""

from __future__ import annotations

import pytest

from ..errors import BackendUnavailable, NotConfigured, ValidateError
from .records import AccuracyRecord, Report, ResultRecord, VerdictRecord
from ..session import ValidationSession

SESSION_KEY = pytest.StashKey[ValidationSession]()


def _or_fail(build, *args):
    """``build(*args)``, turning a user error into a failure with its one-line message.

    The failure is raised outside the ``except`` block so pytest shows no exception chain.
    """
    try:
        return build(*args)
    except ValidateError as exc:
        outcome, message = pytest.fail, str(exc)
    except (BackendUnavailable, NotConfigured) as exc:
        outcome, message = pytest.skip, str(exc)
    if outcome is pytest.fail:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def res2net_session(request) -> ValidationSession:
    return request.config.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def res2net_source(res2net_session):
    source = res2net_session.configured_source()
    if source.skip_reason:
        pytest.skip(source.skip_reason)
    return _or_fail(res2net_session.source)


@pytest.fixture(scope="session")
def res2net_thresholds(res2net_session, res2net_source):
    return _or_fail(res2net_session.thresholds)


def configured_preprocess(config, settings):
    """The run's Preprocess: --preprocess, then the pytest_res2net_validate_preprocess hook's replacement."""
    from ..data.preprocess import Preprocess

    preprocess = Preprocess(method=settings.preprocess)
    return config.hook.pytest_res2net_validate_preprocess(config=config, preprocess=preprocess) or preprocess


@pytest.fixture(scope="session")
def res2net_preprocess(request, res2net_session):
    return configured_preprocess(request.config, res2net_session.settings)


@pytest.fixture(scope="session")
def res2net_scored_images(res2net_session, res2net_source, res2net_preprocess):
    return _or_fail(res2net_session.scored_images, res2net_preprocess)


@pytest.fixture(scope="session")
def res2net_calibration_images(res2net_session, res2net_source, res2net_preprocess):
    """uint8 NCHW images INT8 is calibrated on (``loader.PreprocessedImages``); None when INT8 is not selected."""
    if "int8" not in res2net_session.settings.precision:
        return None
    return _or_fail(res2net_session.calibration_images, res2net_preprocess)


@pytest.fixture(scope="session")
def res2net_artifacts(res2net_session, res2net_source, res2net_calibration_images, res2net_preprocess):
    return _or_fail(res2net_session.artifacts, res2net_calibration_images, res2net_preprocess)


@pytest.fixture
def res2net_runner(res2net_session, res2net_artifacts, precision):
    return _or_fail(res2net_session.runner, precision, res2net_artifacts)


def _scored(session, precision, artifacts, images, preprocess):
    return _or_fail(session.accuracy, precision, artifacts, images, preprocess)


@pytest.fixture
def res2net_accuracy(request, res2net_session, res2net_artifacts, res2net_scored_images, res2net_preprocess,
                     precision):
    """The AccuracyResult for ``precision``; also recorded for the closing table."""
    scored = _scored(res2net_session, precision, res2net_artifacts, res2net_scored_images, res2net_preprocess)
    result = scored.result
    settings = res2net_session.settings
    run = _or_fail(res2net_session.identity, res2net_preprocess)
    notes = (res2net_session.notes(res2net_artifacts) + _fidelity_notes(precision, result.fidelity)
             + _skipped_notes(res2net_scored_images))
    baseline = None
    if settings.save_baseline is not None:
        from ..predictions import baseline_entry

        baseline = baseline_entry(scored.predictions, res2net_session.model_sha256(precision, res2net_artifacts),
                                  result.backend, result.device)
    record = AccuracyRecord(precision, result.backend, settings.batch_size, result.top1, result.top5, result.images,
                            result.device, run, seconds=result.seconds, skipped_images=result.skipped,
                            fidelity=result.fidelity or None, notes=tuple(notes), baseline=baseline)
    record_result(request, record)
    return result


@pytest.fixture
def res2net_predictions(res2net_session, res2net_accuracy, res2net_artifacts, res2net_scored_images,
                        res2net_preprocess, precision):
    """Per-image top-5 predictions of ``precision`` (``predictions.Predictions``)."""
    return _scored(res2net_session, precision, res2net_artifacts, res2net_scored_images,
                   res2net_preprocess).predictions


@pytest.fixture
def res2net_reference(res2net_session, res2net_artifacts, res2net_scored_images, res2net_preprocess):
    """FP32 predictions on the same images: the reference of the relative gates."""
    return _or_fail(res2net_session.reference, res2net_artifacts, res2net_scored_images, res2net_preprocess)


@pytest.fixture(scope="session")
def res2net_baseline(res2net_session, res2net_source, res2net_preprocess):
    """The ``--compare-baseline`` file, checked to be comparable with this run."""
    if res2net_session.settings.compare_baseline is None:
        pytest.skip("no baseline: pass --compare-baseline=FILE (saved by a run with --save-baseline=FILE)")
    _or_fail(res2net_session.check_baseline_comparable, res2net_preprocess)
    return res2net_session.baseline()


@pytest.fixture
def res2net_check(request, res2net_session):
    """Runs verdicts (``verdicts.check_*``), records them for the report and fails on any that fail."""
    from ..verdicts import Multiplicity

    settings = res2net_session.settings
    return VerdictChecker(request, Multiplicity(settings.alpha, res2net_session.verdicts_in_run,
                                                settings.require_shown))


class VerdictChecker:
    """One place where verdicts become test outcomes: every check is recorded, then asserted."""

    def __init__(self, request, multiplicity):
        self.request = request
        self.multiplicity = multiplicity  # verdicts.Multiplicity: the run's alpha, spent over its verdicts

    def __call__(self, precision: str, backend: str, verdicts, where: str = "") -> list:
        verdicts = list(verdicts)
        record_result(self.request, VerdictRecord(precision, backend, tuple(verdicts)))
        for verdict in verdicts:  # each verdict's sentence, for CI test views (numbers: record_result)
            self.request.node.user_properties.append((f"res2net_{verdict.kind}_{verdict.metric}", verdict.message))
        failed = [v.message for v in verdicts if not v.passed]
        if failed:
            pytest.fail(f"{precision} on {backend}{where}: " + "\n".join(failed), pytrace=False)
        return verdicts


JUNIT_PROPERTIES = ("top1", "top5", "fps", "images")


def record_result(request, record: ResultRecord | dict) -> None:
    """Attach a result (an AccuracyRecord, PerformanceRecord or VerdictRecord, or its dict) to the test
    report; the controller's report collects it (xdist-safe).

    The numbers also go flat beside it, as junitxml writes each (name, value) as a <property>."""
    if isinstance(record, ResultRecord):
        record = record.as_dict()
    request.node.user_properties.append((Report.PROPERTY, record))
    request.node.user_properties.extend(
        (name, round(record[name], 2) if isinstance(record[name], float) else record[name])
        for name in JUNIT_PROPERTIES if record.get(name) is not None)
    for verdict in record.get("verdicts", ()):
        interval = verdict.get("interval")
        if interval and None not in interval and verdict.get("metric"):
            # top1_interval for the floor's interval; others name their kind (top1_relative_to_fp32_interval)
            kind = "" if verdict.get("kind") == "absolute" else f"_{verdict.get('kind')}"
            request.node.user_properties.append(
                (f"{verdict['metric']}{kind}_interval", f"[{interval[0]:.2f}, {interval[1]:.2f}]"))


def _fidelity_notes(precision: str, fidelity: dict) -> list[str]:
    if not fidelity:
        return []
    logits = (f", mean logit cosine {fidelity['mean_cosine']:.5f}, mean KL {fidelity['mean_kl']:.3g}"
              if "mean_cosine" in fidelity else " (logit cosine/KL need fp32 scored in this run)")
    lost = ", ".join(f"{c['label']} -{c['lost']}/+{c['gained']}" for c in fidelity.get("classes_lost", [])[:3])
    return [f"{precision} vs fp32 on the same {fidelity['images']} images: top-1 agreement "
            f"{fidelity['top1_agreement']:.2f}%{logits}" + (f"; classes that lost most: {lost}" if lost else "")]


def _skipped_notes(images) -> list[str]:
    skipped = tuple(getattr(images, "skipped", ()))
    if not skipped:
        return []
    return [f"WARNING: {len(skipped)} undecodable images skipped and counted as wrong (--skip-bad-images): "
            + ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")]
