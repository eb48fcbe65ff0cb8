"""Accuracy verdicts of each selected precision (``pytest -m accuracy``).

* against the thresholds file's floors (a sampled run fails only when confident the population
  is below the floor);
* against FP32 on the same images (``max_drop_vs_fp32``, an exact paired test);
* against a saved baseline (``--compare-baseline``, the same paired test on the images both scored).

Each verdict is shown, not shown or missed; the run's sampled verdicts share ``--alpha``.
"""

import pytest


@pytest.mark.accuracy
def test_top1_top5_meet_thresholds(request, precision, res2net_thresholds, res2net_check):
    target = res2net_check.accuracy_target(precision)
    result = request.getfixturevalue("res2net_accuracy")  # scored only once a target is known
    if target is not None:  # None: measured and reported without a gate (--allow-untargeted)
        res2net_check.floor(precision, result, target)


@pytest.mark.accuracy
@pytest.mark.res2net_relative
def test_drop_vs_fp32_within_allowance(request, precision, res2net_thresholds, res2net_check):
    allowance = res2net_thresholds.drop_allowance(precision)
    if allowance is None:
        pytest.skip(f"{res2net_thresholds.path} sets no max_drop_vs_fp32.{precision}")
    reference = request.getfixturevalue("res2net_reference")
    candidate = request.getfixturevalue("res2net_predictions")
    result = request.getfixturevalue("res2net_accuracy")
    res2net_check.drop(precision, reference, candidate, result, allowance)


@pytest.mark.accuracy
@pytest.mark.res2net_baseline
def test_no_regression_vs_baseline(precision, res2net_baseline, res2net_predictions, res2net_accuracy, res2net_check):
    res2net_check.baseline(precision, res2net_baseline, res2net_predictions, res2net_accuracy)
