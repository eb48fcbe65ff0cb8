"""Accuracy verdicts of each selected precision (``pytest -m accuracy``).

* against the thresholds file's floors (a sampled run fails only when confident the population
  is below the floor);
* against FP32 on the same images (``max_drop_vs_fp32``, an exact paired test);
* against a saved baseline (``--compare-baseline``, the same paired test on the images both scored).

Each verdict is shown, not shown or missed; the run's sampled verdicts share ``--alpha``.
"""

import pytest

from res2net_validate.verdicts import check_baseline, check_drop, check_floor


@pytest.mark.accuracy
def test_top1_top5_meet_thresholds(request, precision, res2net_session, res2net_thresholds, res2net_check):
    target = res2net_thresholds.accuracy_for(precision)
    if target is None and not res2net_session.settings.allow_untargeted:
        pytest.fail(f"{res2net_thresholds.path} has no accuracy target for {precision}: add accuracy.{precision} "
                    "to it, or pass --allow-untargeted to measure it without a gate", pytrace=False)
    result = request.getfixturevalue("res2net_accuracy")  # scored only once a target is known
    if target is None:
        return  # measured and reported (--allow-untargeted)
    population = res2net_session.population()
    res2net_check(precision, result.backend, [
        check_floor(precision, "top1", result.correct_top1, result.images, population, target.top1,
                    res2net_check.multiplicity),
        check_floor(precision, "top5", result.correct_top5, result.images, population, target.top5,
                    res2net_check.multiplicity),
    ], where=f" ({result.device}), thresholds {res2net_thresholds.path}")


@pytest.mark.accuracy
@pytest.mark.res2net_relative
def test_drop_vs_fp32_within_allowance(request, precision, res2net_session, res2net_thresholds, res2net_check):
    allowance = res2net_thresholds.drop_allowance(precision)
    if allowance is None:
        pytest.skip(f"{res2net_thresholds.path} sets no max_drop_vs_fp32.{precision}")
    reference = request.getfixturevalue("res2net_reference")
    candidate = request.getfixturevalue("res2net_predictions")
    result = request.getfixturevalue("res2net_accuracy")
    population = res2net_session.population()
    res2net_check(precision, result.backend, [
        check_drop(precision, metric, reference.correct(metric), candidate.correct(metric), population,
                   getattr(allowance, metric), res2net_check.multiplicity, candidate.labels, _class_names())
        for metric in ("top1", "top5")
    ], where=f" ({result.device}), thresholds {res2net_thresholds.path}")


@pytest.mark.accuracy
@pytest.mark.res2net_baseline
def test_no_regression_vs_baseline(precision, res2net_session, res2net_baseline, res2net_predictions, res2net_accuracy,
                                   res2net_check):
    from res2net_validate.errors import ValidateError
    from res2net_validate.predictions import against_baseline

    try:
        baseline, tonight = against_baseline(res2net_baseline.predictions(precision), res2net_predictions,
                                             f"--compare-baseline {res2net_baseline.path}")
    except ValidateError as exc:
        pytest.fail(str(exc), pytrace=False)
    allowance = res2net_session.settings.baseline_allowance
    res2net_check(precision, res2net_accuracy.backend, [
        check_baseline(precision, metric, baseline.correct(metric), tonight.correct(metric), tonight.names,
                       tonight.labels, res2net_session.population(), allowance, res2net_check.multiplicity,
                       _class_names(), scored=len(res2net_predictions.names))
        for metric in ("top1", "top5")
    ], where=f" ({res2net_accuracy.device}), baseline {res2net_baseline.path} of {res2net_baseline.created}")


def _class_names():
    from res2net_validate.imagenet import canonical_wnids

    return canonical_wnids()
