"""The course as an nbgrader course, end to end: make a course folder from solutions/, generate the student release,
a student submits a partly wrong notebook that also tries to forge its grade (patches the checks, prints "PASSED",
deletes a check cell), autograde, grade the written answer through the formgrader's API, export the gradebook CSV —
and the scores are the expected ones. Needs nbgrader (``pip install -e .[classroom]``)."""
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e .[classroom])")

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSIGNMENT = "03_gram_and_style"


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]), "NSTEDU_QUICK": "1", "MPLBACKEND": "Agg",
            "JUPYTER_RUNTIME_DIR": os.environ.get("JUPYTER_RUNTIME_DIR", "/tmp/nstedu-test-runtime")}


def nbgrader(course: Path, *args, check=True):
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=_env(), capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def _cells(nb):
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}


GRAM_OK = "b, c, h, w = features.shape\n    f = features.reshape(b, c, h * w)\n    return f @ f.transpose(1, 2) / (c * h * w)"
STYLE_LAST_LAYER_ONLY = ("for layer, target in target_grams.items():\n"
                         "        loss = 0.25 * (gram_matrix(features[layer]) - target.detach()).pow(2).sum() / len(target_grams)\n"
                         "    return loss")
FORGERY = ("\n\n# the student tries to forge the grade\n"
           "checks.check_style_loss = lambda *a, **k: True\n"
           "checks.hidden_test = lambda *a, **k: True\n"
           "print('style_loss: PASSED ✓')")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("class")
    subprocess.run([sys.executable, str(REPO / "tools" / "classroom.py"), "init", str(course), "--assignments",
                    ASSIGNMENT], check=True, env=_env(), capture_output=True)
    nbgrader(course, "db", "student", "add", "alice")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(release, as_version=4)
    cells = _cells(nb)
    cells["gram_matrix"].source = cells["gram_matrix"].source.replace(
        '# YOUR CODE HERE\n    raise NotImplementedError("your code here")', GRAM_OK)
    cells["style_loss"].source = cells["style_loss"].source.replace(
        '# YOUR CODE HERE\n    raise NotImplementedError("your code here")', STYLE_LAST_LAYER_ONLY) + FORGERY
    cells["q_gram_layout"].source = "**Your answer:**\n\nThe sum over positions forgets where each feature fired."
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "check_style_loss"]
    submitted = course / "submitted" / "alice" / ASSIGNMENT
    submitted.mkdir(parents=True)
    nbformat.write(nb, submitted / f"{ASSIGNMENT}.ipynb")
    nbgrader(course, "autograde", ASSIGNMENT)
    return course


def test_the_release_has_no_solutions_hidden_tests_or_model_answers(course):
    text = (course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    source = (course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    assert "BEGIN HIDDEN TESTS" in source and "A sum does not" in source      # the instructor's version has them
    for leaked in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "hidden_test", "f @ f.transpose", "A sum does not"):
        assert leaked not in text, leaked
    nb = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    cells = _cells(nb)
    assert cells["check_gram_matrix"].metadata["nbgrader"]["points"] == 2 and cells["check_gram_matrix"].metadata["nbgrader"]["locked"]
    assert "raise NotImplementedError" in cells["gram_matrix"].source
    assert "_Your answer here._" in cells["q_gram_layout"].source


def test_autograde_scores_what_works_and_ignores_forgery(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission(ASSIGNMENT, "alice")
        grades = {g.name: g for nb in sub.notebooks for g in nb.grades}
        assert (grades["check_gram_matrix"].auto_score, grades["check_gram_matrix"].max_score) == (2.0, 2.0)
        # the check cell was deleted and the checks patched in the kernel: the cell is put back and graded here
        assert (grades["check_style_loss"].auto_score, grades["check_style_loss"].max_score) == (0.0, 3.0)
        assert grades["q_gram_layout"].needs_manual_grade and grades["q_gram_layout"].max_score == 2.0
        assert sub.score == 2.0 and sub.max_score == 7.0
    graded = nbformat.read(course / "autograded" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    cell = _cells(graded)["check_style_loss"]
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert "added back by nbgrader" in cell.source
    assert "[grader] style_loss: FAILED" in text and "only the last layer counts" in text     # the grader's own verdict and hint
    assert any(o.output_type == "error" for o in cell.outputs)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_formgrader_manual_grade_and_gradebook_export(course):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(course / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser", "--ip",
                               "127.0.0.1", "--port", str(port), "--ServerApp.port_retries=0",
                               "--IdentityProvider.token=", "--ServerApp.password=",
                               "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={course}"],
                              cwd=course, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assignments = _request(f"{url}/formgrader/api/assignments")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((course / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        assert [a["name"] for a in assignments] == [ASSIGNMENT]
        subs = _request(f"{url}/formgrader/api/submissions/{ASSIGNMENT}")
        alice = next(s for s in subs if s["student"] == "alice")
        assert (alice["score"], alice["max_score"], alice["needs_manual_grade"]) == (2.0, 7.0, True)
        notebooks = _request(f"{url}/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}")
        grades = _request(f"{url}/formgrader/api/grades?submission_id={notebooks[0]['id']}")
        written = next(g for g in grades if g["name"] == "q_gram_layout")
        assert _request(f"{url}/formgrader/api/grade/{written['id']}", "PUT", {"manual_score": 1.5})["manual_score"] == 1.5
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    nbgrader(course, "export")
    rows = list(csv.DictReader(open(course / "grades.csv")))
    row = next(r for r in rows if r["student_id"] == "alice" and r["assignment"] == ASSIGNMENT)
    assert float(row["raw_score"]) == 3.5 and float(row["max_score"]) == 7.0


def test_classroom_init_copies_every_graded_notebook(tmp_path):
    from nstedu.checks.manifest import ASSIGNMENTS

    subprocess.run([sys.executable, str(REPO / "tools" / "classroom.py"), "init", str(tmp_path)], check=True,
                   env=_env(), capture_output=True)
    assert (tmp_path / "nbgrader_config.py").is_file()
    assert sorted(p.parent.name for p in (tmp_path / "source").glob("*/*.ipynb")) == sorted(ASSIGNMENTS)
    assert shutil.which("nbgrader", path=str(BIN))


def _submit(course: Path, student: str, edit=None) -> str:
    """``student`` hands in the release (changed by ``edit(cells)`` if given); autograde it; nbgrader's log."""
    nbgrader(course, "db", "student", "add", student)
    nb = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    if edit:
        edit(_cells(nb))
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
    proc = nbgrader(course, "autograde", ASSIGNMENT, "--student", student)
    return proc.stdout + proc.stderr


def test_an_untouched_release_autogrades_without_a_checksum_warning(course):
    """(After the formgrader test: that one grades the first submitted notebook, alice's.)
    nbgrader stores a locked cell's checksum *with* its hidden tests, and the release strips them, so its own
    OverwriteCells warns "checksum … has changed!" for every untouched cell with hidden tests (nbgrader #1961);
    the course's OverwriteCellsKeepingHiddenTests restores them first. A real change to a locked cell still warns."""
    log = _submit(course, "bob")
    assert "Sanitizing" in log and "has changed" not in log, log[-3000:]
    graded = _cells(nbformat.read(course / "autograded" / "bob" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4))
    assert "BEGIN HIDDEN TESTS" in graded["check_gram_matrix"].source       # the hidden tests ran

    def tamper(cells):
        cells["check_gram_matrix"].source = cells["check_gram_matrix"].source.replace(
            "checks.check_gram_matrix(gram_matrix)", "print('gram_matrix: PASSED')")
    log = _submit(course, "carol", tamper)
    assert "Attribute 'checksum' for cell check_gram_matrix has changed" in log, log[-3000:]
    assert "check_style_loss has changed" not in log
    graded = _cells(nbformat.read(course / "autograded" / "carol" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4))
    assert "checks.check_gram_matrix(gram_matrix)" in graded["check_gram_matrix"].source   # put back by nbgrader
