"""The verdicts' error rates, simulated: the README's tables.

1. A 12-verdict nightly (fp16+int8, Top-1/Top-5: floors, drops vs FP32, drops vs a baseline), every
   null at its boundary: how often a run fails anywhere, with the run's Bonferroni correction and
   with each verdict at alpha alone.
2. The paired gate's size across discordance, sample size and allowance (drop exactly at it).
3. The paired gate's detection rate at the detectable excess it prints.
4. The floor's false alarms at the floor, detection at its printed shortfall, and a healthy model.

    python benchmarks/verdict_power.py [--subsets 2000] [--seed 1]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import verdict_simulation as sim  # noqa: E402
from res2net_validate import stats  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--subsets", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    print("| images | runs failing anywhere: Bonferroni over 12 | each verdict at alpha |")
    print("|---|---|---|")
    gates = sim.nightly_at_the_boundary(rng)
    for images in (1_000, 5_000):
        corrected = sim.run_fails(gates, images, args.alpha, len(gates), args.subsets, rng)
        alone = sim.run_fails(gates, images, args.alpha, 1, args.subsets, rng)
        print(f"| {images:,} | {corrected:.3f} | {alone:.3f} |")

    print("\n| images | allowance | size at discordance 0.1% / 0.5% / 2% / 10% | printed excess at 0.5% / 4%: caught |")
    print("|---|---|---|---|")
    for images in (256, 1_000, 5_000):
        for allowance in (0.10, 0.50, 0.78):
            sizes = [sim.paired_rate(*sim.null_population(d, allowance), images, allowance, args.alpha, args.subsets,
                                     rng) for d in (0.001, 0.005, 0.02, 0.10)]
            powers = []
            for discordance in (0.005, 0.04):
                printed = sim.printed_detectable(discordance, images, allowance, args.alpha)
                if printed is None:
                    powers.append("none detectable")
                    continue
                rate = sim.paired_rate(*sim.power_population(discordance, allowance, printed), images, allowance,
                                       args.alpha, args.subsets, rng)
                powers.append(f"{printed:.2f}: {rate:.3f}")
            print(f"| {images:,} | {allowance:.2f} | {' / '.join(f'{s:.3f}' for s in sizes)} | "
                  f"{' / '.join(powers)} |")

    print("\n| images | detectable shortfall (points) | false alarms at the floor | detected at floor - shortfall "
          "| healthy (+0.22) fails |")
    print("|---|---|---|---|---|")
    floor, population = 77.92, sim.POPULATION
    at_floor = stats.count_at_least(floor, population)
    for images in (1_000, 5_000, 10_000):
        def rate(correct_total):
            vector = sim.with_count(population, correct_total, rng)
            counts = [int(vector[rng.choice(population, images, replace=False)].sum()) for _ in range(args.subsets)]
            return float(np.mean([stats.floor_fails(c, images, population, floor, args.alpha) for c in counts]))

        shortfall = stats.floor_test(at_floor * images // population, images, population, floor,
                                     args.alpha).detectable
        print(f"| {images:,} | {shortfall:.2f} | {rate(at_floor):.3f} | "
              f"{rate(at_floor - round(shortfall / 100 * population)):.3f} | "
              f"{rate(stats.count_at_least(floor + 0.22, population)):.3f} |")
    print(f"\n{args.subsets} subsets per cell, seed {args.seed}, alpha {args.alpha}, population {population:,}: "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
