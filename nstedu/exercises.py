"""Exercise notebooks generated from solution notebooks (the nbgrader convention).

In ``solutions/*.ipynb`` the part a learner writes is marked inside a function::

    def gram_matrix(features):
        ### BEGIN SOLUTION
        b, c, h, w = features.shape
        ...
        ### END SOLUTION

``python -m nstedu.exercises generate solutions exercises`` writes ``exercises/*.ipynb`` with every marked block
replaced by a stub (same indentation)::

        # YOUR CODE HERE
        raise NotImplementedError("gram_matrix: your code here")

and all outputs cleared; nbgrader's hidden tests (``### BEGIN HIDDEN TESTS`` … ``### END HIDDEN TESTS`` in a check
cell) are removed, and a written answer in a markdown cell becomes "_Your answer here._". The nbgrader cell
metadata (grade ids, points) is kept, as ``nbgrader generate_assignment`` keeps it.
``python -m nstedu.exercises check solutions exercises`` exits with status 1 when the
committed exercises differ from what generation gives (``make exercises`` fixes that). Exercises are never
edited by hand.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
ANSWER_STUB = "_Your answer here._"
NOTE_ID = "generated-exercise-note"
NOTE = ("> **Exercise notebook.** Fill in the cells marked `# YOUR CODE HERE` (remove the `raise "
        "NotImplementedError(...)` line). The check under each exercise tells you how you are doing. "
        "This file is generated from `solutions/{name}` by `make exercises`: do not edit it by hand.")
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)\s*\(")


class ExerciseError(ValueError):
    """A solution notebook whose markers cannot be turned into an exercise (names the notebook and cell)."""


def _enclosing_function(lines: list[str], index: int, indent: int) -> str | None:
    for line in reversed(lines[:index]):
        m = _DEF.match(line)
        if m and len(m.group(1)) < indent:
            return m.group(2)
    return None


def strip_solutions(source: str, where: str = "cell", markdown: bool = False) -> str:
    """Replace each ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block of ``source`` by a stub."""
    lines = source.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if BEGIN not in line:
            if END in line:
                raise ExerciseError(f"{where}: '{END}' without a '{BEGIN}' before it")
            out.append(line)
            i += 1
            continue
        indent_str = line[: len(line) - len(line.lstrip())]
        j = i + 1
        while j < len(lines) and END not in lines[j]:
            if BEGIN in lines[j]:
                raise ExerciseError(f"{where}: '{BEGIN}' inside another solution block")
            j += 1
        if j == len(lines):
            raise ExerciseError(f"{where}: '{BEGIN}' without a matching '{END}'")
        if markdown:
            out.append(indent_str + ANSWER_STUB)
        else:
            name = _enclosing_function(lines, i, len(indent_str))
            if name is None:
                raise ExerciseError(f"{where}: solution block outside a function; the stub's NotImplementedError "
                                    "would stop the exercise notebook (put the block inside a def)")
            out += [f"{indent_str}# YOUR CODE HERE",
                    f'{indent_str}raise NotImplementedError("{name}: your code here")']
        i = j + 1
    return "\n".join(out)


def strip_hidden_tests(source: str, where: str = "cell") -> str:
    """Remove each ``### BEGIN HIDDEN TESTS`` … ``### END HIDDEN TESTS`` block (markers included), as nbgrader does."""
    out, inside, removed = [], False, False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            if inside:
                raise ExerciseError(f"{where}: '{HIDDEN_BEGIN}' inside another hidden-tests block")
            inside = removed = True
        elif HIDDEN_END in line:
            if not inside:
                raise ExerciseError(f"{where}: '{HIDDEN_END}' without a '{HIDDEN_BEGIN}' before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ExerciseError(f"{where}: '{HIDDEN_BEGIN}' without a matching '{HIDDEN_END}'")
    return "\n".join(out).rstrip("\n") if removed else source


def make_exercise(nb, name: str = "solution"):
    """A new notebook: ``nb`` with solutions stubbed, outputs cleared and a generated-file note on top."""
    import nbformat  # optional (the notebooks/test extras): only the instructor tools need it

    ex = copy.deepcopy(nb)
    for k, cell in enumerate(ex.cells):
        where = f"{name}, cell {k + 1}"
        if cell.cell_type == "code":
            cell.source = strip_solutions(strip_hidden_tests(cell.source, where), where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = strip_solutions(cell.source, where, markdown=True)
    note = nbformat.v4.new_markdown_cell(NOTE.format(name=name))
    note.id = NOTE_ID
    ex.cells.insert(0, note)
    return ex


def render(nb) -> str:
    """The exact text written for a notebook (stable, so files can be compared)."""
    import nbformat  # optional (the notebooks/test extras): only the instructor tools need it

    return nbformat.writes(nb, version=4).rstrip("\n") + "\n"


def expected(solutions: Path) -> dict[str, str]:
    """``{file name: exercise text}`` for every ``*.ipynb`` in ``solutions``."""
    import nbformat  # optional (the notebooks/test extras): only the instructor tools need it

    out = {}
    for path in sorted(Path(solutions).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out[path.name] = render(make_exercise(nb, path.name))
    return out


def generate(solutions, exercises) -> list[Path]:
    """Write the exercise notebooks; remove stale ``*.ipynb`` in ``exercises`` without a solution. Returns written paths."""
    exercises = Path(exercises)
    exercises.mkdir(parents=True, exist_ok=True)
    want = expected(Path(solutions))
    for stale in exercises.glob("*.ipynb"):
        if stale.name not in want:
            stale.unlink()
    written = []
    for name, text in want.items():
        path = exercises / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def out_of_sync(solutions, exercises) -> list[str]:
    """One line per problem: an exercise missing, differing from its solution's stubs, or without a solution."""
    exercises = Path(exercises)
    want = expected(Path(solutions))
    problems = []
    for name, text in want.items():
        path = exercises / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what solutions/{name} generates")
    for path in sorted(exercises.glob("*.ipynb")):
        if path.name not in want:
            problems.append(f"{path}: no matching solution notebook")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nstedu.exercises", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("generate", "check"))
    p.add_argument("solutions", type=Path, help="folder of solution notebooks")
    p.add_argument("exercises", type=Path, help="folder of generated exercise notebooks")
    args = p.parse_args(argv)
    if not args.solutions.is_dir():
        print(f"{args.solutions}: not a folder of solution notebooks", file=sys.stderr)
        return 2
    try:
        if args.command == "generate":
            for path in generate(args.solutions, args.exercises):
                print(f"wrote {path}")
            return 0
        problems = out_of_sync(args.solutions, args.exercises)
    except ExerciseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if problems:
        print("exercises are out of sync with solutions (run `make exercises`):", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{args.exercises}: in sync with {args.solutions}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
