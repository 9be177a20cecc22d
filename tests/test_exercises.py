"""Exercise notebooks are generated from the solutions: stubs keep the indentation, the committed exercises are
exactly what generation gives, and being out of sync is detected. Course notebooks are committed without outputs."""
import json
from pathlib import Path

import nbformat
import pytest

from nstedu import checks, exercises as E

ROOT = Path(__file__).resolve().parents[1]

SOLUTION = '''import torch

def outer(x):
    y = x + 1
    ### BEGIN SOLUTION
    z = y * 2
    return z
    ### END SOLUTION

class Thing:
    def method(self):
        if True:
            ### BEGIN SOLUTION
            return 42
            ### END SOLUTION'''


def test_strip_solutions_keeps_indentation_and_names_the_function():
    out = E.strip_solutions(SOLUTION)
    assert out.split("\n") == [
        "import torch", "", "def outer(x):", "    y = x + 1",
        "    # YOUR CODE HERE", '    raise NotImplementedError("outer: your code here")', "",
        "class Thing:", "    def method(self):", "        if True:",
        "            # YOUR CODE HERE", '            raise NotImplementedError("method: your code here")']
    namespace = {}
    exec(compile(out, "exercise", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="outer: your code here"):
        namespace["outer"](1)


def test_hidden_tests_are_removed_like_nbgrader_does():
    src = "checks.check_x(f)\n### BEGIN HIDDEN TESTS\nassert checks.hidden_test('x', f)\n### END HIDDEN TESTS"
    assert E.strip_hidden_tests(src) == "checks.check_x(f)"
    assert E.strip_hidden_tests("no tests here\n") == "no tests here\n"
    with pytest.raises(E.ExerciseError, match="without a matching"):
        E.strip_hidden_tests("### BEGIN HIDDEN TESTS\nassert 1")
    with pytest.raises(E.ExerciseError, match="without a '### BEGIN HIDDEN"):
        E.strip_hidden_tests("assert 1\n### END HIDDEN TESTS")


def test_markdown_answers_are_replaced():
    md = "Explain:\n### BEGIN SOLUTION\nBecause Grams forget positions.\n### END SOLUTION\nDone."
    assert E.strip_solutions(md, markdown=True) == f"Explain:\n{E.ANSWER_STUB}\nDone."


@pytest.mark.parametrize("source, message", [
    ("def f():\n    ### BEGIN SOLUTION\n    return 1", "without a matching"),
    ("def f():\n    return 1\n    ### END SOLUTION", "without a '### BEGIN"),
    ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    ### END SOLUTION", "inside another"),
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "outside a function"),
])
def test_malformed_markers_are_errors(source, message):
    with pytest.raises(E.ExerciseError, match=message):
        E.strip_solutions(source, "nb.ipynb, cell 2")


def _solution_notebook(path: Path, body: str = "def f(x):\n    ### BEGIN SOLUTION\n    return x * 2\n    ### END SOLUTION"):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell(body)])
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="old output")]
    nb.cells[1].execution_count = 7
    nbformat.write(nb, path)


def test_generation_round_trip_and_out_of_sync_detection(tmp_path, capsys):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    _solution_notebook(sol / "01_a.ipynb")
    _solution_notebook(sol / "02_b.ipynb", "def g():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION")
    assert E.main(["generate", str(sol), str(ex)]) == 0
    assert sorted(p.name for p in ex.glob("*.ipynb")) == ["01_a.ipynb", "02_b.ipynb"]
    nb = nbformat.read(ex / "01_a.ipynb", as_version=4)
    assert nb.cells[0].id == E.NOTE_ID and "solutions/01_a.ipynb" in nb.cells[0].source
    code = nb.cells[2]
    assert "return x * 2" not in code.source and 'raise NotImplementedError("f: your code here")' in code.source
    assert code.outputs == [] and code.execution_count is None
    assert E.out_of_sync(sol, ex) == []
    assert E.main(["check", str(sol), str(ex)]) == 0
    # idempotent: generating again changes nothing
    before = (ex / "01_a.ipynb").read_text()
    E.generate(sol, ex)
    assert (ex / "01_a.ipynb").read_text() == before

    # a solution edited after generation -> out of sync
    _solution_notebook(sol / "01_a.ipynb", "def f(x):\n    ### BEGIN SOLUTION\n    return x * 3\n    ### END SOLUTION\n# new line")
    (ex / "02_b.ipynb").unlink()
    (ex / "99_stale.ipynb").write_text(before)
    problems = E.out_of_sync(sol, ex)
    assert any("01_a.ipynb: differs" in p for p in problems)
    assert any("02_b.ipynb: missing" in p for p in problems)
    assert any("99_stale.ipynb: no matching solution" in p for p in problems)
    capsys.readouterr()
    assert E.main(["check", str(sol), str(ex)]) == 1
    assert "make exercises" in capsys.readouterr().err
    E.generate(sol, ex)  # fixes everything, removes the stale file
    assert E.out_of_sync(sol, ex) == [] and not (ex / "99_stale.ipynb").exists()


def test_a_hand_edited_exercise_is_detected(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    _solution_notebook(sol / "01_a.ipynb")
    E.generate(sol, ex)
    nb = nbformat.read(ex / "01_a.ipynb", as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("# YOUR CODE HERE", "return x * 2")
    nbformat.write(nb, ex / "01_a.ipynb")
    assert E.out_of_sync(sol, ex) == [f"{ex / '01_a.ipynb'}: differs from what solutions/01_a.ipynb generates"]


def test_committed_exercises_are_what_generation_produces():
    assert sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb")), "no solution notebooks"
    assert E.out_of_sync(ROOT / "solutions", ROOT / "exercises") == []


def test_every_exercise_has_a_check_and_no_solution_leaks():
    called = set()
    for path in sorted((ROOT / "exercises").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert E.BEGIN not in text and E.END not in text and "HIDDEN TESTS" not in text and "hidden_test" not in text, path
        assert "raise NotImplementedError(" in text, path
        called |= {m.group(1) for m in checks._CALL.finditer(text)}
    assert called == set(checks.CHECKS), called


def _grade_cells(nb):
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            out.append((meta["grade_id"], float(meta["points"]), cell.cell_type, meta.get("locked", False)))
    return out


def test_solution_notebooks_are_nbgrader_notebooks_matching_the_manifest():
    """Every graded item of nstedu.checks.manifest is an nbgrader grade cell with the same points, in order: check
    cells are locked code cells whose hidden test calls the same exercise; written answers are markdown cells with a
    model answer between solution markers."""
    from nstedu.checks.manifest import ASSIGNMENTS

    assert sorted(ASSIGNMENTS) == sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
    for name, items in ASSIGNMENTS.items():
        nb = nbformat.read(ROOT / "solutions" / f"{name}.ipynb", as_version=4)
        cells = _grade_cells(nb)
        assert [(c[0], c[1]) for c in cells] == [(i.grade_id, float(i.points)) for i in items], name
        ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
        assert len(ids) == len(set(ids)), f"{name}: duplicate grade ids"
        by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
        for item in items:
            cell = by_id[item.grade_id]
            if item.kind == "check":
                assert cell.cell_type == "code" and cell.metadata["nbgrader"]["locked"]
                assert f'checks.hidden_test("{item.exercise}", {checks.FUNCTION[item.exercise]})' in cell.source
                assert f"check_{item.exercise}(" in cell.source.split(E.HIDDEN_BEGIN)[0]
            else:
                assert cell.cell_type == "markdown" and cell.metadata["nbgrader"]["solution"]
                answer = cell.source.split(E.BEGIN)[1].split(E.END)[0]
                assert len(answer.split()) > 40, f"{name}: model answer for {item.grade_id} is missing or too short"
        solutions = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"]
        assert solutions and all(E.BEGIN in c.source for c in solutions), name




NOTEBOOKS = [f"{d}/{p.name}" for d in ("notebooks", "solutions", "exercises") for p in sorted((ROOT / d).glob("*.ipynb"))]


def test_every_notebook_is_checked():
    assert len([p for p in NOTEBOOKS if p.startswith("notebooks/")]) >= 9      # 00 … 08 at least


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(ROOT / path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), f"{path} has outputs"
    ids = [c.get("id") for c in json.loads((ROOT / path).read_text(encoding="utf-8"))["cells"]]
    assert len(set(ids)) == len(ids), f"{path} repeats cell ids (nbformat renames them on every read)"


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebooks_start_with_the_colab_cell(path):
    nb = nbformat.read(ROOT / path, as_version=4)
    first = [c for c in nb.cells if c.cell_type == "code"][0].source
    assert '"google.colab" in sys.modules' in first and "%pip install" in first and "import nstedu" in first
    assert "torch" not in first.split("%pip install")[1].split("\n")[0]  # never (re)install torch on Colab
