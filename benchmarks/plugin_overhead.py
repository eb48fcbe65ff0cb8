"""What the installed plugin costs a pytest run that does not use it.

    python benchmarks/plugin_overhead.py [--runs 15]

Writes a one-test project (``test_one.py``: ``def test_one(): assert True``, no ini file) in a
temporary folder and runs ``python -m pytest -q -p no:cacheprovider`` there ``--runs`` times with
the plugin and as many times with ``-p no:res2net_validate``, in pairs whose order alternates (the
CPU is shared: a drift in load hits both sides alike).  Per run: the child's CPU time (user + sys,
the ``RUSAGE_CHILDREN`` delta around it) and its peak RSS (its own ``wait4`` rusage: the
``RUSAGE_CHILDREN`` peak is the largest of all children so far, not this one's).  Prints the median
of each side, the median of the per-pair ratios, the RSS difference, and the output lines that only
a run with the plugin prints: the session header (one more pair at default verbosity, the lines
before "collected") and the -q output.

pytest loads the plugin through its ``pytest11`` entry point, so res2net_validate must be
installed (``pip install -e .``); RES2NET_* variables and PYTEST_ADDOPTS are left out of the
children's environment (they would configure the plugin, and this measures it unused).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PLUGIN = "res2net_validate"  # the entry point's name, what -p no:NAME blocks
PYTEST = ("-m", "pytest", "-p", "no:cacheprovider")
WITHOUT = ("-p", f"no:{PLUGIN}")


@dataclass
class Run:
    cpu_s: float
    peak_rss_mib: float
    output: str


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pytest(project: Path, extra: tuple[str, ...], env: dict) -> Run:
    """One pytest run in ``project``; fails (SystemExit) with its output unless the test passed."""
    before = _children_cpu()
    with tempfile.TemporaryFile(mode="w+") as output:
        child = subprocess.Popen([sys.executable, *PYTEST, *extra], cwd=project, env=env, stdout=output,
                                 stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage (its peak RSS)
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    if child.returncode != 0:
        raise SystemExit(f"pytest {' '.join(extra)} in {project} exited {child.returncode}:\n{text}")
    return Run(_children_cpu() - before, usage.ru_maxrss / 1024, text)  # ru_maxrss: KiB on Linux


def header(text: str) -> list[str]:
    """The session header: the lines before 'collected ...'."""
    lines = text.splitlines()
    end = next((i for i, line in enumerate(lines) if line.startswith("collected")), len(lines))
    return lines[:end]


def only_in(with_plugin: list[str], without: list[str]) -> list[str]:
    """Lines of ``with_plugin`` that ``without`` does not have, timings masked ("in 0.12s")."""
    mask = re.compile(r"\d+(\.\d+)?s\b")
    seen = {mask.sub("Ns", line) for line in without}
    return [line for line in with_plugin if mask.sub("Ns", line) not in seen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, metavar="N", help="pairs of runs (default 15)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: must be at least 1")
    if not any(ep.name == PLUGIN for ep in metadata.entry_points(group="pytest11")):
        raise SystemExit(f"no pytest11 entry point named {PLUGIN!r}: install the project (pip install -e .) so that "
                         "pytest loads the plugin at all; without it both sides would measure the same thing")

    env = {k: v for k, v in os.environ.items() if not k.startswith("RES2NET_") and k != "PYTEST_ADDOPTS"}
    with tempfile.TemporaryDirectory(prefix="plugin-overhead-") as folder:
        project = Path(folder)
        (project / "test_one.py").write_text("def test_one():\n    assert True\n")
        runs: dict[str, list[Run]] = {"with": [], "without": []}
        for pair in range(args.runs):
            order = ("with", "without") if pair % 2 == 0 else ("without", "with")
            for side in order:
                runs[side].append(run_pytest(project, ("-q",) + (WITHOUT if side == "without" else ()), env))
            print(f"pair {pair + 1}/{args.runs}: with {runs['with'][-1].cpu_s:.3f} s, "
                  f"without {runs['without'][-1].cpu_s:.3f} s CPU", file=sys.stderr, flush=True)
        verbose = {"with": run_pytest(project, (), env), "without": run_pytest(project, WITHOUT, env)}

    cpu = {side: statistics.median(r.cpu_s for r in rs) for side, rs in runs.items()}
    rss = {side: statistics.median(r.peak_rss_mib for r in rs) for side, rs in runs.items()}
    ratio = statistics.median(a.cpu_s / b.cpu_s for a, b in zip(runs["with"], runs["without"]))
    print(f"\nA one-test project, {args.runs} interleaved pairs of `python -m pytest -q -p no:cacheprovider` "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    print(f"{'':26}{'CPU s (median)':>16}{'peak RSS MiB (median)':>24}")
    print(f"{'with the plugin':26}{cpu['with']:>16.3f}{rss['with']:>24.1f}")
    print(f"{'-p no:' + PLUGIN:26}{cpu['without']:>16.3f}{rss['without']:>24.1f}")
    print(f"{'difference':26}{cpu['with'] - cpu['without']:>+16.3f}{rss['with'] - rss['without']:>+24.1f}")
    print(f"\nmedian of the paired CPU ratios (with / without): {ratio:.2f}x")
    for title, lines in (("session header lines only with the plugin (default verbosity)",
                          only_in(header(verbose["with"].output), header(verbose["without"].output))),
                         ("-q output lines only with the plugin",
                          only_in(runs["with"][0].output.splitlines(), runs["without"][0].output.splitlines()))):
        print(f"\n{title}:")
        print("\n".join(f"  | {line}" for line in lines) if lines else "  (none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
