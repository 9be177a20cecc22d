"""Grading without trusting the notebook: ``python -m nstedu.checks grade NOTEBOOK…``.

For each notebook the grader

1. optionally executes it (quick mode, errors allowed) — only to report which cells raise;
2. takes the learner's *definitions* out of it (:func:`nstedu.checks.isolate.definitions_from_notebook`: imports,
   functions, plain constants; no other statement runs);
3. runs every check the notebook is expected to have (:data:`nstedu.checks.manifest.ASSIGNMENTS`) **in the
   grader's own process**, with the visible inputs and with other random inputs.

So a deleted check cell, a printed "PASSED" or a patched ``checks`` module changes nothing; a missing function
scores 0 ("not found"), and every expected item counts in the total. Written answers are listed for the
instructor (nbgrader's formgrader grades them).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from pathlib import Path

from ..env import environment
from ..images import atomic_write
from .core import HIDDEN_SEED_ENV, hidden_seed, quietly  # noqa: F401  (hidden_seed: also grading's API)
from .isolate import definitions_from_notebook, isolated_main, run_guarded
from .manifest import ASSIGNMENTS, assignment_for
from .registry import CHECKS, FUNCTION


def _call_pattern():
    return re.compile(r"check_(" + "|".join(CHECKS) + r")\s*\(")


def _execute(path, timeout: int, quick: bool) -> list[str]:
    """Run the notebook in a kernel (a copy: the file is not changed); the first line of each cell error."""
    import nbformat  # optional (the notebooks/test extras): only executing a notebook needs them
    from nbclient import NotebookClient  # optional, as nbformat

    nb = nbformat.read(str(path), as_version=4)
    with environment(MPLBACKEND="Agg", **({"NSTEDU_QUICK": "1"} if quick else {})):
        NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(path).parent.resolve())}}).execute()
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def grade_notebook(path, timeout: int = 600, quick: bool = True, execute: bool = True,
                   assignment: str | None = None) -> dict:
    """Grade one notebook. Returns ``{"notebook", "assignment", "items": [...], "score", "max_score", "errors",
    "problems"}``; each item has ``grade_id, kind, exercise, status, points, max_points, hint``. Status: "passed",
    "failed", "not implemented", "not found" (the function is missing) or "graded by hand" (written answers)."""

    assignment = assignment or assignment_for(path)
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"{path}: not one of the course's exercise notebooks ({', '.join(ASSIGNMENTS)}); "
                         "name it like the exercise or pass --as NAME")
    errors = _execute(path, timeout, quick) if execute else []
    namespace, problems = definitions_from_notebook(path)
    items = []
    for item in ASSIGNMENTS[assignment]:
        row = dict(grade_id=item.grade_id, kind=item.kind, exercise=item.exercise, max_points=item.points,
                   points=0.0, hint="")
        if item.kind == "written":
            row["status"] = "graded by hand"
        else:
            fn = namespace.get(FUNCTION[item.exercise])
            if not callable(fn):
                row.update(status="not found", hint=f"no function `{FUNCTION[item.exercise]}` in the notebook")
            else:
                visible = quietly(run_guarded, item.exercise, fn)
                result = visible if not visible else quietly(run_guarded, item.exercise, fn, hidden_seed())
                row.update(status=result.status, hint=result.hint,
                           points=float(item.points) if result.status == "passed" else 0.0)
        items.append(row)
    return {"notebook": str(path), "assignment": assignment, "items": items,
            "score": sum(r["points"] for r in items), "max_score": sum(r["max_points"] for r in items),
            "auto_max_score": sum(r["max_points"] for r in items if r["kind"] == "check"),
            "errors": errors, "problems": problems}


def _print_report(report: dict) -> None:
    print(report["notebook"])
    for r in report["items"]:
        pts = f"{r['points']:g} / {r['max_points']:g}" if r["kind"] == "check" else f"? / {r['max_points']:g}"
        print(f"  {r['grade_id']:<28} {r['status']:<16} {pts}")
        if r["hint"] and r["status"] not in ("passed",):
            print(f"  {'':<28} hint: {r['hint']}")
    if report["errors"]:
        print(f"  {len(report['errors'])} cell(s) raised an error, first: {report['errors'][0]}")
    print(f"  notebook score: {report['score']:g} / {report['auto_max_score']:g} autograded"
          + (f" (+ {report['max_score'] - report['auto_max_score']:g} points of written answers to grade by hand)"
             if report["max_score"] > report["auto_max_score"] else ""))


def write_csv(f, reports: list) -> None:
    """One row per notebook and graded item: the gradebook export."""
    w = csv.writer(f)
    w.writerow(["notebook", "assignment", "grade_id", "kind", "status", "points", "max_points"])
    for rep in reports:
        for r in rep["items"]:
            w.writerow([rep["notebook"], rep["assignment"], r["grade_id"], r["kind"], r["status"], r["points"],
                        r["max_points"]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nstedu.checks",
                                description="Grade exercise notebooks: run every expected check on the notebook's "
                                            "functions, in this process.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade notebooks and print a score per exercise")
    g.add_argument("notebooks", nargs="+", help="exercise notebooks (e.g. exercises/03_*.ipynb, or a student's copy)")
    g.add_argument("--as", dest="assignment", choices=sorted(ASSIGNMENTS),
                   help="which exercise notebook these are (default: from the file name)")
    g.add_argument("--no-execute", action="store_true", help="do not execute the notebooks (faster; no cell errors)")
    g.add_argument("--timeout", type=int, default=600, help="seconds per cell when executing (default 600)")
    g.add_argument("--full", action="store_true", help="execute without NSTEDU_QUICK (slower, full-size demos)")
    g.add_argument("--json", action="store_true", help="print the results as JSON")
    g.add_argument("--csv", metavar="FILE", help="also write one row per notebook and item to FILE (a gradebook)")
    sub.add_parser("isolated", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.command == "isolated":
        return isolated_main()
    reports = []
    for nb in args.notebooks:
        if not os.path.isfile(nb):
            print(f"{nb}: notebook not found", file=sys.stderr)
            return 2
        try:
            report = grade_notebook(nb, args.timeout, quick=not args.full, execute=not args.no_execute,
                                    assignment=args.assignment)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        reports.append(report)
        if not args.json:
            _print_report(report)
    if args.csv:
        atomic_write(args.csv, lambda f: write_csv(f, reports), text=True)
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        got = sum(r["score"] for r in reports)
        auto = sum(r["auto_max_score"] for r in reports)
        print(f"total score: {got:g} / {auto:g} autograded" + (f" ({100 * got / auto:.0f} %)" if auto else ""))
    return 0
