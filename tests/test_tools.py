"""Course tooling: tools/run_notebooks.py runs a notebook in full or quick mode, times it and writes the full-mode
reference figures; tools/build_site.py lays out the book (lessons and exercises, never solutions; no image from
another host)."""
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import build_site  # noqa: E402
import run_notebooks  # noqa: E402

CELLS = ["import matplotlib.pyplot as plt\nfrom nstedu.env import quick_mode\n"
         "from nstedu.plotting import full_mode_reference, reference_action",
         "fig = plt.figure(figsize=(4, 2)); plt.plot([0, 1], [1, 0]); print('quick' if quick_mode() else 'full')\n"
         "print('reference:', reference_action('zz_tool_test'))\nfull_mode_reference('zz_tool_test', fig, 'a test')",
         # a shipped reference, the call as the cell's last expression (as in the lessons): quick mode shows it
         "fig = plt.figure(figsize=(4, 2)); plt.plot([0, 1], [0, 1])\nfull_mode_reference('00_loss_curves', fig)"]


def _notebook(path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


def _text(nb):
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
def test_full_mode_run_writes_references_and_quick_mode_shows_where_they_are_missing(tmp_path, capsys):
    path = _notebook(tmp_path / "demo.ipynb")
    refs = tmp_path / "refs"
    nb, seconds, error = run_notebooks.execute(path, quick=False, timeout=300, write_references=refs)
    assert error == "" and seconds > 0
    assert "full" in _text(nb) and "reference: written" in _text(nb)
    assert (refs / "zz_tool_test.jpg").stat().st_size > 1000 and (refs / "index.json").is_file()
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))   # inline figures
    assert not any(o.output_type == "execute_result" for c in nb.cells for o in c.get("outputs", []))
    nb, _, error = run_notebooks.execute(path, quick=True, timeout=300)
    assert error == "" and "reference: missing" in _text(nb) and "not generated yet" in _text(nb)
    shown = nb.cells[2].outputs
    assert sum("image/png" in o.get("data", {}) for o in shown) == 2             # the quick figure and the reference
    results = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "execute_result"]
    assert results == [], f"a reference cell shows a stray value: {results}"    # was 'shown' under every figure
    table = run_notebooks.table([("demo.ipynb", 90.0, ""), ("bad.ipynb", 30.0, "ZeroDivisionError")], quick=True)
    assert "| `demo.ipynb` | 1.5 | ok |" in table and "error: ZeroDivisionError" in table and "| **2.0** |" in table


def test_the_book_has_every_lesson_and_exercise_and_no_solution(tmp_path):
    build_site.write_book_files(tmp_path, True, run_notebooks.LESSONS, build_site.EXERCISES)
    toc = (tmp_path / "_toc.yml").read_text()
    assert all(f"notebooks/{p.stem}" in toc for p in run_notebooks.LESSONS)
    assert all(f"exercises/{p.stem}" in toc for p in build_site.EXERCISES) and "solutions" not in toc
    assert "quick mode" in (tmp_path / "intro.md").read_text() and (tmp_path / "_extra" / "mathjax" / "tex-svg.js").is_file()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# T\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.x/nb.ipynb)")])
    build_site._offline(nb)
    assert nb.cells[0].source == "# T\n\n[Open in Colab](https://colab.x/nb.ipynb)"


def test_environment_sets_unsets_and_restores_even_after_an_error(monkeypatch):
    """nstedu.env.environment (used by the notebook runner and the grader): inside, the given values (None =
    unset); after, exactly what was there before — also when the block raises."""
    import os

    from nstedu.env import environment

    monkeypatch.setenv("NSTEDU_T_KEEP", "old")
    monkeypatch.setenv("NSTEDU_T_DROP", "there")
    monkeypatch.delenv("NSTEDU_T_NEW", raising=False)
    with pytest.raises(RuntimeError):
        with environment(NSTEDU_T_KEEP="new", NSTEDU_T_DROP=None, NSTEDU_T_NEW="1"):
            assert (os.environ["NSTEDU_T_KEEP"], os.environ.get("NSTEDU_T_DROP"), os.environ["NSTEDU_T_NEW"]) == ("new", None, "1")
            raise RuntimeError("inside")
    assert (os.environ["NSTEDU_T_KEEP"], os.environ["NSTEDU_T_DROP"], os.environ.get("NSTEDU_T_NEW")) == ("old", "there", None)
