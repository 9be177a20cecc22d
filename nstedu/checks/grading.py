"""Grading without trusting the notebook: ``python -m nstedu.checks grade NOTEBOOK… [--workers N]``.

For each notebook the grader

1. starts a kernel sealed by bubblewrap (:mod:`nstedu.checks.sandbox`: read-only system, no network, memory and
   time limits), one per notebook;
2. loads the learner's *definitions* (imports, functions, plain constants) into a fresh namespace of that kernel
   and, before any other cell runs, runs every check the notebook is expected to have
   (:data:`nstedu.checks.manifest.ASSIGNMENTS`) on a recorder, with the visible inputs and with other random
   inputs (:mod:`nstedu.checks.session`); then runs the notebook there (quick mode, errors allowed) to report which
   cells raise (``--no-execute`` skips this; so does a check that ran over its time limit);
3. reaches each verdict here, in the grader's process, by replaying the record through the same check
   (:mod:`nstedu.checks.record`): no learner code ever runs in this process.

So a deleted check cell, a printed "PASSED", a patched ``checks`` module or a forged record changes nothing; a
missing function scores 0 ("not found"); a function that is or calls nstedu's own implementation scores 0
(:mod:`nstedu.checks.reference_use`); an endless loop costs one time-out. Written answers are listed for the
instructor (nbgrader's formgrader grades them).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from ..env import environment
from ..images import atomic_write
from .core import HIDDEN_SEED_ENV, hidden_seed, quietly  # noqa: F401  (hidden_seed: also grading's API)
from .autograde import autograde_class, print_summary
from .isolate import isolated_main
from .sandbox import SandboxUnavailable, kernel_manager_class, require_sandbox, share_cpus, use_share
from .session import NOT_RUN, grade_items, timed_out
from .manifest import ASSIGNMENTS, assignment_for
from .registry import CHECKS


def _call_pattern():
    return re.compile(r"check_(" + "|".join(CHECKS) + r")\s*\(")


def _sealed_run(path, exercises, timeout: int, quick: bool, execute: bool):
    """Execute the notebook (optional) and grade ``exercises`` in one sandboxed kernel: ``(errors, results)``."""
    import nbformat  # optional (the notebooks/test extras): only grading a notebook file needs them
    from nbclient import NotebookClient  # optional, as nbformat

    nb = nbformat.read(str(path), as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    with environment(MPLBACKEND="Agg", **({"NSTEDU_QUICK": "1"} if quick else {})):
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                kernel_manager_class=kernel_manager_class(), interrupt_on_timeout=True,
                                error_on_timeout={"ename": "CellTimeoutError", "evalue": f"over {timeout} s",
                                                  "traceback": [f"CellTimeoutError: the cell ran over {timeout} s"]},
                                resources={"metadata": {"path": str(Path(path).parent.resolve())}})
        with client.setup_kernel():
            client.wait_for_reply(client.kc.kernel_info())
            results = grade_items(client, sources, exercises)   # before any cell of the learner's runs
            late = timed_out(results)
            for index, cell in enumerate(nb.cells if execute and not late else []):
                if cell.cell_type == "code":
                    client.execute_cell(cell, index)
    if execute and late:
        return [NOT_RUN.format(late[0])], results
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return errors, results


def grade_notebook(path, timeout: int = 60, quick: bool = True, execute: bool = True,
                   assignment: str | None = None) -> dict:
    """Grade one notebook in its own sandboxed kernel. Returns ``{"notebook", "assignment", "items": [...],
    "score", "max_score", "errors"}``; each item has ``grade_id, kind, exercise, status, points, max_points,
    hint``. Status: "passed", "failed", "not implemented", "not found" (the function is missing) or "graded by
    hand" (written answers). Raises :class:`nstedu.checks.sandbox.SandboxUnavailable` where no sandbox can be had
    (unless ``NSTEDU_UNSAFE_NO_SANDBOX=1``)."""

    assignment = assignment or assignment_for(path)
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"{path}: not one of the course's exercise notebooks ({', '.join(ASSIGNMENTS)}); "
                         "name it like the exercise or pass --as NAME")
    exercises = [item.exercise for item in ASSIGNMENTS[assignment] if item.kind == "check"]
    errors, results = _sealed_run(path, exercises, timeout, quick, execute)
    items = []
    for item in ASSIGNMENTS[assignment]:
        row = dict(grade_id=item.grade_id, kind=item.kind, exercise=item.exercise, max_points=item.points,
                   points=0.0, hint="")
        if item.kind == "written":
            row["status"] = "graded by hand"
        else:
            result = results[item.exercise]
            row.update(status=result.status, hint=result.hint,
                       points=float(item.points) if result.status == "passed" else 0.0)
        items.append(row)
    return {"notebook": str(path), "assignment": assignment, "items": items,
            "score": sum(r["points"] for r in items), "max_score": sum(r["max_points"] for r in items),
            "auto_max_score": sum(r["max_points"] for r in items if r["kind"] == "check"), "errors": errors}


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


def _grade_job(job) -> dict:
    return grade_notebook(job[0], job[1], quick=job[2], execute=job[3], assignment=job[4])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nstedu.checks",
                                description="Grade exercise notebooks: every expected check on the notebook's "
                                            "functions, each notebook sealed in its own sandboxed kernel.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade notebooks and print a score per exercise")
    g.add_argument("notebooks", nargs="+", help="exercise notebooks (e.g. exercises/03_*.ipynb, or a student's copy)")
    g.add_argument("--as", dest="assignment", choices=sorted(ASSIGNMENTS),
                   help="which exercise notebook these are (default: from the file name)")
    g.add_argument("--no-execute", action="store_true", help="do not execute the notebooks (faster; no cell errors)")
    g.add_argument("--timeout", type=int, default=60, help="seconds per notebook cell when executing (default 60); "
                   "each check's own limit is NSTEDU_CHECK_TIMEOUT (default 60 s)")
    g.add_argument("--full", action="store_true", help="execute without NSTEDU_QUICK (slower, full-size demos)")
    g.add_argument("--workers", type=int, default=1, help="notebooks graded at the same time (default 1)")
    g.add_argument("--json", action="store_true", help="print the results as JSON")
    g.add_argument("--csv", metavar="FILE", help="also write one row per notebook and item to FILE (a gradebook)")
    a = sub.add_parser("autograde", help="nbgrader autograde of a whole class, N submissions at a time")
    a.add_argument("assignment", choices=sorted(ASSIGNMENTS), help="the assignment to autograde")
    a.add_argument("--course", default=".", help="the nbgrader course folder (default: here)")
    a.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="submissions graded at the same time (default: the CPU count, at most 4)")
    a.add_argument("--student", action="append", help="only this student (repeatable)")
    sub.add_parser("isolated", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.command == "isolated":
        return isolated_main()
    if args.command == "autograde":
        try:
            report = autograde_class(args.course, args.assignment, args.workers, args.student)
        except (ValueError, SandboxUnavailable) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return print_summary(report, args.assignment)
    for nb in args.notebooks:
        if not os.path.isfile(nb):
            print(f"{nb}: notebook not found", file=sys.stderr)
            return 2
        if (args.assignment or assignment_for(nb)) not in ASSIGNMENTS:
            print(f"error: {nb}: not one of the course's exercise notebooks ({', '.join(ASSIGNMENTS)}); name it like "
                  "the exercise or pass --as NAME", file=sys.stderr)
            return 2
    try:
        require_sandbox()
    except SandboxUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    jobs = [(nb, args.timeout, not args.full, not args.no_execute, args.assignment) for nb in args.notebooks]
    if args.workers > 1 and len(jobs) > 1:
        share_cpus(args.workers)
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"), initializer=use_share) as pool:
            reports = list(pool.map(_grade_job, jobs))
    else:
        reports = [_grade_job(job) for job in jobs]
    if not args.json:
        for report in reports:
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
