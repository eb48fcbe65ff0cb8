"""The statistics behind every accuracy verdict.

Scored images are a sample, drawn without replacement, of a finite population (the val images
that did not calibrate INT8, or the embedded default's scored set).  Every test below is exact for
that sampling, decides on integers, and reports the one-sided bounds it decides on:

* :func:`floor_test` -- is the population accuracy below a floor?  One-sided exact hypergeometric
  test; its ``upper`` bound is below the floor exactly when the run fails, its ``lower`` bound at or
  above the floor exactly when the floor is *shown* to be met.
* :func:`paired_drop_test` -- does a candidate lose more than an allowance against a reference
  scored on the same images (FP32, or a saved baseline)?  An exact unconditional test: Tango's
  score statistic orders the outcomes, and its critical value is the largest one over every
  population the null allows (every count of images on which the two disagree), computed from
  the exact multivariate hypergeometric law of (lost, gained).  Its size is at most alpha for any
  discordance, which Tango's normal approximation is not when few images disagree.

A run that scores the whole population has no sampling error: its decisions compare counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import special
from scipy import stats as _scipy

POWER = 0.8  # the power at which "detectable" shortfalls are quoted
_SPREAD = 8.0  # standard deviations of (lost, gained) each null law is tabulated over (tails < 1e-14)
_DENSE_DISCORDANCE = 100  # every allowed discordance up to this many images over the minimum, then ...
_DISCORDANCE_RATIO = 1.08  # ... a geometric grid up to the population, refined around the worst case


@dataclass(frozen=True)
class TestResult:
    p_value: float  # raw one-sided p-value (exact: 0 when failed, 1 when passed)
    lower: float  # one-sided 1-alpha lower bound (percent for floors, points of drop for paired tests)
    upper: float  # one-sided 1-alpha upper bound
    failed: bool  # confident the target is missed (exact: it is missed)
    shown: bool  # confident the target is met (exact: it is met)
    detectable: float | None  # points missed that this test catches with POWER; None: none this size is
    exact: bool  # the whole population was scored


def _decimal(value) -> Fraction:
    """The decimal a user wrote (0.35 -> 7/20), not its binary float, so counts are exact."""
    return Fraction(repr(float(value)))


def count_at_least(percent: float, population: int) -> int:
    """The fewest correct images of ``population`` that meet a floor of ``percent``."""
    return math.ceil(_decimal(percent) * population / 100)


def count_at_most(points: float, population: int) -> int:
    """The most images of ``population`` an allowance of ``points`` lets a candidate lose."""
    return math.floor(_decimal(points) * population / 100)


def _points(count: float, population: int) -> float:
    return 100.0 * count / population


def _check_sample(correct: int, images: int, population: int) -> None:
    if not 0 <= correct <= images <= population or images <= 0:
        raise ValueError(f"need 0 <= correct ({correct}) <= images ({images}) <= population ({population}), "
                         "images > 0")


# ---------------------------------------------------------------------------- absolute floors

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


def count_bounds(correct: int, images: int, population: int, alpha: float) -> tuple[int, int]:
    """One-sided 1-alpha bounds on the population's count of correct images (each one-sided: together
    a 1-2*alpha interval)."""
    smallest = correct  # the population holds at least the correct images seen...
    largest = population - (images - correct)  # ...and at least the wrong ones
    # P(X >= correct | K) grows with K: the lower bound is the first K where it exceeds alpha.
    if _hyper_sf(correct, population, smallest, images) > alpha:
        low = smallest
    else:
        low = _bisect(smallest, largest, lambda k: _hyper_sf(correct, population, k, images) <= alpha) + 1
    # P(X <= correct | K) falls with K: the upper bound is the last K where it exceeds alpha.
    high = _bisect(smallest, largest, lambda k: _hyper_cdf(correct, population, k, images) > alpha)
    return low, high


def floor_test(correct: int, images: int, population: int, floor_percent: float, alpha: float,
               power: float = POWER) -> TestResult:
    """H0: population accuracy >= floor; rejected (the run fails) only when p_value <= alpha."""
    _check_sample(correct, images, population)
    boundary = count_at_least(floor_percent, population)
    if images == population:
        missed = correct < boundary
        measured = _points(correct, population)
        return TestResult(0.0 if missed else 1.0, measured, measured, missed, not missed, 100.0 / population,
                          exact=True)
    p_value = _hyper_cdf(correct, population, boundary, images)
    low, high = count_bounds(correct, images, population, alpha)
    # Reject when X <= critical; the detectable shortfall is where that happens with ``power``.
    if _hyper_cdf(0, population, boundary, images) > alpha:
        detectable = None
    else:
        critical = _bisect(0, images, lambda k: _hyper_cdf(k, population, boundary, images) <= alpha)
        weakest = _bisect(0, boundary, lambda k: _hyper_cdf(critical, population, k, images) >= power)
        detectable = _points(boundary - weakest, population) if weakest < boundary else None
    failed = p_value <= alpha  # the same as high < boundary: P(X <= x | K) falls with K
    return TestResult(p_value, _points(low, population), _points(high, population), failed,
                      shown=low >= boundary, detectable=detectable, exact=False)


def floor_fails(correct: int, images: int, population: int, floor_percent: float, alpha: float) -> bool:
    """The decision of :func:`floor_test` alone (no bounds or power): what simulations call."""
    _check_sample(correct, images, population)
    boundary = count_at_least(floor_percent, population)
    if images == population:
        return correct < boundary
    return _hyper_cdf(correct, population, boundary, images) <= alpha


# ---------------------------------------------------------------------------- paired drops

@lru_cache(maxsize=4)
def _log_factorials(population: int) -> np.ndarray:
    return special.gammaln(np.arange(population + 2, dtype=np.float64) + 1.0)


def _log_choose(table: np.ndarray, n, k) -> np.ndarray:
    n, k = np.asarray(n), np.asarray(k)
    valid = (k >= 0) & (k <= n)
    nn, kk = np.where(valid, n, 0), np.where(valid, k, 0)
    return np.where(valid, table[nn] - table[kk] - table[nn - kk], -np.inf)


def tango_z(lost, gained, images: int, drop_count: int, population: int) -> np.ndarray:
    """Tango's score statistic for H0: population drop == drop_count/population, on arrays of
    (lost, gained) counts.  Without a finite-population factor: the exact test only uses it to order
    outcomes, and a constant factor would not change that order."""
    lost, gained = np.asarray(lost, np.float64), np.asarray(gained, np.float64)
    drop = drop_count / population
    a = 2.0 * images
    b = -lost - gained + (2.0 * images - lost + gained) * drop
    c = -gained * drop * (1.0 - drop)
    gained_rate = (np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0)) - b) / (2.0 * a)  # restricted MLE
    variance = images * (2.0 * gained_rate + drop * (1.0 - drop))
    numerator = lost - gained - images * drop
    with np.errstate(divide="ignore", invalid="ignore"):
        z = numerator / np.sqrt(variance)
    return np.where(variance > 0, z, np.where(numerator > 0, np.inf, np.where(numerator < 0, -np.inf, 0.0)))


def _null_law(discordant: int, drop_count: int, images: int, population: int):
    """(z, probability) of every likely (lost, gained) outcome when the population has ``discordant``
    images the two runs disagree on, ``drop_count`` more of them lost than gained."""
    lost_total, gained_total = (discordant + drop_count) // 2, (discordant - drop_count) // 2
    return _outcome_law(lost_total, gained_total, images, population, drop_count)


def _outcome_law(lost_total: int, gained_total: int, images: int, population: int, drop_count: int):
    """Exact multivariate hypergeometric law of the sample's (lost, gained), tabulated over
    +-_SPREAD standard deviations, with each outcome's Tango z at ``drop_count``."""
    discordant = lost_total + gained_total
    table = _log_factorials(population)
    share = discordant / population
    fpc = (population - images) / max(population - 1, 1)
    spread_t = math.sqrt(images * share * (1 - share) * fpc)
    t_low = max(0, images - (population - discordant), math.floor(images * share - _SPREAD * spread_t - 2))
    t_high = min(images, discordant, math.ceil(images * share + _SPREAD * spread_t + 2))
    t = np.arange(t_low, t_high + 1)
    lost_share = lost_total / discordant if discordant else 0.0
    spread_l = math.sqrt(max(t_high, 1) * lost_share * (1 - lost_share))
    l_low = max(0, math.floor(t_low * lost_share - _SPREAD * spread_l - 2))
    l_high = min(lost_total, math.ceil(t_high * lost_share + _SPREAD * spread_l + 2))
    lost = np.arange(l_low, l_high + 1)[None, :]
    t = t[:, None]
    gained = t - lost
    log_p = (_log_choose(table, lost_total, lost) + _log_choose(table, gained_total, gained)
             + _log_choose(table, population - discordant, images - t) - _log_choose(table, population, images))
    possible = np.isfinite(log_p) & (gained >= 0)
    probability = np.exp(log_p[possible])
    lost_b, gained_b = np.broadcast_to(lost, gained.shape)[possible], gained[possible]
    return tango_z(lost_b, gained_b, images, drop_count, population), probability


def _discordance_grid(drop_count: int, population: int) -> list[int]:
    """The population discordances the null allows (at least |drop|, same parity), on a grid."""
    smallest = abs(drop_count)
    grid = list(range(smallest, min(population, smallest + 2 * _DENSE_DISCORDANCE) + 1, 2))
    value = float(grid[-1])
    while True:
        value *= _DISCORDANCE_RATIO
        candidate = int(value)
        candidate -= (candidate - smallest) % 2
        if candidate > population:
            break
        if candidate > grid[-1]:
            grid.append(candidate)
    last = population - (population - smallest) % 2
    if last > grid[-1]:
        grid.append(last)
    return grid


def _tail_threshold(z: np.ndarray, probability: np.ndarray, alpha: float) -> float:
    """The largest z whose upper tail P(Z >= z) still exceeds alpha: rejecting z_obs > it has size <= alpha."""
    order = np.argsort(-z, kind="stable")
    tail = np.cumsum(probability[order])
    first = int(np.searchsorted(tail, alpha, side="right"))  # first index whose tail exceeds alpha
    return float(z[order][min(first, len(order) - 1)])


@lru_cache(maxsize=256)
def _worst_null(images: int, population: int, drop_count: int, alpha: float) -> tuple[tuple[int, ...], float]:
    """The discordances the null allows that the test examines (a grid, refined around the worst one) and
    the critical z: the largest of their laws' alpha thresholds.  A larger drop only raises the rejection
    rate, so the boundary drop_count is the worst case."""
    def threshold(discordant: int) -> float:
        return _tail_threshold(*_null_law(discordant, drop_count, images, population), alpha)

    grid = _discordance_grid(drop_count, population)
    values = [threshold(d) for d in grid]
    worst = int(np.argmax(values))
    # Between geometric grid points the law changes smoothly: search the neighbours of the worst point.
    low, high = grid[max(worst - 1, 0)], grid[min(worst + 1, len(grid) - 1)]
    step = max(2, ((high - low) // 24) // 2 * 2)
    refined = [d for d in range(low, high + 1, step) if d not in grid]
    values += [threshold(d) for d in refined]
    return tuple(grid + refined), max(values)


def critical_z(images: int, population: int, drop_count: int, alpha: float) -> float:
    """Reject H0 (population drop <= drop_count) when Tango's z exceeds this."""
    return _worst_null(images, population, drop_count, alpha)[1]


def _paired_p_value(lost: int, gained: int, images: int, population: int, drop_count: int, alpha: float) -> float:
    """sup of P(Z >= z_obs) over the same discordances the critical value at ``alpha`` examined, so that
    p <= alpha exactly when z_obs exceeds it."""
    z_obs = float(tango_z(lost, gained, images, drop_count, population))
    worst = 0.0
    for discordant in _worst_null(images, population, drop_count, alpha)[0]:
        z, probability = _null_law(discordant, drop_count, images, population)
        worst = max(worst, float(probability[z >= z_obs].sum()))
    return min(1.0, worst)


def _rejects(lost: int, gained: int, images: int, population: int, drop_count: int, alpha: float) -> bool:
    return float(tango_z(lost, gained, images, drop_count, population)) > critical_z(
        images, population, drop_count, alpha)


def paired_drop_fails(lost: int, gained: int, images: int, population: int, allowance_points: float,
                      alpha: float) -> bool:
    """The decision of :func:`paired_drop_test` alone (no p-value, bounds or power): what simulations call."""
    allowed = count_at_most(allowance_points, population)
    if images == population:
        return lost - gained > allowed
    return _rejects(lost, gained, images, population, allowed, alpha)


def _power(lost_total: int, gained_total: int, images: int, population: int, drop_count: int,
           alpha: float) -> float:
    z, probability = _outcome_law(lost_total, gained_total, images, population, drop_count)
    return float(probability[z > critical_z(images, population, drop_count, alpha)].sum())


def paired_drop_test(lost: int, gained: int, images: int, population: int, allowance_points: float,
                     alpha: float, power: float = POWER) -> TestResult:
    """H0: the candidate's population drop against the reference <= allowance.  ``lost``: images the
    reference gets right and the candidate wrong; ``gained``: the reverse.  Bounds and the
    detectable excess are in points of drop."""
    if lost < 0 or gained < 0 or lost + gained > images or not 0 < images <= population:
        raise ValueError(f"need lost ({lost}) + gained ({gained}) <= images ({images}) <= population ({population})")
    allowed = count_at_most(allowance_points, population)
    if images == population:  # the whole population: the measured drop is the drop, in whole images
        drop = lost - gained
        measured = _points(drop, population)
        return TestResult(0.0 if drop > allowed else 1.0, measured, measured, drop > allowed, drop <= allowed,
                          100.0 / population, exact=True)
    failed = _rejects(lost, gained, images, population, allowed, alpha)
    # "shown": the mirror test (gained vs lost) is confident the drop is at most the allowance.
    shown = _rejects(gained, lost, images, population, -(allowed + 1), alpha)
    lower = _drop_bound(lost, gained, images, population, alpha, allowed, side="lower")
    upper = _drop_bound(lost, gained, images, population, alpha, allowed, side="upper")
    return TestResult(_paired_p_value(lost, gained, images, population, allowed, alpha), _points(lower, population),
                      _points(upper, population), failed, shown,
                      _detectable_excess(lost + gained, images, population, allowed, alpha, power), exact=False)


def _drop_bound(lost: int, gained: int, images: int, population: int, alpha: float, allowed: int,
                side: str) -> int:
    """One-sided 1-alpha bound on the population's drop count: the margins whose z stays within the
    critical value the verdict was decided with (the one at the allowance, or its mirror), so at the
    allowance the bound and the verdict are the same comparison and can never disagree."""
    most = images - gained + (population - images)  # the population's drop is at most this
    least = -(images - lost + (population - images))
    if side == "lower":  # the smallest drop d whose z does not exceed the critical value
        critical = critical_z(images, population, allowed, alpha)
        above = _bisect(least, most, lambda d: float(tango_z(lost, gained, images, d, population)) > critical)
        return min(above + 1, most)
    critical = critical_z(images, population, -(allowed + 1), alpha)  # the mirror test's
    # the largest drop d whose mirror z does not exceed the mirror's critical value
    return _bisect(least, most, lambda d: float(tango_z(gained, lost, images, -d, population)) <= critical)


def _detectable_excess(discordant_seen: int, images: int, population: int, allowed: int, alpha: float,
                       power: float) -> float | None:
    """Points of drop beyond the allowance this test catches with ``power``, exactly, at the discordance
    seen (at least one image's worth) scaled to the population."""
    discordant = max(round(max(discordant_seen, 1) * population / images), abs(allowed) + 1)

    def caught(excess: int) -> bool:
        drop = allowed + excess
        spread = max(discordant, drop)
        spread += (spread - drop) % 2
        if spread > population:
            return False
        return _power((spread + drop) // 2, (spread - drop) // 2, images, population, allowed, alpha) >= power

    most = population - allowed
    if not caught(most):
        return None
    return _points(_bisect(0, most, lambda excess: not caught(excess)) + 1, population)
