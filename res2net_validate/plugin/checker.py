"""One checker with a verb per kind of verdict.  Each verb gathers what its verdict needs from the run
(thresholds, population, the run's share of --alpha), asks ``verdicts`` to decide, records the
verdicts, and fails the test on any that fail."""

from __future__ import annotations

import pytest

from .. import verdicts as decide
from ..errors import ValidateError


class VerdictChecker:
    def __init__(self, session, recorder):
        self.session = session
        self.recorder = recorder
        settings = session.settings
        self.multiplicity = decide.Multiplicity(settings.alpha, session.verdicts_in_run, settings.require_shown)

    @property
    def thresholds(self):
        return self.session.inputs.thresholds()

    def accuracy_target(self, precision: str):
        """``precision``'s floors; a missing one fails the test unless --allow-untargeted (then None)."""
        target = self.thresholds.accuracy_for(precision)
        if target is None and not self.session.settings.allow_untargeted:
            pytest.fail(f"{self.thresholds.path} has no accuracy target for {precision}: add accuracy.{precision} "
                        "to it, or pass --allow-untargeted to measure it without a gate", pytrace=False)
        return target

    def floor(self, precision: str, result, target) -> list:
        population = self.session.inputs.population()
        return self._settle(precision, result.backend, [
            decide.check_floor(precision, metric, getattr(result, f"correct_{metric}"), result.images, population,
                               getattr(target, metric), self.multiplicity)
            for metric in ("top1", "top5")
        ], f" ({result.device}), thresholds {self.thresholds.path}")

    def drop(self, precision: str, reference, candidate, result, allowance) -> list:
        population = self.session.inputs.population()
        return self._settle(precision, result.backend, [
            decide.check_drop(precision, metric, reference.correct(metric), candidate.correct(metric), population,
                              getattr(allowance, metric), self.multiplicity, candidate.labels, _class_names())
            for metric in ("top1", "top5")
        ], f" ({result.device}), thresholds {self.thresholds.path}")

    def baseline(self, precision: str, baseline, predictions, result) -> list:
        from ..predictions import against_baseline

        try:
            before, tonight = against_baseline(baseline.predictions(precision), predictions,
                                               f"--compare-baseline {baseline.path}")
        except ValidateError as exc:
            pytest.fail(str(exc), pytrace=False)
        population, allowance = self.session.inputs.population(), self.session.settings.baseline_allowance
        return self._settle(precision, result.backend, [
            decide.check_baseline(precision, metric, before.correct(metric), tonight.correct(metric), tonight.names,
                                  tonight.labels, population, allowance, self.multiplicity, _class_names(),
                                  scored=len(predictions.names))
            for metric in ("top1", "top5")
        ], f" ({result.device}), baseline {baseline.path} of {baseline.created}")

    def fps(self, precision: str, fps: float, info, batch_size: int, artifacts) -> list:
        """Records the FPS, then checks it against the device's floor."""
        self.recorder.performance(self.session, precision, fps, info, batch_size, artifacts)
        thresholds = self.thresholds
        device_key, minimum = thresholds.fps_floor(precision, info.device) or (None, None)
        return self._settle(precision, info.backend, [
            decide.check_fps(precision, fps, minimum, device_key, batch_size, thresholds.batch_size,
                             str(thresholds.path))])

    def precision(self, runner) -> list:
        return self._settle(runner.info.precision, runner.info.backend, [decide.check_precision(runner.precision_proof())])

    def _settle(self, precision: str, backend: str, verdicts: list, where: str = "") -> list:
        self.recorder.verdicts(precision, backend, verdicts)
        failed = [verdict.message for verdict in verdicts if not verdict.passed]
        if failed:
            pytest.fail(f"{precision} on {backend}{where}: " + "\n".join(failed), pytrace=False)
        return verdicts


def _class_names():
    from ..data.labels import canonical_wnids

    return canonical_wnids()
