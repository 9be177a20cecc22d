"""How long `make test` takes: the unit tests without the slow calibrations (`make test-py`) and every notebook
under nbval in quick mode (`make test-nb`), run one after the other with this interpreter. Reports wall-clock and
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

NOTEBOOK_DIRS = ("notebooks", "solutions", "exercises")


def timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Run ``cmd`` in the repository; return (wall seconds, CPU seconds of the child processes, last output line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = (out.stdout.strip().splitlines() or ["(no output)"])[-1]
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}")
    return wall, cpu, last


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
    py = timed(pytest + ["tests", "-m", "not browser and not slow"], env)
    notebooks = sorted(str(p.relative_to(ROOT)) for d in NOTEBOOK_DIRS for p in (ROOT / d).glob("*.ipynb"))
    nb = timed(pytest + ["--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600", *notebooks],
               dict(env, NSTEDU_QUICK="1"))
    load_after = os.getloadavg()
    text = (f"`make test` = `make test-py` (unit tests, not `slow`, not `browser`) + `make test-nb` (every notebook, "
            f"quick mode, nbval), one after the other.\n\n"
            f"| part | result | wall s | CPU s |\n|---|---|---|---|\n"
            f"| make test-py | {py[2]} | {py[0]:.0f} | {py[1]:.0f} |\n"
            f"| make test-nb | {nb[2]} | {nb[0]:.0f} | {nb[1]:.0f} |\n"
            f"| **make test** | | **{py[0] + nb[0]:.0f}** | {py[1] + nb[1]:.0f} |\n\n"
            f"Target ≤ 240 s on a quiet 2-core machine. Load average (1 min) {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after: above ~2 other work shared the cores and the wall clock is inflated.")
    print(text)
    write_section("make test (cpu)", text)


if __name__ == "__main__":
    main()
