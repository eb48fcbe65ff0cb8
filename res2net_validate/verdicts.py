"""Verdicts: one ``check_*`` per kind of acceptance decision, all decided the same way.

Every check returns a :class:`Verdict` that carries its inputs (images, population, alpha, the
test, its p-value and interval), so the results JSON can show why a run passed, and a message
that reads on its own when it fails.  Sampled runs fail only when the run is *confident* the
population misses the target (``stats``); runs that score the whole population are exact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import stats

METRICS = {"top1": "Top-1", "top5": "Top-5"}
MAX_LISTED_FLIPS = 20  # images named in a failure message; the JSON has all of them


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
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    detectable_shortfall: float | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        record = {name: getattr(self, name) for name in (
            "kind", "precision", "metric", "measured", "interval", "threshold", "images", "population", "alpha",
            "test", "p_value", "passed", "detectable_shortfall", "message")}
        if record["interval"] is not None:
            record["interval"] = [round(v, 4) for v in record["interval"]]
        return {**record, **self.details}


def _interval_text(interval) -> str:
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def _detectable_text(points: float | None, what: str) -> str:
    if points is None:
        return f"no {what} is detectable with this many images"
    return f"detects a {what} of {points:.2f} points with power {stats.POWER:.0%}"


def check_floor(precision: str, metric: str, correct: int, images: int, population: int, floor: float,
                alpha: float) -> Verdict:
    """Absolute floor: fail when confident the population accuracy is below ``floor`` (percent)."""
    result = stats.floor_test(correct, images, population, floor, alpha)
    measured = 100.0 * correct / images
    name = METRICS[metric]
    passed = result.p_value > alpha  # exact (all of the population): p is 1 or 0
    if result.exact:
        test = f"exact: all {population} images of the population scored"
        decision = f"{name} {measured:.2f}% {'>=' if passed else '<'} floor {floor:.2f}% on the full set"
    else:
        test = "one-sided exact hypergeometric (sample of a finite population)"
        decision = (f"{name} {measured:.2f}% (95% interval {_interval_text(result.interval)}) vs floor "
                    f"{floor:.2f}%: p={result.p_value:.3g} {'>' if passed else '<='} alpha {alpha:g} "
                    f"on {images} of {population} images")
        if not passed:
            decision += " - confident the population is below the floor"
    message = f"{decision}; {_detectable_text(result.detectable, 'shortfall')}"
    return Verdict("absolute", precision, metric, passed, message, measured=measured, threshold=floor,
                   images=images, population=population, alpha=alpha, test=test, p_value=result.p_value,
                   interval=result.interval, detectable_shortfall=result.detectable)


def check_drop(precision: str, metric: str, reference_correct, candidate_correct, population: int,
               allowance: float, alpha: float, labels=None, class_names=None) -> Verdict:
    """Relative gate: fail when confident the candidate loses more than ``allowance`` points against
    the FP32 reference scored on the same images (a paired test on per-image correctness)."""
    reference_correct, candidate_correct = _paired(reference_correct, candidate_correct)
    lost_mask = reference_correct & ~candidate_correct
    lost, gained, images = int(lost_mask.sum()), int((candidate_correct & ~reference_correct).sum()), len(
        reference_correct)
    result = stats.paired_drop_test(lost, gained, images, population, allowance, alpha)
    drop = 100.0 * (lost - gained) / images
    name = METRICS[metric]
    test = (f"exact: all {population} images of the population scored" if result.exact
            else "one-sided Tango score test for paired proportions, finite-population corrected")
    passed = result.p_value > alpha
    message = (f"{name} drop vs fp32 {drop:+.2f} points (95% interval {_interval_text(result.interval)}; "
               f"{lost} images lost, {gained} gained of {images}) vs allowance {allowance:.2f}: "
               + (f"p={result.p_value:.3g} {'>' if passed else '<='} alpha {alpha:g}" if not result.exact
                  else ("within" if passed else "over") + " the allowance on the full set")
               + ("" if passed else " - confident the drop exceeds the allowance")
               + f"; {_detectable_text(result.detectable, 'drop beyond the allowance')}")
    details = {"lost": lost, "gained": gained}
    if labels is not None:
        details["classes_lost"] = classes_lost(lost_mask, candidate_correct & ~reference_correct, labels, class_names)
    return Verdict("relative_to_fp32", precision, metric, passed, message, measured=drop, threshold=allowance,
                   images=images, population=population, alpha=alpha, test=test, p_value=result.p_value,
                   interval=result.interval, detectable_shortfall=result.detectable, details=details)


def check_baseline(precision: str, metric: str, baseline_correct, now_correct, names, labels, alpha: float,
                   class_names=None) -> Verdict:
    """Run vs run: fail when significantly more images went right -> wrong than wrong -> right."""
    baseline_correct, now_correct = _paired(baseline_correct, now_correct)
    worse = baseline_correct & ~now_correct
    better = now_correct & ~baseline_correct
    lost, gained, images = int(worse.sum()), int(better.sum()), len(now_correct)
    result = stats.mcnemar_test(lost, gained, images, alpha)
    change = 100.0 * (gained - lost) / images
    passed = result.p_value > alpha
    flipped = [names[i] for i in np.flatnonzero(worse)]
    lost_classes = classes_lost(worse, better, labels, class_names)
    name = METRICS[metric]
    message = (f"{name} vs baseline {change:+.2f} points on {images} images (95% interval "
               f"{_interval_text(result.interval)}): {lost} right->wrong, {gained} wrong->right, exact McNemar "
               f"p={result.p_value:.3g} {'>' if passed else '<='} alpha {alpha:g}; "
               f"{_detectable_text(result.detectable, 'regression')}")
    if not passed:
        message += (" - significantly worse. Right->wrong: " + ", ".join(flipped[:MAX_LISTED_FLIPS])
                    + (f" ... ({len(flipped)} in all, listed in the results JSON)" if len(flipped) > MAX_LISTED_FLIPS
                       else "")
                    + ". Classes that lost most: " + ", ".join(f"{c['label']} (-{c['lost']}/+{c['gained']})"
                                                              for c in lost_classes[:5]))
    return Verdict("baseline", precision, metric, passed, message, measured=change, threshold=0.0, images=images,
                   alpha=alpha, test="one-sided exact McNemar on the flipped images", p_value=result.p_value,
                   interval=result.interval, detectable_shortfall=result.detectable,
                   details={"lost": lost, "gained": gained, "right_to_wrong": flipped,
                            "classes_lost": lost_classes})


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
