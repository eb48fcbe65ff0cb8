"""Top-1/Top-5 of each selected precision against the thresholds YAML (``pytest -m accuracy``)."""

import pytest


@pytest.mark.accuracy
def test_top1_top5_meet_thresholds(precision, res2net_accuracy, res2net_thresholds):
    target = res2net_thresholds.accuracy_for(precision)
    if target is None:
        pytest.skip(f"{res2net_thresholds.path} has no accuracy target for {precision}")
    result = res2net_accuracy
    where = (f"{precision} on {result.backend} ({result.device}), {result.images} images scored, "
             f"thresholds {res2net_thresholds.path}")
    shortfalls = [
        f"{name} {measured:.2f}% < threshold {floor:.2f}%"
        for name, measured, floor in (("Top-1", result.top1, target.top1), ("Top-5", result.top5, target.top5))
        if measured < floor
    ]
    assert not shortfalls, f"{where}: " + "; ".join(shortfalls)
