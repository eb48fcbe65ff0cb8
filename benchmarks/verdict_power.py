"""How many images a nightly subset needs: the verdicts' false-alarm and detection rates, simulated.

For each subset size, SUBSETS subsets are drawn without replacement from a 50,000-entry
correctness vector whose accuracy sits exactly on the floor (false alarms), 0.22 points above it
(a healthy model: timm's 78.14 against the card's 77.92), and at the floor minus the detectable
shortfall the verdict prints (detections).  Every subset is decided by ``verdicts.check_floor``.

    python benchmarks/verdict_power.py [--floor 77.92] [--subsets 2000] [--sizes 1000,5000,10000]
"""

import argparse
from functools import lru_cache

import numpy as np

from res2net_validate import stats
from res2net_validate.verdicts import check_floor

POPULATION = 50_000


def rate(vector, images, subsets, rng, decide) -> float:
    return float(np.mean([decide(int(vector[rng.choice(POPULATION, images, replace=False)].sum()))
                          for _ in range(subsets)]))


def population(correct, rng):
    vector = np.zeros(POPULATION, bool)
    vector[rng.choice(POPULATION, correct, replace=False)] = True
    return vector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floor", type=float, default=77.92)
    parser.add_argument("--healthy", type=float, default=78.14)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--subsets", type=int, default=2000)
    parser.add_argument("--sizes", default="1000,5000,10000")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    at_floor = stats.floor_count(args.floor, POPULATION)
    print(f"floor {args.floor}%, alpha {args.alpha}, {args.subsets} seeded subsets per row, population {POPULATION}")
    print("| images | detectable shortfall (points, power 0.8) | false alarms at the floor | detected at floor - shortfall "
          f"| healthy model ({args.healthy}) fails: old rule / verdict |")
    print("|---|---|---|---|---|")
    for images in map(int, args.sizes.split(",")):
        @lru_cache(maxsize=None)
        def fails(correct, images=images):
            return not check_floor("fp16", "top1", correct, images, POPULATION, args.floor, args.alpha).passed

        shortfall = check_floor("fp16", "top1", at_floor * images // POPULATION, images, POPULATION, args.floor,
                                args.alpha).detectable_shortfall
        false_alarm = rate(population(at_floor, rng), images, args.subsets, rng, fails)
        detected = rate(population(at_floor - round(shortfall / 100 * POPULATION), rng), images, args.subsets,
                        rng, fails)
        healthy = population(round(args.healthy / 100 * POPULATION), rng)
        old = rate(healthy, images, args.subsets, rng, lambda c: 100 * c / images < args.floor)
        new = rate(healthy, images, args.subsets, rng, fails)
        print(f"| {images:,} | {shortfall:.2f} | {false_alarm:.3f} | {detected:.3f} | {old:.3f} / {new:.3f} |")


if __name__ == "__main__":
    main()
