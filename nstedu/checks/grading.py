"""Grading: execute exercise notebooks and score each exercise (``python -m nstedu.checks grade …``)."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from .colour import check_luminance_transfer
from .content_tv import check_content_loss, check_tv_loss
from .core import GRADE_FILE_ENV
from .gram_style import check_gram_matrix, check_style_loss
from .optimization import check_optimization_step

#: exercise name -> its check (a notebook's ``check_<exercise>(`` calls are what grading expects to see reported)
CHECKS = {"gram_matrix": check_gram_matrix, "content_loss": check_content_loss, "style_loss": check_style_loss,
          "tv_loss": check_tv_loss, "optimization_step": check_optimization_step,
          "luminance_transfer": check_luminance_transfer}


def _call_pattern():
    return re.compile(r"check_(" + "|".join(CHECKS) + r")\s*\(")


def grade_notebook(path, timeout: int = 600, quick: bool = True) -> dict:
    """Execute the notebook at ``path`` (errors allowed) and collect its checks' results.

    Returns ``{"notebook", "results": {exercise: CheckResult as dict}, "errors": [first line of each cell error]}``;
    an exercise whose check call is in the notebook but never reported counts as "not run".
    """
    import nbformat  # optional (the notebooks/test extras): only grading needs them
    from nbclient import NotebookClient  # optional, as nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    expected = list(dict.fromkeys(m.group(1) for c in nb.cells if c.cell_type == "code" for m in _call_pattern().finditer(c.source)))
    fd, log = tempfile.mkstemp(prefix="nstedu-grade-", suffix=".jsonl")
    os.close(fd)
    saved = {k: os.environ.get(k) for k in (GRADE_FILE_ENV, "NSTEDU_QUICK", "MPLBACKEND")}
    os.environ.update({GRADE_FILE_ENV: log, "MPLBACKEND": "Agg"})
    if quick:
        os.environ["NSTEDU_QUICK"] = "1"
    try:
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent.resolve())}})
        client.execute()
        with open(log, encoding="utf-8") as f:
            reported = [json.loads(line) for line in f if line.strip()]
    finally:
        os.unlink(log)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    results = {}
    for r in reported:  # the last report of an exercise counts
        results[r["exercise"]] = r
    for name in expected:
        results.setdefault(name, dict(exercise=name, status="not run", passed=0, total=0, rel_error=None, hint=""))
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return {"notebook": str(path), "results": results, "errors": errors}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nstedu.checks",
                                description="Grade exercise notebooks: execute them and score each exercise.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="execute notebooks and print a score per exercise")
    g.add_argument("notebooks", nargs="+", help="exercise notebooks (e.g. exercises/03_*.ipynb, or a student's copy)")
    g.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    g.add_argument("--full", action="store_true", help="run without NSTEDU_QUICK (slower, full-size demos)")
    g.add_argument("--json", action="store_true", help="print the results as JSON (for a gradebook)")
    args = p.parse_args(argv)
    reports, total, got = [], 0, 0
    for nb in args.notebooks:
        if not os.path.isfile(nb):
            print(f"{nb}: notebook not found", file=sys.stderr)
            return 2
        report = grade_notebook(nb, args.timeout, quick=not args.full)
        reports.append(report)
        if args.json:
            continue
        print(f"{report['notebook']}")
        points = 0
        for name, r in report["results"].items():
            point = 1 if r["status"] == "passed" else 0
            points += point
            detail = f"{r['passed']}/{r['total']} inputs" if r["total"] else ""
            print(f"  {name:<20} {r['status']:<16} {detail:<11} {point} / 1")
            if r["hint"] and r["status"] == "failed":
                print(f"  {'':<20} hint: {r['hint']}")
        if report["errors"]:
            print(f"  {len(report['errors'])} cell(s) raised an error, first: {report['errors'][0]}")
        print(f"  notebook score: {points} / {len(report['results'])}")
        total, got = total + len(report["results"]), got + points
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        print(f"total score: {got} / {total}" + (f" ({100 * got / total:.0f} %)" if total else " (no checks found)"))
    return 0
