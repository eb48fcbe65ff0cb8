"""The statistics behind every accuracy verdict.

Scored images are a sample, drawn without replacement, of a finite population (the 50,000 ImageNet
val images, or the embedded default's generated set).  So the number of correct answers is
hypergeometric, not binomial: the exact tests and intervals below carry the finite-population
correction by construction, and a run that scores the whole population is decided exactly.

* :func:`floor_test` -- is the population accuracy below a floor?  One-sided exact hypergeometric
  test, the exact two-sided interval (Clopper-Pearson's construction for sampling without
  replacement) and the smallest shortfall this many images detect with the requested power.
* :func:`paired_drop_test` -- does a candidate lose more than an allowance against a reference
  scored on the same images?  Tango's score test for a difference of paired proportions, with the
  finite-population correction on its variance.
* :func:`mcnemar_test` -- did the flips between two runs on the same images go significantly one
  way?  Exact (binomial) McNemar, one-sided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _scipy

POWER = 0.8  # the power at which "detectable" shortfalls are quoted
INTERVAL_LEVEL = 0.95  # two-sided confidence of every reported interval


@dataclass(frozen=True)
class TestResult:
    p_value: float
    interval: tuple[float, float]  # two-sided INTERVAL_LEVEL, in percent (points for differences)
    detectable: float | None  # points; None when no result of this size can be significant
    exact: bool  # True when the whole population was scored: no sampling error at all


def _points(count: float, population: int) -> float:
    return 100.0 * count / population


# ---------------------------------------------------------------------------- absolute floors

def floor_count(floor_percent: float, population: int) -> int:
    """The fewest correct images in the population that meet ``floor_percent``."""
    return math.ceil(floor_percent / 100.0 * population - 1e-9)


def _hyper_cdf(k: int, population: int, correct_in_population: int, drawn: int) -> float:
    return float(_scipy.hypergeom.cdf(k, population, correct_in_population, drawn))


def _hyper_sf(k: int, population: int, correct_in_population: int, drawn: int) -> float:
    """P(X >= k)."""
    return float(_scipy.hypergeom.sf(k - 1, population, correct_in_population, drawn))


def _bisect(low: int, high: int, good) -> int:
    """Largest value in [low, high] where the monotone predicate ``good`` holds (it holds at ``low``)."""
    while low < high:
        middle = (low + high + 1) // 2
        if good(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _hypergeometric_interval(correct: int, images: int, population: int) -> tuple[float, float]:
    tail = (1.0 - INTERVAL_LEVEL) / 2.0
    smallest = correct  # the population holds at least the correct images seen...
    largest = population - (images - correct)  # ...and at least the wrong ones
    # P(X >= correct | K) grows with K: the interval starts at the first K where it exceeds the tail.
    if _hyper_sf(correct, population, smallest, images) > tail:
        low = smallest
    else:
        low = _bisect(smallest, largest, lambda k: _hyper_sf(correct, population, k, images) <= tail) + 1
    # P(X <= correct | K) falls with K: the interval ends at the last K where it exceeds the tail.
    high = _bisect(smallest, largest, lambda k: _hyper_cdf(correct, population, k, images) > tail)
    return _points(low, population), _points(high, population)


def floor_test(correct: int, images: int, population: int, floor_percent: float, alpha: float,
               power: float = POWER) -> TestResult:
    """H0: population accuracy >= floor; rejected (the run fails) only when p_value <= alpha."""
    _check_sample(correct, images, population)
    boundary = floor_count(floor_percent, population)
    p_value = _hyper_cdf(correct, population, boundary, images)
    # Reject when X <= critical; the detectable shortfall is where that happens with ``power``.
    if _hyper_cdf(0, population, boundary, images) > alpha:
        detectable = None
    else:
        critical = _bisect(0, images, lambda k: _hyper_cdf(k, population, boundary, images) <= alpha)
        weakest = _bisect(0, boundary, lambda k: _hyper_cdf(critical, population, k, images) >= power)
        detectable = _points(boundary - weakest, population) if weakest < boundary else None
    return TestResult(p_value, _hypergeometric_interval(correct, images, population), detectable,
                      exact=images == population)


def _check_sample(correct: int, images: int, population: int) -> None:
    if not 0 <= correct <= images <= population or images <= 0:
        raise ValueError(f"need 0 <= correct ({correct}) <= images ({images}) <= population ({population}), "
                         "images > 0")


# ---------------------------------------------------------------------------- paired drops

def _fpc(images: int, population: int) -> float:
    return (population - images) / (population - 1) if population > 1 else 0.0


def _tango_z(lost: int, gained: int, images: int, drop: float, fpc: float) -> float:
    """Tango's score statistic for H0: p(lost) - p(gained) == drop (fractions)."""
    a = 2.0 * images
    b = -lost - gained + (2.0 * images - lost + gained) * drop
    c = -gained * drop * (1.0 - drop)
    gained_rate = (math.sqrt(max(b * b - 4.0 * a * c, 0.0)) - b) / (2.0 * a)  # restricted MLE of p(gained)
    variance = images * (2.0 * gained_rate + drop * (1.0 - drop)) * fpc
    numerator = lost - gained - images * drop
    if variance <= 0.0:
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / math.sqrt(variance)


def _solve_drop(lost: int, gained: int, images: int, fpc: float, z: float) -> float:
    """The drop at which Tango's statistic equals ``z`` (it falls as the drop grows)."""
    low, high = -1.0 + 1e-12, 1.0 - 1e-12
    for _ in range(80):
        middle = (low + high) / 2.0
        if _tango_z(lost, gained, images, middle, fpc) > z:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def paired_drop_test(lost: int, gained: int, images: int, population: int, allowance_points: float,
                     alpha: float, power: float = POWER) -> TestResult:
    """H0: the candidate's population accuracy drop vs the reference <= allowance; the run fails
    only when p_value <= alpha.  ``lost``: images the reference gets right and the candidate wrong;
    ``gained``: the reverse.  The interval and detectable excess are in points of drop."""
    if lost < 0 or gained < 0 or lost + gained > images or not 0 < images <= population:
        raise ValueError(f"need lost ({lost}) + gained ({gained}) <= images ({images}) <= population ({population})")
    allowance = allowance_points / 100.0
    fpc = _fpc(images, population)
    if fpc == 0.0:  # the whole population: the measured drop is the drop
        drop = (lost - gained) / images
        return TestResult(0.0 if drop > allowance else 1.0, (100 * drop, 100 * drop), 100.0 / population, exact=True)
    z = _tango_z(lost, gained, images, allowance, fpc)
    p_value = float(_scipy.norm.sf(z))
    z_half = float(_scipy.norm.ppf(1 - (1 - INTERVAL_LEVEL) / 2))
    interval = (100 * _solve_drop(lost, gained, images, fpc, z_half),
                100 * _solve_drop(lost, gained, images, fpc, -z_half))
    return TestResult(p_value, interval, _detectable_change(lost, gained, images, fpc, alpha, power), exact=False)


def _detectable_change(lost: int, gained: int, images: int, fpc: float, alpha: float, power: float) -> float:
    """Points of net right -> wrong change found with probability ``power``: a normal approximation
    at the discordance seen (at least one image's worth)."""
    discordance = max(lost + gained, 1) / images
    spread = math.sqrt(discordance * fpc / images)
    return 100 * (float(_scipy.norm.ppf(1 - alpha)) + float(_scipy.norm.ppf(power))) * spread


# ---------------------------------------------------------------------------- run vs run

def mcnemar_test(lost: int, gained: int, images: int, alpha: float, power: float = POWER) -> TestResult:
    """Exact one-sided McNemar: is ``lost`` (right -> wrong) significantly more than ``gained``?
    The interval is Tango's for the accuracy change in points (negative: worse)."""
    flips = lost + gained
    p_value = float(_scipy.binom.sf(lost - 1, flips, 0.5)) if flips else 1.0
    z_half = float(_scipy.norm.ppf(1 - (1 - INTERVAL_LEVEL) / 2))
    interval = (-100 * _solve_drop(lost, gained, images, 1.0, -z_half),
                -100 * _solve_drop(lost, gained, images, 1.0, z_half))
    return TestResult(p_value, interval, _detectable_change(lost, gained, images, 1.0, alpha, power), exact=False)
