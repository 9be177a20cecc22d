"""Grading that cannot be forged or silently skip: the grader takes only *definitions* out of a notebook, runs every
expected check in its own process (or, for nbgrader's hidden tests, in a fresh one), and counts every expected item —
a deleted check cell, a printed "PASSED", a written grade file or a patched ``checks`` module change nothing."""
import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nstedu import checks
from nstedu.checks import isolate
from nstedu.checks.manifest import ASSIGNMENTS

nbformat = pytest.importorskip("nbformat")
REPO = Path(__file__).resolve().parents[1]

SETUP = "import sys\nif 'google.colab' in sys.modules:\n    %pip install -q nstedu\nimport torch\nfrom nstedu import checks"
GRAM_OK = '''def gram_matrix(features):
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)'''
STYLE_4X = '''def style_loss(features, target_grams, layer_weights=None):
    w = layer_weights or {k: 1 / len(target_grams) for k in target_grams}
    return sum(w[k] * ((gram_matrix(features[k]) - t.detach()) ** 2).sum() for k, t in target_grams.items())'''
FORGERY = '''checks.check_style_loss = lambda *a, **k: True
import nstedu.checks.isolate
nstedu.checks.isolate.run_guarded = lambda *a, **k: True
print("style_loss: PASSED ✓ — 4/4 random inputs")
open("grades.jsonl", "w").write('{"exercise": "style_loss", "status": "passed"}\\n')'''


def notebook(path: Path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


def test_grade_counts_every_expected_item_and_ignores_forgery(tmp_path, capsys):
    # gram_matrix right; style_loss wrong, its check cell deleted, the checks patched, "PASSED" printed, a grade file
    path = notebook(tmp_path / "03_gram_and_style.ipynb", SETUP, GRAM_OK, "checks.check_gram_matrix(gram_matrix)",
                    STYLE_4X, FORGERY, "1 / 0")
    report = checks.grade_notebook(path, execute=True)
    items = {r["grade_id"]: r for r in report["items"]}
    assert [r["grade_id"] for r in report["items"]] == [i.grade_id for i in ASSIGNMENTS["03_gram_and_style"]]
    assert (items["check_gram_matrix"]["status"], items["check_gram_matrix"]["points"]) == ("passed", 2.0)
    assert (items["check_style_loss"]["status"], items["check_style_loss"]["points"]) == ("failed", 0.0)
    assert "4×" in items["check_style_loss"]["hint"]
    assert items["q_gram_layout"]["status"] == "graded by hand"
    assert (report["score"], report["auto_max_score"], report["max_score"]) == (2.0, 5.0, 7.0)
    assert any("ZeroDivisionError" in e for e in report["errors"])      # executed: cell errors are reported
    assert checks.check_style_loss is not None and checks.check_style_loss.__name__ == "check_style_loss"


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
def test_cli_missing_function_scores_zero_and_csv_export(tmp_path, capsys):
    content_ok = ("from nstedu.losses import DEFAULT_CONTENT_LAYERS\nCONTENT_LAYER = DEFAULT_CONTENT_LAYERS[0]\n"
                  "def content_loss(features, targets):\n"
                  "    return 0.5 * (features[CONTENT_LAYER] - targets[CONTENT_LAYER].detach()).pow(2).sum()")
    path = notebook(tmp_path / "04_content_and_tv_losses.ipynb", SETUP, content_ok)   # no tv_loss at all
    gradebook = tmp_path / "grades.csv"
    assert checks.main(["grade", "--no-execute", "--csv", str(gradebook), str(path)]) == 0
    out = capsys.readouterr().out
    assert "check_tv_loss" in out and "not found" in out and "total score: 2 / 4 autograded (50 %)" in out
    rows = list(csv.DictReader(open(gradebook)))
    assert [(r["grade_id"], r["status"], float(r["points"])) for r in rows] == [
        ("check_content_loss", "passed", 2.0), ("check_tv_loss", "not found", 0.0), ("q_alpha_beta", "graded by hand", 0.0)]


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
def test_cli_rejects_an_unknown_notebook_unless_told_which(tmp_path, capsys):
    path = notebook(tmp_path / "my_homework.ipynb", SETUP, GRAM_OK)
    assert checks.main(["grade", "--no-execute", str(path)]) == 2
    assert "not one of the course's exercise notebooks" in capsys.readouterr().err
    assert checks.main(["grade", "--no-execute", "--as", "03_gram_and_style", str(path)]) == 0
    assert "check_gram_matrix            passed" in capsys.readouterr().out


def test_safe_definitions_keep_definitions_and_drop_statements():
    source = textwrap.dedent('''
        import torch
        from nstedu import checks
        LAYER = "relu4_2"
        M = torch.tensor([[1.0, 2.0]])
        BAD = setattr(checks, "check_gram_matrix", None)
        checks.check_gram_matrix = None
        print("PASSED")
        %time x = 1
        @torch.no_grad()
        def f(x, k=LAYER):
            return x
        def g(x=checks.check_gram_matrix):
            return x
    ''')
    code, dropped = isolate.safe_definitions(source)
    namespace, problems = isolate.definitions_from_source(source)
    assert {"torch", "checks", "LAYER", "M", "f"} <= set(namespace) and not {"BAD", "g"} & set(namespace)
    assert "print" not in code and "check_gram_matrix = None" not in code and len(dropped) == 5
    assert checks.check_gram_matrix.__name__ == "check_gram_matrix" and problems == dropped   # nothing failed to run


def test_a_function_that_patches_the_grader_while_it_runs_fails():
    def gram_matrix(features):
        import nstedu.checks.core as core
        core.rel_error = lambda a, b: 0.0          # would make any answer "right"
        return features.sum()

    import nstedu.checks.core as core
    saved = core.rel_error
    try:
        result = checks.quietly(isolate.run_guarded, "gram_matrix", gram_matrix)
    finally:
        core.rel_error = saved
    assert result.status == "failed" and "modified" in result.hint and "rel_error" in result.hint


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
def test_hidden_test_runs_in_a_fresh_process_that_kernel_patches_cannot_reach(tmp_path):
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent('''
        import torch
        from nstedu import checks
        SCALE = 1.0
        M = torch.tensor([[1.0, 0.5], [0.25, 2.0]])

        def helper(f):
            b, c, h, w = f.shape
            return f.reshape(b, c, h * w) * SCALE

        def gram_matrix(features):
            x = helper(features)
            return x @ x.transpose(1, 2) / (x.shape[1] * x.shape[2])

        def wrong_gram(features):
            return gram_matrix(features) * 2

        checks.check_gram_matrix = lambda *a, **k: True            # patched in the "kernel"
        checks.core.rel_error = lambda a, b: 0.0
        print("RESULT", checks.hidden_test("gram_matrix", gram_matrix), checks.hidden_test("gram_matrix", wrong_gram))
        print("SOURCE", "M = torch.tensor" not in checks.isolate.source_of(gram_matrix),
              "def helper" in checks.isolate.source_of(wrong_gram))
    '''))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RESULT True False" in proc.stdout, proc.stdout[-2000:]
    assert "SOURCE True True" in proc.stdout
    assert "gram_matrix: FAILED" in proc.stdout


def test_source_of_rebuilds_constants_tensors_and_helpers():
    namespace = {"__name__": "__main__", "torch": torch, "K": "relu4_2", "W": (0.2, 0.8),
                 "T": torch.tensor([[0.299, 0.587]])}
    exec(compile("def helper(x):\n    return x * W[0]\n\ndef f(x):\n    return helper(x) @ T.T, K\n", "cell", "exec"),
         namespace)
    import linecache
    linecache.cache["cell"] = (0, None, ["def helper(x):\n", "    return x * W[0]\n", "\n", "def f(x):\n",
                                         "    return helper(x) @ T.T, K\n"], "cell")
    source = isolate.source_of(namespace["f"])
    rebuilt, problems = isolate.definitions_from_source(source)
    x = torch.rand(1, 2)
    assert problems == [] and torch.equal(rebuilt["f"](x)[0], namespace["f"](x)[0]) and rebuilt["f"](x)[1] == "relu4_2"


def test_the_hidden_seed_can_be_the_graders_own(monkeypatch):
    from nstedu.checks.grading import hidden_seed

    monkeypatch.delenv("NSTEDU_HIDDEN_SEED", raising=False)
    assert hidden_seed() == 1
    monkeypatch.setenv("NSTEDU_HIDDEN_SEED", "987654")
    assert hidden_seed() == 987654
    assert checks.quietly(checks.check_tv_loss, __import__("nstedu.losses").losses.tv_loss, seed=hidden_seed())
    monkeypatch.setenv("NSTEDU_HIDDEN_SEED", "secret")
    with pytest.raises(ValueError, match="NSTEDU_HIDDEN_SEED='secret'"):
        hidden_seed()
