"""torch.optim without its compiler import, in a grading kernel.

Since torch 2.x an optimizer's first ``add_param_group`` / ``zero_grad`` / ``state_dict`` / ``load_state_dict``
(``@torch._disable_dynamo``) and first ``step`` (``_use_grad_for_differentiable``: two graph breaks) import
``torch._dynamo``, the compiler: 3–4 s of CPU in every sandboxed kernel whose checks or notebook step an optimizer
(05, 10 and 11), for steps that are never compiled. :func:`without_compiler_import` puts the functions those
decorators received (``__wrapped__``) back on ``torch.optim``'s classes, in this process only; a step keeps the
grad mode its decorator sets (off, on only with ``differentiable=True``), so the arithmetic is torch's own, bit for
bit (``tests/test_sealed_grading.py``). :mod:`nstedu.optimizers` does the same
with subclasses for the engine; this lives with the checks because a learner's ``torch.optim.Adam`` must not run
code of a module the reference detector counts as nstedu's implementation (:mod:`nstedu.checks.reference_use`).
"""
from __future__ import annotations

import functools
from typing import Callable

import torch

DECORATED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _grad_as_declared(step: Callable) -> Callable:
    """``step`` under the grad mode ``_use_grad_for_differentiable`` sets (its ``differentiable`` default), without
    the graph breaks that import the compiler."""
    @functools.wraps(step)
    def wrapped(self, *args, **kwargs):
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            return step(self, *args, **kwargs)
    return wrapped


def _inner_use_grad(step):
    """The function ``_use_grad_for_differentiable`` wrapped, found under any profiling hook torch put on top; or None."""
    while step is not None:
        inner = getattr(step, "__wrapped__", None)
        if inner is not None and getattr(getattr(step, "__code__", None), "co_name", "") == "_use_grad":
            return inner
        step = inner
    return None


def without_compiler_import() -> Callable[[], None]:
    """Patch ``torch.optim`` in this process as described above; returns a function that undoes it. Methods whose
    decorators differ in another torch version are left as they are."""
    saved = []

    def put(cls, name, fn):
        saved.append((cls, name, cls.__dict__[name]))
        setattr(cls, name, fn)

    for name in DECORATED:
        method = torch.optim.Optimizer.__dict__.get(name)
        inner = getattr(method, "__wrapped__", None)
        if inner is not None and "_dynamo" in method.__code__.co_names:
            put(torch.optim.Optimizer, name, inner)
    classes = [c for c in vars(torch.optim).values() if isinstance(c, type) and issubclass(c, torch.optim.Optimizer)]
    for cls in classes:
        inner = _inner_use_grad(cls.__dict__.get("step"))
        if inner is not None:
            put(cls, "step", _grad_as_declared(inner))

    def undo() -> None:
        for cls, name, fn in reversed(saved):
            setattr(cls, name, fn)
    return undo
