"""How long `make test` takes: the unit tests without the slow ones (`make test-py`), the lessons and the exercises
under nbval in quick mode, as `make test` runs them: two at a time, one torch thread each. Reports wall-clock and
CPU seconds and the machine's load average (other work on the machine inflates the wall clock; target ≤ 4 min on
a quiet 2-core machine).

Usage: python benchmarks/bench_test_suite.py [--quick]   (--quick: one small test file, nothing written)
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _results import write_section  # noqa: E402


def timed(cmd: list[str], env: dict, full: bool = False) -> tuple[float, float, str]:
    """Run ``cmd`` in the repository; return (wall seconds, CPU seconds of the child processes, last output line, or
    all of the output with ``full``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = (out.stdout.strip().splitlines() or ["(no output)"])[-1]
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}")
    return wall, cpu, out.stdout if full else last


#: (a word of the part's command line, the part's name)
PARTS = (("tests -m", "make test-py (unit tests, not `slow`, `browser` or `site`)"),
         ("notebooks/", "make test-lessons (inline backend)"), ("exercises/", "make test-exercises"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one small test file, no RESULTS.md")
    args = ap.parse_args(argv)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if args.quick:
        print(timed(pytest + ["tests/test_losses.py"], env))
        return
    load_before = os.getloadavg()
    wall, cpu, out = timed(["make", "--no-print-directory", "test"], env, full=True)
    load_after = os.getloadavg()
    results, part = {}, None
    for line in out.splitlines():     # make echoes each part's command before its output (--output-sync=target)
        if "-m pytest" in line:
            part = next((p for key, p in PARTS if key in line), None)
        elif part and " passed" in line and " in " in line:
            results[part] = line.strip()
    text = ("`make test` runs the unit tests (`make test-py`), the lessons and the exercises (nbval, quick mode) two at a "
            "time, one torch thread each (`OMP_NUM_THREADS=1 make -j2`), timed as one command; the solutions notebooks "
            "and their hidden tests run in `make test-slow`.\n\n"
            "| part | result |\n|---|---|\n" + "".join(f"| {p} | {results.get(p, '(not found)')} |\n" for _, p in PARTS)
            + f"| **make test, wall** | **{wall:.0f} s** (CPU {cpu:.0f} s) |\n\n"
            f"Target ≤ 240 s on a quiet 2-core machine → {'met' if wall <= 240 else 'NOT met'}. Load average (1 min) "
            f"{load_before[0]:.1f} before, {load_after[0]:.1f} after: above ~1 other work shared the cores and the wall "
            "clock is inflated.")
    print(text)
    write_section("make test (cpu)", text)


if __name__ == "__main__":
    main()
