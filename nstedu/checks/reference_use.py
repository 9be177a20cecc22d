"""No credit for the reference: a graded function that is, wraps or calls nstedu's own implementation scores 0.

nstedu itself implements every exercise (``nstedu.losses.gram_matrix``, the capstone's ``reference_run``, …), and
the checks compare with exactly that code, so a learner function that calls it would pass without being written.
Two independent looks:

* :func:`static_reference_use` (in the grader's process, on the notebook's source): the graded function and every
  notebook function it reaches are read for names that resolve to nstedu's implementations, through any import
  alias (``from nstedu.losses import tv_loss``, ``import nstedu.losses as L; L.tv_loss``,
  ``style_transfer = reference_run``).
* :class:`ReferenceWatch` (in the sandbox, while the check calls the learner's function): a profile hook notes every
  call into those modules that starts below the learner's function, also through ``getattr``, ``map`` or a copied
  code object — except calls made by the callables the check itself handed in (the objective of exercise 05, say).

What counts as "nstedu's implementation": the modules in :data:`REFERENCE_MODULES`. torch, nstedu's VGG, images,
samples and settings stay allowed, and so do the helpers in :data:`ALLOWED` (the capstone's text asks for
``size_scale``).
"""
from __future__ import annotations

import ast
import importlib
import inspect
import sys
import threading
import types
from contextlib import contextmanager

from .record import Recorder

REFERENCE_MODULES = ("nstedu.losses", "nstedu.style_stats", "nstedu.objective", "nstedu.transfer", "nstedu.control",
                     "nstedu.masks", "nstedu.multiscale", "nstedu.optimizers", "nstedu.batch", "nstedu.video",
                     "nstedu.fast", "nstedu.checks")
#: never counted: the grading machinery's own modules (they run below the learner's function on purpose)
MACHINERY = ("nstedu.checks.record", "nstedu.checks.reference_use",
             "nstedu.checks.kernel_optim")   # torch.optim's step, patched in the grading kernel
#: helpers the exercises' text tells learners to use
ALLOWED = {"nstedu.losses.size_scale"}


def _is_reference_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in REFERENCE_MODULES) and name not in MACHINERY


def _owner(obj) -> str | None:
    """``module.qualname`` of a function or class, or ``module`` of a module; None for anything else."""
    if inspect.ismodule(obj):
        return obj.__name__
    obj = getattr(obj, "__func__", obj)
    if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    return None


def is_reference(obj) -> str | None:
    """The qualified name of ``obj`` if it is one of nstedu's implementations (a function, class or module of
    :data:`REFERENCE_MODULES`, not in :data:`ALLOWED`), else None."""
    name = _owner(obj)
    if name is None:
        return None
    module = obj.__name__ if inspect.ismodule(obj) else getattr(getattr(obj, "__func__", obj), "__module__", "") or ""
    if not _is_reference_module(module) or name in ALLOWED:
        return None
    return name


# --------------------------------------------------------------------------------------------- static
def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def _resolve(dotted: str):
    """Import the longest module prefix of an ``nstedu…`` dotted name and follow the attributes; None if absent."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _aliases(tree) -> dict:
    """Local name -> dotted nstedu name, from the notebook's imports and plain re-bindings."""
    aliases = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "nstedu":
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nstedu" and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            dotted = _dotted(node.value)
            if dotted and dotted.split(".")[0] in aliases:
                head, _, rest = dotted.partition(".")
                aliases[node.targets[0].id] = aliases[head] + ("." + rest if rest else "")
    return aliases


def static_reference_use(source: str, graded: str) -> str | None:
    """The first use of nstedu's implementation by the function ``graded`` (or a notebook function it reaches) in
    the notebook ``source`` (its definitions), as ``"name (nstedu.module.function)"``; None if there is none."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    aliases = _aliases(tree)
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    if _last_binding(tree, graded) == "alias":     # `def f` … then `from nstedu.losses import f`: the import wins
        return _judge(graded, aliases)
    todo, seen = [graded], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        node = defs[name]
        local = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
        chained = {id(n.value) for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        for sub in ast.walk(node):
            if not isinstance(sub, (ast.Attribute, ast.Name)) or id(sub) in chained:
                continue   # judge whole chains only: `L.DEFAULT_STYLE_LAYERS`, not its `L`
            dotted = _dotted(sub)
            if not dotted or dotted.split(".")[0] in local:
                continue
            if dotted in defs:
                todo.append(dotted)
            hit = _judge(dotted, aliases)
            if hit:
                return hit
    return None


def _last_binding(tree, name: str) -> str | None:
    """How the module-level ``name`` is bound last: "def", "alias" (an import or a re-binding) or None."""
    kind = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            kind = "def"
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name.split(".")[0]) == name for a in node.names):
            kind = "alias"
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            kind = "alias"
    return kind


def _judge(dotted: str, aliases: dict) -> str | None:
    """``a.b.c`` judged by its longest prefix that resolves (``L.gram_matrix``; ``L`` alone when the rest is computed
    at run time, as in ``getattr(L, name)``)."""
    head, _, rest = dotted.partition(".")
    if head not in aliases:
        return None
    parts = (aliases[head] + ("." + rest if rest else "")).split(".")
    for cut in range(len(parts), 0, -1):
        obj = _resolve(".".join(parts[:cut]))
        if obj is not None:
            found = is_reference(obj)
            return f"{dotted} ({found})" if found else None
    return None


# -------------------------------------------------------------------------------------------- runtime
def _codes(code, out: list) -> list:
    out.append(code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _codes(const, out)
    return out


def reference_codes() -> list:
    """``(code object, qualified name)`` of every function of nstedu's implementations imported now."""
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or not _is_reference_module(name):
            continue
        for obj in list(vars(module).values()):
            members = [obj] + (list(vars(obj).values()) if inspect.isclass(obj) else [])
            for m in members:
                m = getattr(m, "__func__", getattr(m, "fget", m))
                qual = is_reference(m) if inspect.isfunction(m) else None
                if qual and getattr(m, "__module__", None) == name:
                    m = inspect.unwrap(m)   # @torch.no_grad() and co.: the wrapper's code is torch's, shared by all
                    if inspect.isfunction(m) and m.__code__.co_filename == getattr(module, "__file__", None):
                        found += [(code, qual) for code in _codes(m.__code__, [])]
    return found


def _handed_in_codes(args) -> set:
    """The ids of the code objects of the callables the check hands in (they live as long as those callables)."""
    codes: list = []
    for a in args:
        fn = getattr(a, "__func__", a)
        if inspect.isfunction(fn):
            _codes(fn.__code__, codes)
        elif callable(a) and not inspect.isclass(a):    # an object the check hands in (nstedu's Objective): its methods
            for cls in type(a).__mro__:
                for m in vars(cls).values():
                    if inspect.isfunction(m):
                        _codes(m.__code__, codes)
    return {id(c) for c in codes}


class ReferenceWatch:
    """While a :class:`~nstedu.checks.record.Recorder` call runs, note calls of nstedu's implementations made below
    the learner's function (a profile hook; also in threads the function starts)."""

    def __init__(self):
        self.codes = {id(code): (code, name) for code, name in reference_codes()}
        self.found: set = set()
        self._boundary = None
        self._allowed: set = set()

    def _hook(self, frame, event, arg):
        if event != "call":
            return
        code = frame.f_code        # by identity: equal code objects (two `<listcomp>`s) can live in other files
        entry = self.codes.get(id(code))
        if entry is None or entry[0] is not code or id(code) in self._allowed:
            return
        name = entry[1]
        f = frame.f_back
        while f is not None:
            if id(f.f_code) in self._allowed:
                return
            if f.f_code is self._boundary:
                self.found.add(name)
                return
            f = f.f_back
        if threading.current_thread() is not threading.main_thread():
            self.found.add(name)

    @contextmanager
    def watching(self, recorder):
        self._boundary = Recorder.__call__.__code__
        recorder.on_call = lambda args, kwargs: setattr(self, "_allowed", _handed_in_codes(list(args) + list(kwargs.values())))
        previous = sys.getprofile()
        sys.setprofile(self._hook)
        threading.setprofile(self._hook)
        try:
            yield self
        finally:
            if sys.getprofile() != self._hook:
                self.found.add("(the reference detector was switched off by the learner's code)")
            sys.setprofile(previous)
            threading.setprofile(None)
