"""Definitions only: what a grader may run of a learner's notebook before it checks the functions.

:func:`safe_definitions` keeps imports, ``def``/``class`` (class bodies holding only methods and plain values: a
class body runs when it is defined) and assignments of plain values — nothing that names the grader, the
interpreter or private attributes; statements such as ``checks.check_gram_matrix = ...`` or ``print("PASSED")``
are never run. :func:`definitions_from_cells` executes those definitions in a fresh namespace.
"""
from __future__ import annotations

import ast
from pathlib import Path

_BLOCKED = {"exec", "eval", "compile", "setattr", "delattr", "getattr", "globals", "locals", "vars", "__import__",
            "open", "breakpoint", "input", "exit", "quit", "checks", "sys", "builtins", "importlib", "os", "subprocess"}


# ------------------------------------------------------------------------------------ safe definitions
def _safe_expr(node) -> bool:
    """Plain values only: literals, containers, names, attributes, subscripts, arithmetic and calls of those —
    nothing that names the grader, the interpreter or private attributes."""
    allowed = (ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.Set, ast.Name, ast.Attribute, ast.Subscript, ast.Slice,
               ast.UnaryOp, ast.BinOp, ast.Call, ast.keyword, ast.Load, ast.operator, ast.unaryop, ast.Starred)
    for sub in ast.walk(node):
        if not isinstance(sub, allowed):
            return False
        if isinstance(sub, ast.Name) and sub.id in _BLOCKED:
            return False
        if isinstance(sub, ast.Attribute) and (sub.attr.startswith("_") or sub.attr in _BLOCKED):
            return False
    return True


def _safe_def(node) -> bool:
    args = node.args if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    parts = list(node.decorator_list)
    if args is not None:
        parts += [d for d in args.defaults + args.kw_defaults if d is not None]
    if isinstance(node, ast.ClassDef):
        parts += list(node.bases) + [k.value for k in node.keywords]
        if not all(_safe_class_statement(b) for b in node.body):  # a class body runs when it is defined
            return False
    return all(_safe_expr(p) for p in parts)


def _safe_class_statement(node) -> bool:
    """What a class body may hold for the grader to define it: methods, nested classes, plain values, docstrings."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return _safe_def(node)
    if isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return node.value is not None and all(isinstance(t, ast.Name) and t.id not in _BLOCKED for t in targets) \
            and _safe_expr(node.value)
    return False


def safe_definitions(source: str, where: str = "source") -> tuple[str, list[str]]:
    """The definitions of ``source`` that a grader may run, as source, and one line per statement left out."""
    lines = [ln[: len(ln) - len(ln.lstrip())] + "pass" if ln.lstrip().startswith(("%", "!")) else ln
             for ln in source.split("\n")]   # IPython magics and shell lines become `pass`
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError as e:
        return "", [f"{where}: syntax error, line {e.lineno}: {e.msg}"]
    kept, dropped = [], []
    for node in tree.body:
        ok = False
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            ok = True
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            ok = _safe_def(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            ok = node.value is not None and all(isinstance(t, ast.Name) and t.id not in _BLOCKED for t in targets) \
                and _safe_expr(node.value)
        if ok:
            kept.append(node)
        elif not isinstance(node, ast.Expr) or not isinstance(getattr(node, "value", None), ast.Constant):
            dropped.append(f"{where}, line {node.lineno}: not a definition, not run by the grader")
    return ast.unparse(ast.Module(body=kept, type_ignores=[])), dropped


def definitions_from_source(source: str, where: str = "source") -> tuple[dict, list[str]]:
    """Execute the safe definitions of ``source`` in a fresh namespace: ``(namespace, problems)``."""
    code, problems = safe_definitions(source, where)
    namespace: dict = {"__name__": "learner"}
    for node in ast.parse(code).body:   # one statement at a time: a failing import does not hide the rest
        try:
            exec(compile(ast.Module(body=[node], type_ignores=[]), where, "exec"), namespace)
        except Exception as e:
            problems.append(f"{where}, line {node.lineno}: {type(e).__name__}: {e}")
    return namespace, problems


def definitions_from_cells(sources, name: str = "notebook") -> tuple[dict, list[str]]:
    """The safe definitions of each code cell (one at a time: a cell with a syntax error does not hide the others),
    run in cell order in one fresh namespace: ``(namespace, problems)``."""
    kept, problems = [], []
    for k, source in enumerate(sources):
        code, dropped = safe_definitions(source, f"cell {k + 1}")
        if code.strip():
            kept.append(code)
        problems += [d for d in dropped if "syntax error" in d]
    namespace, more = definitions_from_source("\n\n".join(kept), name)
    return namespace, problems + more


def definitions_from_notebook(path) -> tuple[dict, list[str]]:
    """The definitions of every code cell of the notebook at ``path``, run in a fresh namespace (in cell order)."""
    import nbformat  # optional (the notebooks/test extras): only reading a notebook file needs it

    nb = nbformat.read(str(path), as_version=4)
    return definitions_from_cells([c.source for c in nb.cells if c.cell_type == "code"], Path(path).name)
