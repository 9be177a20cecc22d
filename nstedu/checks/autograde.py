"""A whole class autograded in one command, N submissions at a time:
``python -m nstedu.checks autograde ASSIGNMENT --course DIR --workers N`` (``make autograde``).

Each worker is a process of its own that loads the course's ``nbgrader_config.py`` once and runs nbgrader's own
autograde (``NbGraderAPI.autograde``) for one student after another, so every submission goes through the same
sealed path as ``nbgrader autograde`` (:class:`nstedu.checks.classroom.SandboxedExecute`: a sandboxed kernel per
submission, verdicts replayed in the worker). nbgrader's gradebook is one SQLite file: a write that meets another
worker's lock is retried, and at the end every student's submission is read back from the gradebook, so a missing
grade is reported, never silent.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from .sandbox import require_sandbox, share_cpus, use_share

_API: dict = {}
RETRIES = 5


def _api(course: str):
    """The nbgrader API of ``course`` (its nbgrader_config.py loaded), made once per worker process."""
    if course not in _API:
        from nbgrader.apps import NbGraderAPI  # optional (the classroom extras): only grading a class needs it
        from nbgrader.coursedir import CourseDirectory  # optional, as above
        from traitlets.config.loader import PyFileConfigLoader  # optional (comes with nbgrader)

        os.chdir(course)
        config = PyFileConfigLoader("nbgrader_config.py", path=course).load_config()
        coursedir = CourseDirectory(config=config, root=course)
        _API[course] = NbGraderAPI(coursedir=coursedir, config=config)
    return _API[course]


def _one(job) -> dict:
    """Autograde one student's submission (in a worker): ``{student, success, seconds, error}``."""
    course, assignment, student = job
    start = time.monotonic()
    result: dict = {}
    for attempt in range(RETRIES):
        result = _api(course).autograde(assignment, student, force=True, create=True)
        text = f"{result.get('error') or ''}{result.get('log') or ''}"
        if result.get("success") or "database is locked" not in text:
            break
        time.sleep(0.5 * (attempt + 1))     # another worker holds the gradebook's lock
    error = "" if result.get("success") else (result.get("error") or result.get("log") or "failed").strip()
    return {"student": student, "success": bool(result.get("success")), "seconds": time.monotonic() - start,
            "error": error.splitlines()[-1][:300] if error else ""}


def students_with_submissions(course: Path, assignment: str) -> list[str]:
    submitted = Path(course) / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(d.name for d in submitted.iterdir() if (d / assignment).is_dir())


def autograde_class(course, assignment: str, workers: int = 2, students=None) -> dict:
    """Autograde every submission of ``assignment`` in ``course`` with ``workers`` processes. Returns
    ``{"rows": [{student, success, seconds, error, score, max_score}], "seconds": wall time}``."""
    from nbgrader.api import Gradebook  # optional (the classroom extras): only grading a class needs it

    course = str(Path(course).resolve())
    if not (Path(course) / "nbgrader_config.py").is_file():
        raise ValueError(f"{course}: no nbgrader_config.py (make the course with `make classroom CLASS={course}`)")
    require_sandbox()
    students = list(students or students_with_submissions(Path(course), assignment))
    if not students:
        raise ValueError(f"{course}/submitted/*/{assignment}: no submissions to grade")
    start = time.monotonic()
    jobs = [(course, assignment, s) for s in students]
    share_cpus(workers)     # each worker and its kernels get their share of the cores (the environment is inherited)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=use_share) as pool:
            rows = list(pool.map(_one, jobs))
    else:
        rows = [_one(job) for job in jobs]
    wall = time.monotonic() - start
    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gb:   # read every grade back
        for row in rows:
            try:
                sub = gb.find_submission(assignment, row["student"])
                row.update(score=float(sub.score), max_score=float(sub.max_score))
            except Exception:
                row.update(score=None, max_score=None, success=False,
                           error=row["error"] or "no grade in the gradebook")
    return {"rows": rows, "seconds": wall}


def print_summary(report: dict, assignment: str) -> int:
    rows = report["rows"]
    for r in rows:
        score = "-" if r.get("score") is None else f"{r['score']:g} / {r['max_score']:g}"
        print(f"  {r['student']:<24} {score:<12} {r['seconds']:6.1f} s  {'' if r['success'] else 'FAILED: ' + r['error']}")
    failed = [r for r in rows if not r["success"]]
    print(f"{assignment}: {len(rows) - len(failed)}/{len(rows)} submissions graded in {report['seconds']:.0f} s"
          + (f"; {len(failed)} FAILED" if failed else ""))
    return 1 if failed else 0
