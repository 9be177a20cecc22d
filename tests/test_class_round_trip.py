"""Grades a class can trust, end to end, as docs/instructors.md says: a course folder, the releases, five students
(a correct submission, an empty one, one with an honest bug per function, a cheater, and a second empty one
graded right after the cheater), the whole class autograded with `python -m nstedu.checks autograde --workers 2`
(every submission in its own bubblewrap sandbox), and the same grades when the class is graded in another order.
The cheater's notebooks use nstedu's own implementation (imported, aliased, through getattr and importlib, the
capstone's reference run), edit `CHECKS` from a class body, write to the gradebook with sqlite3, print "PASSED",
delete the check cells and loop forever in exercise 05. Needs nbgrader and bubblewrap."""
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e .[classroom])")
if not shutil.which("bwrap"):
    pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)", allow_module_level=True)

from nstedu.checks.autograde import autograde_class  # noqa: E402
from nstedu.checks.manifest import ASSIGNMENTS  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import classroom as tools  # noqa: E402

STUDENTS = [("s1_correct", "correct"), ("s2_empty", "empty"), ("s3_buggy", "buggy"), ("s4_cheat", "cheat"),
            ("s5_empty", "empty")]
TIMEOUT = 30


def _env():
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "NSTEDU_QUICK": "1", "MPLBACKEND": "Agg", "NSTEDU_CHECK_TIMEOUT": str(TIMEOUT)}


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("class")
    env = _env()
    subprocess.run([sys.executable, str(REPO / "tools" / "classroom.py"), "init", str(course)], check=True, env=env,
                   capture_output=True)
    for assignment in ASSIGNMENTS:
        subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "generate_assignment", assignment, "--force"],
                       cwd=course, env=env, check=True, capture_output=True)
        for student, kind in STUDENTS:
            tools.submit(course, student, assignment, kind)
    return course


@pytest.fixture(scope="module")
def graded(course):
    old = dict(os.environ)
    os.environ.update(_env())
    source = _digest(course / "source")
    try:
        reports = {a: autograde_class(course, a, workers=2, students=[s for s, _ in STUDENTS]) for a in ASSIGNMENTS}
    finally:
        os.environ.clear()
        os.environ.update(old)
    return reports, source


def _scores(report):
    return {r["student"]: r["score"] for r in report["rows"]}


def test_every_submission_is_graded_and_the_scores_are_the_expected_ones(course, graded):
    reports, _ = graded
    for assignment, report in reports.items():
        assert all(r["success"] for r in report["rows"]), report["rows"]
        expected = {s: tools.expected_score(assignment, kind) for s, kind in STUDENTS}
        wrong = [s for s in expected if _scores(report).get(s) != expected[s]]
        assert not wrong, (assignment, {s: (_scores(report).get(s), expected[s], _grader_lines(course, s, assignment))
                                        for s in wrong})
        assert _scores(report)["s1_correct"] == sum(i.points for i in ASSIGNMENTS[assignment] if i.kind == "check")


def _grader_lines(course, student, assignment):
    import nbformat

    nb = nbformat.read(course / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)
    return [line for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            for line in o.get("text", "").splitlines() if line.startswith("[grader]")]


def test_the_cheater_is_told_why(course, graded):
    lines = {a: "\n".join(_grader_lines(course, "s4_cheat", a)) for a in ASSIGNMENTS}
    assert "gram_matrix: FAILED: `gram_matrix` is nstedu's own implementation" in lines["03_gram_and_style"]
    assert "style_loss: FAILED: `L` is nstedu's own implementation" in lines["03_gram_and_style"]
    assert "tv_loss: FAILED: `tv_loss` is nstedu's own implementation" in lines["04_content_and_tv_losses"]
    assert f"optimization_step: FAILED: took longer than {TIMEOUT} s" in lines["05_optimization_step"]
    assert "the notebook was not run for feedback" in lines["05_optimization_step"]
    assert "style_transfer: FAILED: `style_transfer` is nstedu's own implementation" in lines["10_capstone"]
    assert "masked_gram_matrix: FAILED" in lines["11_harder_track"] and "nstedu" in lines["11_harder_track"]
    assert "match_color_histogram: FAILED: your function calls nstedu's own implementation (nstedu.control" \
        in lines["11_harder_track"]
    assert "sliced_wasserstein: FAILED: `" in lines["12_sliced_wasserstein"] \
        and "is nstedu's own implementation" in lines["12_sliced_wasserstein"]


def test_an_endless_loop_costs_one_time_out(graded):
    rows = {r["student"]: r["seconds"] for r in graded[0]["05_optimization_step"]["rows"]}
    assert rows["s4_cheat"] - rows["s2_empty"] < 1.5 * TIMEOUT + 30, rows


def test_nothing_a_submission_does_reaches_the_course(course, graded):
    from nbgrader.api import Gradebook

    _, source = graded
    assert _digest(course / "source") == source
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for assignment in ASSIGNMENTS:
            for student, _ in STUDENTS:
                sub = gb.find_submission(assignment, student)
                assert all(g.manual_score is None for nb in sub.notebooks for g in nb.grades), (assignment, student)
    assert not list((course / "autograded").rglob("grades.json"))
    subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export"], cwd=course, env=_env(), check=True,
                   capture_output=True)
    rows = list(csv.DictReader(open(course / "grades.csv")))
    cheat = [float(r["raw_score"]) for r in rows if r["student_id"] == "s4_cheat"]
    assert len(cheat) == len(ASSIGNMENTS) and max(cheat) == 0.0


@pytest.mark.parametrize("assignment", ["07_colour_preservation", "03_gram_and_style"])
def test_the_same_grades_in_another_order(course, graded, assignment):
    """One worker, the students in reverse order (the cheater graded before the correct student now) gives the
    same score and the same verdict on every item."""
    first = {s: _grader_lines(course, s, assignment) for s, _ in STUDENTS}
    old = dict(os.environ)
    os.environ.update(_env())
    try:
        again = autograde_class(course, assignment, workers=1, students=[s for s, _ in reversed(STUDENTS)])
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert _scores(again) == _scores(graded[0][assignment])
    assert {s: _grader_lines(course, s, assignment) for s, _ in STUDENTS} == first
