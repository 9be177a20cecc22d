"""A class graded: a synthetic class of N students (a third correct, a third empty, a third with one honest bug per
function) hands in all six graded assignments; the whole class is autograded with
`python -m nstedu.checks autograde --workers W` (every submission in its own bubblewrap sandbox, verdicts replayed
in the grader) and every score is compared with the one it must get. Target (issue 23): 100 students × 6
assignments in ≤ 60 min on a 2-core CPU, ≤ 10 s median per notebook.

    python benchmarks/bench_classroom.py                    # 100 students, 2 workers -> RESULTS.md
    python benchmarks/bench_classroom.py --quick            # 3 students, one assignment; no RESULTS.md
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

KINDS = ("correct", "empty", "buggy")


def build_class(course: Path, students: int, assignments) -> dict:
    """A course folder with ``students`` synthetic submissions of each assignment: ``{student: kind}``."""
    import classroom as tools

    subprocess.run([sys.executable, str(REPO / "tools" / "classroom.py"), "init", str(course)], check=True,
                   capture_output=True)
    nbgrader = str(Path(sys.executable).parent / "nbgrader")
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    roster = {f"s{k:03d}_{KINDS[k % 3]}": KINDS[k % 3] for k in range(students)}
    for assignment in assignments:
        subprocess.run([nbgrader, "generate_assignment", assignment, "--force"], cwd=course, check=True,
                       capture_output=True, env=env)
        for student, kind in roster.items():
            tools.submit(course, student, assignment, kind)
    return roster


def run(students: int, workers: int, assignments) -> tuple[list, int]:
    """Grade the class: one row per assignment, and the number of scores that differ from the expected ones."""
    import classroom as tools

    from nstedu.checks.autograde import autograde_class

    os.environ.setdefault("NSTEDU_QUICK", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    rows, wrong = [], 0
    with tempfile.TemporaryDirectory(prefix="nstedu-class-") as tmp:
        course = Path(tmp) / "class"
        roster = build_class(course, students, assignments)
        for assignment in assignments:
            start = time.monotonic()
            report = autograde_class(course, assignment, workers=workers)
            wall = time.monotonic() - start
            seconds = [r["seconds"] for r in report["rows"]]
            bad = [r["student"] for r in report["rows"]
                   if not r["success"] or r.get("score") != tools.expected_score(assignment, roster[r["student"]])]
            wrong += len(bad)
            rows.append(dict(assignment=assignment, n=len(seconds), wall=wall, median=statistics.median(seconds),
                             slowest=max(seconds), bad=bad))
            print(f"{assignment}: {len(seconds)} notebooks in {wall:.0f} s, median {statistics.median(seconds):.1f} s"
                  f" per notebook, {len(bad)} wrong score(s)", flush=True)
    return rows, wrong


def table(rows, students, workers, wrong, total) -> str:
    lines = ["| assignment | notebooks | wall time | median per notebook | slowest | wrong scores |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['assignment']} | {r['n']} | {r['wall'] / 60:.1f} min | {r['median']:.1f} s | "
                     f"{r['slowest']:.1f} s | {len(r['bad'])} |")
    n = sum(r["n"] for r in rows)
    median = statistics.median([r["median"] for r in rows])
    lines.append(f"| **all** | **{n}** | **{total / 60:.1f} min** | {median:.1f} s (median of the medians) | | "
                 f"**{wrong}** |")
    verdict = "met" if total <= 3600 and median <= 10 and wrong == 0 else "NOT met"
    return ("\n".join(lines) + f"\n\n{students} synthetic students (⅓ correct, ⅓ empty, ⅓ with one bug per function) ×"
            f" {len(rows)} assignments, `python -m nstedu.checks autograde --workers {workers}`, each submission in its "
            f"own bubblewrap sandbox (quick mode, NSTEDU_CHECK_TIMEOUT 60 s). \"Median per notebook\" is one "
            f"submission's autograde (its kernel, the sealed checks, the replay, the notebook run, the gradebook), "
            f"{workers} running at a time. Target ≤ 60 min for 100 × 6 and ≤ 10 s median per notebook: **{verdict}**.")


def main(argv=None) -> int:
    from nstedu.checks.manifest import ASSIGNMENTS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--assignments", nargs="+", default=list(ASSIGNMENTS), choices=list(ASSIGNMENTS))
    ap.add_argument("--quick", action="store_true", help="3 students, one assignment, no RESULTS.md")
    args = ap.parse_args(argv)
    if args.quick:
        args.students, args.assignments = 3, ["07_colour_preservation"]
    rows, wrong = run(args.students, args.workers, args.assignments)
    total = sum(r["wall"] for r in rows)     # grading only (making the synthetic class is not counted)
    text = table(rows, args.students, args.workers, wrong, total)
    print(text)
    if not args.quick:
        write_section("bench_classroom", text)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
