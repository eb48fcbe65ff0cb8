"""Issue-2 figures for the main command (``make validate``'s pytest call) on this machine:
cold and warm wall time, setup before the first scored batch, ORT FPS and Top-1/Top-5 per precision.

    python benchmarks/bench_validate.py [--batch-size 32] [--rounds 5] [--keep-cache DIR]

Cold = empty artifact cache (the embedded default is generated too); warm = the same command again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_validate(cache: Path, out: Path, batch_size: int, rounds: int) -> tuple[float, str]:
    command = [sys.executable, "-m", "pytest", "-m", "accuracy or performance", "--embedded",
               "--precision=fp32,fp16,int8", f"--batch-size={batch_size}", f"--perf-rounds={rounds}",
               "--perf-warmup=1", f"--checkpoints-dir={cache}", f"--benchmark-json={out}", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"validate failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def setup_line(stdout: str) -> str:
    return next((line for line in stdout.splitlines() if "setup before the first scored batch" in line), "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep-cache", type=Path, help="use this cache dir (not emptied) instead of a temp one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.keep_cache or Path(scratch) / "cache"
        out = Path(scratch) / "bench.json"
        cold, cold_out = run_validate(cache, out, args.batch_size, args.rounds)
        warm, warm_out = run_validate(cache, out, args.batch_size, args.rounds)
        rows = json.loads(out.with_name("bench.res2net.json").read_text())["rows"]
    print(f"cold wall time: {cold:7.1f} s   {setup_line(cold_out)}")
    print(f"warm wall time: {warm:7.1f} s   {setup_line(warm_out)}")
    fp32_fps = next((r["fps"] for r in rows if r["precision"] == "fp32"), None)
    print(f"\n{'precision':<10}{'FPS':>9}{'x FP32':>8}{'Top-1':>8}{'Top-5':>8}  (warm run, batch {args.batch_size})")
    for r in rows:
        ratio = f"{r['fps'] / fp32_fps:.2f}" if fp32_fps else "-"
        print(f"{r['precision']:<10}{r['fps']:>9.2f}{ratio:>8}{r['top1']:>8.2f}{r['top5']:>8.2f}")


if __name__ == "__main__":
    main()
