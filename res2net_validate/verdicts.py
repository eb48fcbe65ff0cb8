"""Verdicts: one ``check_*`` per kind of acceptance decision, all decided the same way.

Every check returns a :class:`Verdict` that carries its inputs (images, population, alpha, the
test, its raw and adjusted p-values and one-sided bounds), so the results JSON can show why a run
passed, and a message that reads on its own.  Each accuracy verdict ends in one of three states:
*shown* (confident the target is met, or exactly met), *not shown* (neither: passes unless
``--require-shown``) and *missed* (confident it is missed: fails).  Sampled verdicts of a run are
decided together at ``alpha`` (:class:`Multiplicity`); runs that score the whole population are exact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import stats

METRICS = {"top1": "Top-1", "top5": "Top-5"}
MAX_LISTED_FLIPS = 20  # images named in a failure message; the JSON has all of them


SHOWN, NOT_SHOWN, MISSED = "shown", "not shown", "missed"  # a verdict's state


@dataclass(frozen=True)
class Multiplicity:
    """Per-run error control: ``alpha`` bounds the chance that a run meeting every target fails any
    sampled verdict.  Bonferroni over the ``verdicts`` sampled verdicts the run collected, so each
    test decides alone (in any order, in any xdist worker) at ``alpha / verdicts``; it holds under
    any dependence between the verdicts (they share images)."""
    alpha: float
    verdicts: int = 1
    require_shown: bool = False  # a "not shown" verdict fails too (a release gate)

    @property
    def level(self) -> float:
        return self.alpha / max(self.verdicts, 1)

    def adjusted(self, p_value: float) -> float:
        return min(1.0, p_value * max(self.verdicts, 1))

    def describe(self, p_value: float) -> str:
        if self.verdicts <= 1:
            return f"p={p_value:.3g}"
        return (f"p={p_value:.3g} raw, {self.adjusted(p_value):.3g} adjusted for the run's {self.verdicts} sampled "
                f"verdicts (Bonferroni)")


@dataclass
class Verdict:
    kind: str  # absolute | relative_to_fp32 | baseline | precision | fps
    precision: str
    metric: str  # top1 | top5 | fps | precision
    passed: bool
    message: str
    measured: float | None = None
    threshold: float | None = None
    images: int | None = None
    population: int | None = None
    alpha: float | None = None
    test: str = ""
    p_value: float | None = None  # raw
    interval: tuple[float, float] | None = None  # one-sided (1 - level) lower and upper bounds
    detectable_shortfall: float | None = None
    state: str | None = None  # shown | not shown | missed (accuracy verdicts)
    p_adjusted: float | None = None
    level: float | None = None  # the level each bound and decision is at: alpha / verdicts in the run
    verdicts_in_run: int | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        record = {name: getattr(self, name) for name in (
            "kind", "precision", "metric", "measured", "interval", "threshold", "images", "population", "alpha",
            "test", "p_value", "p_adjusted", "level", "verdicts_in_run", "state", "passed", "detectable_shortfall",
            "message")}
        if record["interval"] is not None:
            record["interval"] = [round(v, 4) for v in record["interval"]]
        return {**record, **self.details}


def _shown_as(value: float, threshold: float, holds: bool, relation) -> str:
    """``value`` with as few decimals (2 to 6) as keep ``relation(value, threshold)`` as decided: a
    bound printed as 77.92 must not seem to meet a floor of 77.92 it misses."""
    for decimals in range(2, 7):
        text = f"{value:.{decimals}f}"
        if relation(float(text), threshold) == holds:
            return text
    return repr(value)


def _images(count: int) -> str:
    return f"{count} image" + ("" if count == 1 else "s")


def _detectable_text(points: float | None, what: str) -> str:
    if points is None:
        return f"no {what} is detectable with this many images"
    return f"detects a {what} of {points:.2f} points with power {stats.POWER:.0%}"


def _state(result: stats.TestResult) -> str:
    return MISSED if result.failed else SHOWN if result.shown else NOT_SHOWN


def _passes(state: str, multiplicity: Multiplicity) -> bool:
    return state == SHOWN or (state == NOT_SHOWN and not multiplicity.require_shown)


def _state_text(state: str, multiplicity: Multiplicity, what_missed: str, what_shown: str) -> str:
    if state == MISSED:
        return f"MISSED - {what_missed}"
    if state == SHOWN:
        return f"shown - {what_shown}"
    return ("NOT SHOWN - neither bound excludes the threshold" + (" (--require-shown fails it)"
                                                                  if multiplicity.require_shown else
                                                                  "; passes by default"))


def _exact_test(population: int) -> str:
    return f"exact: all {population} images of the population scored"


def _decided(result: stats.TestResult, multiplicity: Multiplicity, population: int) -> dict:
    """The Verdict fields every accuracy check fills the same way from its test's result."""
    state = _state(result)
    return dict(passed=_passes(state, multiplicity), state=state, p_value=result.p_value,
                interval=(result.lower, result.upper), detectable_shortfall=result.detectable, population=population,
                alpha=multiplicity.alpha, p_adjusted=None if result.exact else multiplicity.adjusted(result.p_value),
                level=None if result.exact else multiplicity.level, verdicts_in_run=multiplicity.verdicts)


def check_floor(precision: str, metric: str, correct: int, images: int, population: int, floor: float,
                multiplicity: Multiplicity) -> Verdict:
    """Absolute floor: missed when confident the population accuracy is below ``floor`` (percent);
    shown when confident it is at or above it; exact (counts) when the whole population is scored."""
    result = stats.floor_test(correct, images, population, floor, multiplicity.level)
    decided = _decided(result, multiplicity, population)
    measured = 100.0 * correct / images
    name = METRICS[metric]
    if result.exact:
        test = _exact_test(population)
        message = (f"{name} {measured:.2f}% ({correct} of {population}) "
                   f"{'>=' if not result.failed else '<'} floor {floor:.2f}% "
                   f"({_images(stats.count_at_least(floor, population))}) on the whole population: "
                   f"{'MISSED' if result.failed else 'shown'}")
    else:
        test = "one-sided exact hypergeometric (sample of a finite population), Bonferroni over the run"
        confidence = f"{100 * (1 - multiplicity.level):.4g}%"
        upper = _shown_as(result.upper, floor, result.failed, lambda a, b: a < b)
        lower = _shown_as(result.lower, floor, result.shown, lambda a, b: a >= b)
        message = (f"{name} {measured:.2f}% on {images} of {population} images vs floor {floor:.2f}%: "
                   + _state_text(decided["state"], multiplicity, f"at most {upper}% (one-sided {confidence} bound)",
                                 f"at least {lower}% (one-sided {confidence} bound)")
                   + (f"; population {name} in [{lower}, {upper}] (each bound one-sided {confidence})"
                      if decided["state"] == NOT_SHOWN else "")
                   + f"; {multiplicity.describe(result.p_value)} vs alpha {multiplicity.alpha:g}"
                   + f"; {_detectable_text(result.detectable, 'shortfall')}")
    return Verdict("absolute", precision, metric, message=message, measured=measured, threshold=floor,
                   images=images, test=test, **decided)


PAIRED_TEST = ("exact unconditional test on (lost, gained): Tango's score statistic, its critical value the "
               "worst over every discordance the null allows (finite population), Bonferroni over the run")


def _paired_verdict(kind: str, against: str, precision: str, metric: str, reference_correct, candidate_correct,
                    population: int, allowance: float, multiplicity: Multiplicity):
    """The one algorithm behind the FP32 gate and the baseline gate: the exact paired test of the drop of
    ``candidate`` against ``reference`` on the same images.  Returns the verdict and the lost/gained masks."""
    reference_correct, candidate_correct = _paired(reference_correct, candidate_correct)
    lost_mask, gained_mask = reference_correct & ~candidate_correct, candidate_correct & ~reference_correct
    lost, gained, images = int(lost_mask.sum()), int(gained_mask.sum()), len(reference_correct)
    result = stats.paired_drop_test(lost, gained, images, population, allowance, multiplicity.level)
    decided = _decided(result, multiplicity, population)
    drop = 100.0 * (lost - gained) / images
    name = METRICS[metric]
    counts = f"{lost} images lost, {gained} gained of {images}"
    if result.exact:
        message = (f"{name} drop vs {against} {drop:+.2f} points ({counts}, the whole population) vs allowance "
                   f"{allowance:.2f} ({_images(stats.count_at_most(allowance, population))}): "
                   + ("MISSED - over the allowance" if result.failed else "shown - within the allowance"))
    else:
        confidence = f"{100 * (1 - multiplicity.level):.4g}%"
        lower = _shown_as(result.lower, allowance, result.failed, lambda a, b: a > b)
        upper = _shown_as(result.upper, allowance, result.shown, lambda a, b: a <= b)
        message = (f"{name} drop vs {against} {drop:+.2f} points ({counts} of a population of {population}) vs "
                   f"allowance {allowance:.2f}: "
                   + _state_text(decided["state"], multiplicity,
                                 f"the drop is at least {lower} points (one-sided {confidence} bound)",
                                 f"the drop is at most {upper} points (one-sided {confidence} bound)")
                   + (f"; population drop in [{lower}, {upper}] (each bound one-sided {confidence})"
                      if decided["state"] == NOT_SHOWN else "")
                   + f"; {multiplicity.describe(result.p_value)} vs alpha {multiplicity.alpha:g}"
                   + f"; {_detectable_text(result.detectable, 'drop beyond the allowance')}")
    verdict = Verdict(kind, precision, metric, message=message, measured=drop, threshold=allowance, images=images,
                      test=_exact_test(population) if result.exact else PAIRED_TEST,
                      details={"lost": lost, "gained": gained}, **decided)
    return verdict, lost_mask, gained_mask


def check_drop(precision: str, metric: str, reference_correct, candidate_correct, population: int,
               allowance: float, multiplicity: Multiplicity, labels=None, class_names=None) -> Verdict:
    """Relative gate: missed when confident the candidate loses more than ``allowance`` points against
    the FP32 reference scored on the same images (a paired test on per-image correctness)."""
    verdict, lost, gained = _paired_verdict("relative_to_fp32", "fp32", precision, metric, reference_correct,
                                            candidate_correct, population, allowance, multiplicity)
    if labels is not None:
        verdict.details["classes_lost"] = classes_lost(lost, gained, labels, class_names)
    return verdict


def check_baseline(precision: str, metric: str, baseline_correct, now_correct, names, labels, population: int,
                   allowance: float, multiplicity: Multiplicity, class_names=None, scored: int | None = None) -> Verdict:
    """Run vs run: the same paired test as the FP32 gate, against the baseline's predictions on the images
    both scored (``scored``: how many this run scored in all, printed beside the shared count).  Like the
    FP32 gate's, ``measured`` is the drop, in the units of its threshold (the allowance)."""
    verdict, worse, better = _paired_verdict("baseline", "baseline", precision, metric, baseline_correct,
                                             now_correct, population, allowance, multiplicity)
    flipped = [names[i] for i in np.flatnonzero(worse)]
    lost_classes = classes_lost(worse, better, labels, class_names)
    verdict.message = (f"{verdict.images} images shared with the baseline"
                       + (f" (of {scored} scored)" if scored is not None else "") + ": " + verdict.message)
    if verdict.state == MISSED:
        verdict.message += (". Right->wrong: " + ", ".join(flipped[:MAX_LISTED_FLIPS])
                            + (f" ... ({len(flipped)} in all, listed in the results JSON)"
                               if len(flipped) > MAX_LISTED_FLIPS else "")
                            + ". Classes that lost most: " + ", ".join(f"{c['label']} (-{c['lost']}/+{c['gained']})"
                                                                      for c in lost_classes[:5]))
    verdict.details.update({"shared_images": verdict.images, "scored_images": scored, "right_to_wrong": flipped,
                            "classes_lost": lost_classes})
    return verdict


def check_fps(precision: str, fps: float, floor: float | None, device_key: str | None, batch_size: int,
              thresholds_batch: int, where: str) -> Verdict:
    """FPS floor; floors hold only at the batch size the thresholds file was written for."""
    if floor is None:
        return Verdict("fps", precision, "fps", True, f"{fps:.2f} FPS at batch {batch_size}: no FPS floor for this "
                       f"device in {where}", measured=fps)
    if batch_size != thresholds_batch:
        return Verdict("fps", precision, "fps", True, f"{fps:.2f} FPS at batch {batch_size}: floor {floor:.2f} for "
                       f"{device_key} not applied - {where} sets floors at batch_size {thresholds_batch}",
                       measured=fps, details={"floor_not_applied": floor, "thresholds_batch_size": thresholds_batch})
    passed = fps >= floor
    return Verdict("fps", precision, "fps", passed, f"{fps:.2f} FPS at batch {batch_size} "
                   f"{'>=' if passed else '<'} floor {floor:.2f} for {device_key} in {where}", measured=fps,
                   threshold=floor, test="measured median round")


def check_precision(proof) -> Verdict:
    """Precision proof: what the runner executes is in the precision asked for."""
    if proof.proven:
        kinds = proof.summary.get("layer_precisions") or {}
        runs_in = f": {', '.join(f'{n} {kind}' for kind, n in kinds.items())}" if kinds else ""
        message = f"all {proof.layers} compute layers proven ({proof.checked}){runs_in}"
    elif proof.unproven:
        message = f"precision could not be proven ({proof.checked}): {proof.unproven}"
    else:
        message = (f"{len(proof.offending)} of {proof.layers} compute layers are not "
                   f"{proof.precision} ({proof.checked}): " + "; ".join(proof.offending[:MAX_LISTED_FLIPS])
                   + (" ..." if len(proof.offending) > MAX_LISTED_FLIPS else ""))
    return Verdict("precision", proof.precision, "precision", proof.proven, message,
                   test=proof.checked, details={"proof": proof.as_dict()})


def classes_lost(lost_mask, gained_mask, labels, class_names=None, limit: int = 10) -> list[dict]:
    """The classes with the most net images lost (lost minus gained), worst first."""
    labels = np.asarray(labels)
    lost = Counter(labels[np.asarray(lost_mask, bool)].tolist())
    gained = Counter(labels[np.asarray(gained_mask, bool)].tolist())
    ranked = sorted(lost, key=lambda c: (-(lost[c] - gained.get(c, 0)), -lost[c], c))
    return [{"class": int(c), "label": class_names[c] if class_names is not None else str(c), "lost": lost[c],
             "gained": gained.get(c, 0)} for c in ranked[:limit]]


def _paired(first, second) -> tuple[np.ndarray, np.ndarray]:
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    if first.shape != second.shape or first.ndim != 1 or not len(first):
        raise ValueError(f"paired verdicts need two equally long, non-empty correctness vectors "
                         f"({first.shape} vs {second.shape})")
    return first, second
