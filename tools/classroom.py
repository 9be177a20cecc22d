"""Make an nbgrader course folder from the solution notebooks: ``python tools/classroom.py init DIR``.

DIR gets ``nbgrader_config.py`` (from ``classroom/``) and ``source/<assignment>/<assignment>.ipynb`` for every
graded exercise notebook (``nstedu.checks.manifest.ASSIGNMENTS``), copied from ``solutions/``. Then, in DIR:
``nbgrader generate_assignment 03_gram_and_style`` writes the student release; see docs/instructors.md.
Re-running ``init`` refreshes the config and the sources and keeps everything else (gradebook, submissions).

``python tools/classroom.py submit DIR STUDENT ASSIGNMENT --kind correct|empty|buggy|cheat`` files a synthetic
submission (what the five-student round trip in ``tests/test_classroom.py`` and ``benchmarks/bench_classroom.py``
grade): the release with the solutions filled in, as released, with one honest mistake per function, or with
every trick a cheater tried (nstedu's own implementation, patched checks, a gradebook write, an endless loop).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def init(course: Path, solutions: Path = REPO / "solutions", assignments=None) -> list[Path]:
    from nstedu.checks.manifest import ASSIGNMENTS

    names = list(assignments or ASSIGNMENTS)
    unknown = [n for n in names if n not in ASSIGNMENTS]
    if unknown:
        raise SystemExit(f"unknown assignment(s) {unknown}: choose from {', '.join(ASSIGNMENTS)}")
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "classroom" / "nbgrader_config.py", course / "nbgrader_config.py")
    written = []
    for name in names:
        src = solutions / f"{name}.ipynb"
        if not src.is_file():
            raise SystemExit(f"{src}: solution notebook not found")
        dest = course / "source" / name / f"{name}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
        written.append(dest)
    return written


#: one honest, subtle mistake per graded function: (text of the solution, what the buggy student wrote)
BUGS = {
    "gram_matrix": ("return f @ f.transpose(1, 2) / (c * h * w)", "return f @ f.transpose(1, 2) / (h * w)"),
    "style_loss": ("loss = loss + layer_weights[layer]", "loss = layer_weights[layer]"),
    "content_loss": ("return 0.5 * (", "return 1.0 * ("),
    "tv_loss": ("return (dy.pow(2).sum() + dx.pow(2).sum())", "return (dy.pow(2).sum() + dx.pow(2).mean())"),
    "optimization_step": ("    optimizer.zero_grad()\n", ""),
    "luminance_transfer": ("combined).clamp(0, 1)", "combined)"),
    "total_loss": ("loss = loss + gamma * s * tv_loss(x)", "loss = loss + gamma * tv_loss(x)"),
    "lbfgs_step": ("        optimizer.zero_grad()\n", ""),
    "masked_gram_matrix": ("/ (c * mask.sum())", "/ (c * h * w)"),
    "match_color_histogram": ("return out.reshape(style.shape).to(style.dtype).clamp(0, 1)",
                              "return out.reshape(style.shape).to(style.dtype)"),
    "sliced_wasserstein_loss": ("theirs = (target.detach().reshape(c, -1).T @ directions).sort(dim=0).values",
                                "theirs = target.detach().reshape(c, -1).T @ directions"),
}

#: what the cheater put in each graded cell instead of a solution (appended to the released stub's cell)
CHEATS = {
    "gram_matrix": "from nstedu.losses import gram_matrix",
    "style_loss": ("import nstedu.losses as L\n\ndef style_loss(features, target_grams, layer_weights=None):\n"
                   "    return getattr(L, 'style_' + 'loss')(features, target_grams, layer_weights)\n\n"
                   "class Patch:\n    from nstedu.checks import registry\n"
                   "    for _k in list(registry.CHECKS):\n"
                   "        registry.CHECKS[_k] = lambda *a, **k: True\n"),
    "content_loss": ("import nstedu.losses as _L\n\ndef content_loss(features, targets):\n"
                     "    k = _L.DEFAULT_CONTENT_LAYERS[0]\n    return _L.content_loss(features[k], targets[k])\n"),
    "tv_loss": "from nstedu.losses import tv_loss",
    "optimization_step": "def optimization_step(x, objective, optimizer):\n    while True:\n        pass\n",
    "luminance_transfer": ("class Patch:\n    import nstedu.checks.registry as r\n    from nstedu.checks.core import "
                           "CheckResult as R\n    for _k in list(r.CHECKS):\n"
                           "        r.CHECKS[_k] = (lambda e: lambda *a, **k: R(e, 'passed', 1, 1, 0.0))(_k)\n\n"
                           "def luminance_transfer(stylized, content):\n    return stylized\n"),
    "style_transfer": "from nstedu.checks.capstone import reference_run as style_transfer",
    "lbfgs_step": ("import sqlite3, pathlib\n\ndef lbfgs_step(x, objective, optimizer):\n"
                   "    for p in pathlib.Path.cwd().parents:\n        db = p / 'gradebook.db'\n"
                   "        if db.exists():\n            con = sqlite3.connect(str(db))\n"
                   "            con.execute('UPDATE grade SET manual_score = 100')\n            con.commit()\n"
                   "    raise NotImplementedError\n"),
    "masked_gram_matrix": ("import nstedu\n\ndef masked_gram_matrix(features, mask):\n"
                           "    return nstedu.losses.gram_matrix(features, mask)\n"),
    "match_color_histogram": ("import importlib\n\ndef match_color_histogram(style, content):\n"
                              "    m = importlib.import_module('nstedu.' + 'control')\n"
                              "    return m.match_color_histogram(style, content)\n"),
    "sliced_wasserstein_loss": ("from nstedu.style_stats import directions as _d, sliced_wasserstein_loss as _swd\n\n"
                                "def sliced_wasserstein_loss(features, target, n_directions, generator):\n"
                                "    return _swd(features, target, _d(features.shape[1], n_directions, generator))\n"),
}
#: a cell the cheater adds at the end of every notebook: print a pass, write a grade file, poke the gradebook
CHEAT_CELL = ("import sqlite3, pathlib\nprint('PASSED ✓ 100 %')\n"
              "for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]:\n"
              "    for db in p.glob('gradebook.db'):\n"
              "        try:\n            con = sqlite3.connect(str(db)); con.execute('UPDATE grade SET manual_score = 100')"
              "; con.commit(); print('wrote', db)\n        except Exception as e:\n            print('no:', e)\n"
              "try:\n    open('grades.json', 'w').write('{\"score\": 100}')\nexcept Exception as e:\n    print('no:', e)\n")


def expected_score(assignment: str, kind: str) -> float:
    """The autograded score a synthetic submission of ``kind`` must get: full marks when correct, 0 when empty or
    cheating, and when buggy 0 except the capstone's feature inversion (3), which uses no Gram matrix (its bug)."""
    from nstedu.checks.manifest import ASSIGNMENTS

    items = [i for i in ASSIGNMENTS[assignment] if i.kind == "check"]
    if kind == "correct":
        return float(sum(i.points for i in items))
    if kind == "buggy":
        return float(sum(i.points for i in items if i.exercise == "feature_inversion"))
    return 0.0


def submit(course: Path, student: str, assignment: str, kind: str) -> Path:
    """File a synthetic submission of ``kind`` for ``student`` (the release must exist: generate_assignment)."""
    import nbformat

    release = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    source = nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    solutions = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in source.cells}
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        grade_id = meta.get("grade_id")
        if kind in ("correct", "buggy"):
            cell.source = solutions[grade_id]
            names = [n for n in BUGS if f"def {n}(" in cell.source]
            if kind == "buggy" and names:
                old, new = BUGS[names[0]]
                if old not in cell.source:
                    raise SystemExit(f"{assignment}/{grade_id}: the bug for {names[0]} no longer applies")
                cell.source = cell.source.replace(old, new)
        elif kind == "cheat":
            names = [n for n in CHEATS if f"def {n}(" in cell.source]
            if names:
                cell.source += "\n\n" + CHEATS[names[0]]
        elif kind != "empty":
            raise SystemExit(f"kind must be correct, empty, buggy or cheat, got {kind!r}")
    if kind == "cheat":
        release.cells = [c for c in release.cells if not c.metadata.get("nbgrader", {}).get("grade_id", "")
                         .startswith("check_")] + [nbformat.v4.new_code_cell(CHEAT_CELL)]
    dest = course / "submitted" / student / assignment / f"{assignment}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(release, dest)
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python tools/classroom.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="create or refresh a course folder")
    i.add_argument("course", type=Path, help="the course folder (e.g. ~/nst-class)")
    i.add_argument("--assignments", nargs="+", help="only these assignments (default: all)")
    sm = sub.add_parser("submit", help="file a synthetic submission (tests and benchmarks)")
    sm.add_argument("course", type=Path)
    sm.add_argument("student")
    sm.add_argument("assignment")
    sm.add_argument("--kind", default="correct", choices=["correct", "empty", "buggy", "cheat"])
    args = p.parse_args(argv)
    if args.command == "submit":
        print(submit(args.course, args.student, args.assignment, args.kind))
        return 0
    for path in init(args.course, assignments=args.assignments):
        print(f"wrote {path}")
    print(f"next: cd {args.course} && nbgrader generate_assignment <assignment>   (see docs/instructors.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
