"""Seeded simulations of the verdicts' error rates: what the README's tables and
``tests/unit/test_verdict_statistics.py`` both run.

Subsets are drawn without replacement from finite populations whose every null hypothesis sits
exactly at its boundary (accuracy at the floor, drop at the allowance), and each is decided by the
same decisions the verdicts make (``stats.floor_fails``, ``stats.paired_drop_fails``; the tests check
that these agree with ``floor_test`` and ``paired_drop_test``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from res2net_validate import stats

POPULATION = 49_500  # the 50,000 val images less the 500 that calibrate INT8


def noise(rate: float, subsets: int) -> float:
    """Three standard errors of a rate estimated from ``subsets`` draws."""
    return 3 * float(np.sqrt(rate * (1 - rate) / subsets))


def with_count(size: int, count: int, rng) -> np.ndarray:
    """A correctness vector of ``size`` images, ``count`` of them right, at seeded random places."""
    vector = np.zeros(size, bool)
    vector[rng.choice(size, count, replace=False)] = True
    return vector


def _flipped(reference: np.ndarray, lost: int, gained: int, rng) -> np.ndarray:
    """``reference`` with ``lost`` right answers turned wrong and ``gained`` wrong ones turned right."""
    candidate = reference.copy()
    candidate[rng.choice(np.flatnonzero(reference), lost, replace=False)] = False
    candidate[rng.choice(np.flatnonzero(~reference), gained, replace=False)] = True
    return candidate


@dataclass(frozen=True)
class Gate:
    """One verdict of the nightly: a floor (``reference`` None) or a paired gate."""
    name: str
    candidate: np.ndarray
    floor: float | None = None
    reference: np.ndarray | None = None
    allowance: float | None = None


def nightly_at_the_boundary(rng, population: int = POPULATION) -> list[Gate]:
    """The 12 sampled verdicts of ``--precision fp16,int8 --compare-baseline``: for FP16 and INT8, Top-1
    and Top-5 each, a floor, a drop vs FP32 and a drop vs last night, every one exactly at its boundary
    (the floor is the population's accuracy, the drop is the allowance)."""
    gates = []
    for metric, fp32_accuracy, discordance in (("top1", 0.7858, 0.04), ("top5", 0.9420, 0.02)):
        fp32 = with_count(population, round(fp32_accuracy * population), rng)
        for precision, allowance in (("fp16", 0.10), ("int8", 0.78 if metric == "top1" else 0.50)):
            drop = stats.count_at_most(allowance, population)
            flips = round(discordance * population)
            flips += (flips - drop) % 2
            tonight = _flipped(fp32, (flips + drop) // 2, (flips - drop) // 2, rng)
            floor = 100.0 * int(tonight.sum()) / population
            assert stats.count_at_least(floor, population) == tonight.sum()  # at the boundary
            churn = round(0.005 * population)  # last night: the same accuracy, 1% of images flipped
            last_night = _flipped(tonight, churn, churn, rng)
            gates += [Gate(f"{precision} {metric} floor", tonight, floor=floor),
                      Gate(f"{precision} {metric} vs fp32", tonight, reference=fp32, allowance=allowance),
                      Gate(f"{precision} {metric} vs baseline", tonight, reference=last_night, allowance=0.0)]
    return gates


def run_fails(gates: list[Gate], images: int, alpha: float, verdicts: int, subsets: int, rng,
              population: int = POPULATION) -> float:
    """The share of runs in which any gate fails, each decided at ``alpha / verdicts`` (Bonferroni)."""
    level = alpha / verdicts

    @lru_cache(maxsize=None)
    def floor_fails(correct: int, floor: float) -> bool:
        return stats.floor_fails(correct, images, population, floor, level)

    @lru_cache(maxsize=None)
    def drop_fails(lost: int, gained: int, allowance: float) -> bool:
        return stats.paired_drop_fails(lost, gained, images, population, allowance, level)

    # Rows 2i and 2i+1 hold gate i's candidate and reference (a floor: its candidate twice), so a subset
    # is one fancy-index of the matrix.
    matrix = np.stack([row for gate in gates for row in (gate.candidate, gate.candidate if gate.reference is None
                                                          else gate.reference)])

    def fails(gate: Gate, candidate: np.ndarray, reference: np.ndarray) -> bool:
        if gate.reference is None:
            return floor_fails(int(candidate.sum()), gate.floor)
        return drop_fails(int((reference & ~candidate).sum()), int((candidate & ~reference).sum()), gate.allowance)

    failed_runs = 0
    for _ in range(subsets):
        chosen = matrix[:, rng.choice(population, images, replace=False)]
        failed_runs += any(fails(gate, chosen[2 * i], chosen[2 * i + 1]) for i, gate in enumerate(gates))
    return failed_runs / subsets


def paired_outcomes(lost_total: int, gained_total: int, images: int, subsets: int, rng,
                    population: int = POPULATION) -> np.ndarray:
    """(lost, gained) of ``subsets`` samples of ``images`` from a population holding that many lost and
    gained images: exactly the law of scoring a random subset."""
    colours = np.array([lost_total, gained_total, population - lost_total - gained_total])
    return rng.multivariate_hypergeometric(colours, images, size=subsets)[:, :2]


def paired_rate(lost_total: int, gained_total: int, images: int, allowance: float, alpha: float, subsets: int, rng,
                population: int = POPULATION) -> float:
    """How often the paired gate fails on such a population."""
    @lru_cache(maxsize=None)
    def fails(lost: int, gained: int) -> bool:
        return stats.paired_drop_fails(lost, gained, images, population, allowance, alpha)

    outcomes = paired_outcomes(lost_total, gained_total, images, subsets, rng, population)
    return float(np.mean([fails(int(lost), int(gained)) for lost, gained in outcomes]))


def null_population(discordance: float, allowance: float, population: int = POPULATION) -> tuple[int, int]:
    """(lost, gained) totals with ``discordance`` of the images flipped and the drop exactly at the allowance."""
    return power_population(discordance, allowance, 0.0, population)


def printed_detectable(discordance: float, images: int, allowance: float, alpha: float,
                       population: int = POPULATION) -> float | None:
    """The detectable excess a verdict prints when ``discordance`` of its images disagree."""
    flips = max(round(discordance * images), 1)
    return stats.paired_drop_test(flips // 2, flips - flips // 2, images, population, allowance, alpha).detectable


def power_population(discordance: float, allowance: float, excess_points: float,
                     population: int = POPULATION) -> tuple[int, int]:
    """(lost, gained) totals with the drop at allowance + excess and the same discordance."""
    drop = stats.count_at_most(allowance, population) + round(excess_points / 100 * population)
    flips = max(round(discordance * population), drop)
    flips += (flips - drop) % 2
    return (flips + drop) // 2, (flips - drop) // 2
