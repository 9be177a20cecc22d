"""Run checks where a learner's notebook cannot reach them.

* :func:`definitions_from_notebook` takes a notebook's *definitions* only — imports, ``def``/``class`` and
  assignments of plain values — and executes them in a fresh namespace; statements such as
  ``checks.check_gram_matrix = ...`` or ``print("PASSED")`` are never run.
* :func:`run_guarded` runs a check and refuses the verdict if anything in ``nstedu``, ``torch`` or the built-ins
  was replaced while it ran (a learner's function could try).
* :func:`hidden_test` (used by nbgrader's hidden tests) rebuilds the learner's function from its source
  (:func:`source_of`) in a *fresh Python process* and runs the check there, so nothing done in the notebook's
  kernel (monkey-patching the checks, say) changes the verdict.

This stops forging by accident or by a notebook edit in self-study; it is not a sandbox for hostile code. Grading
a class goes through :mod:`nstedu.checks.session` instead: a sandboxed kernel per submission, verdicts replayed in
the grader's process.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import json
import math
import os
import secrets
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import torch

from .core import CheckResult, hidden_seed
from .definitions import definitions_from_cells, definitions_from_notebook, definitions_from_source, safe_definitions  # noqa: F401
from .reference_use import static_reference_use
from .registry import CHECKS, FUNCTION

RESULT_TAG = "NSTEDU-RESULT"
# -------------------------------------------------------------------------------------------- guarded
def _watched():
    mods = [m for name, m in list(sys.modules.items()) if name == "nstedu" or name.startswith("nstedu.")]
    return [builtins, torch, torch.Tensor, torch.nn.functional, math] + mods


def _snapshot() -> dict:
    return {id(obj): (obj, {k: id(v) for k, v in list(vars(obj).items())}) for obj in _watched()}


def _changed(before: dict) -> list[str]:
    out = []
    for obj, names in before.values():
        now = vars(obj)
        out += [f"{getattr(obj, '__name__', obj)}.{k}" for k, v in names.items() if k in now and id(now[k]) != v
                and not k.startswith("__")]
    return out


def run_guarded(exercise: str, fn, seed: int | None = None) -> CheckResult:
    """``CHECKS[exercise](fn)`` (with ``seed`` when given); a verdict reached while the checks, torch or the
    built-ins were being replaced becomes "failed"."""

    before = _snapshot()
    kwargs = {} if seed is None else {"seed": seed}
    result = CHECKS[exercise](fn, **kwargs)
    changed = _changed(before)
    if changed:
        result = CheckResult(exercise, "failed", 0, result.total, math.nan,
                             f"the grader's code was modified while your function ran ({', '.join(changed[:3])})")
        print(f"{exercise}: FAILED ✗ — {result.hint}")
    return result


# ------------------------------------------------------------------------------------- from a kernel
def _global_names(code) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _global_names(const)
    return names


def _literal(obj) -> bool:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return not isinstance(obj, float) or math.isfinite(obj)
    if isinstance(obj, (tuple, list, set, frozenset)):
        return all(_literal(v) for v in obj)
    if isinstance(obj, dict):
        return all(_literal(k) and _literal(v) for k, v in obj.items())
    return False


def source_of(fn) -> str:
    """Python source that rebuilds ``fn`` (a function defined in a notebook) with what it uses there: imports,
    plain constants and tensors, and the other functions and classes it calls. Raises ``ValueError`` naming a
    global it cannot rebuild."""

    if getattr(fn, "__module__", "__main__") not in ("__main__", "learner"):
        return f"from {fn.__module__} import {fn.__name__} as {fn.__name__}"
    g = fn.__globals__
    imports, consts, defs, seen = [], [], {}, set()
    todo = [fn]
    while todo:
        f = todo.pop()
        if f.__name__ in defs:
            continue
        defs[f.__name__] = textwrap.dedent(inspect.getsource(f))
        code = f.__code__ if inspect.isfunction(f) else None
        names = _global_names(code) if code else {n for m in vars(f).values() if inspect.isfunction(m)
                                                 for n in _global_names(m.__code__)}
        for name in sorted(names - seen):
            seen.add(name)
            if name not in g:
                continue
            obj = g[name]
            if inspect.ismodule(obj):
                imports.append(f"import {obj.__name__} as {name}")
            elif (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == fn.__module__:
                todo.append(obj)
            elif _literal(obj):
                consts.append(f"{name} = {obj!r}")
            elif isinstance(obj, torch.Tensor):
                consts.append(f"{name} = torch.tensor({obj.detach().cpu().tolist()!r}, dtype={obj.dtype})")
                imports.append("import torch")
            elif isinstance(obj, torch.dtype):
                consts.append(f"{name} = {obj}")
                imports.append("import torch")
            elif getattr(obj, "__module__", None) and getattr(sys.modules.get(obj.__module__),
                                                              getattr(obj, "__name__", ""), None) is obj:
                imports.append(f"from {obj.__module__} import {obj.__name__} as {name}")
            else:
                raise ValueError(f"the grader cannot rebuild `{name}` ({type(obj).__name__}) outside the notebook: "
                                 f"define it inside {f.__name__} or make it a plain value")
    return "\n".join(list(dict.fromkeys(imports)) + consts + [defs[k] for k in reversed(list(defs))])


def run_isolated(exercise: str, fn, seed: int | None = None, timeout: int = 600) -> CheckResult:
    """Run ``CHECKS[exercise]`` on ``fn`` in a fresh Python process (see :func:`source_of`); prints its verdict."""

    try:
        source = source_of(fn)
    except (ValueError, OSError, TypeError) as e:
        print(f"{exercise}: FAILED ✗ — {e}")
        return CheckResult(exercise, "failed", 0, 0, math.nan, str(e))
    nonce = secrets.token_hex(8)
    name = getattr(fn, "__name__", FUNCTION[exercise])
    payload = json.dumps({"exercise": exercise, "function": name, "source": source, "seed": seed,
                          "nonce": nonce})
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-m", "nstedu.checks", "isolated"], input=payload, capture_output=True,
                          text=True, timeout=timeout, env=env)
    lines = proc.stdout.rstrip("\n").split("\n")
    tag = f"{RESULT_TAG} {nonce} "
    if not lines or not lines[-1].startswith(tag):
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{exercise}: FAILED ✗ — the isolated check did not finish: {err}")
        return CheckResult(exercise, "failed", 0, 0, math.nan, f"the isolated check did not finish: {err}")
    print("\n".join(ln for ln in lines[:-1] if not ln.startswith(RESULT_TAG)))
    data = json.loads(lines[-1][len(tag):])
    data["rel_error"] = math.nan if data["rel_error"] is None else data["rel_error"]
    return CheckResult(**data)


def isolated_main() -> int:
    """The child of :func:`run_isolated`: JSON on stdin, the verdict's JSON as the last line of stdout."""
    job = json.loads(sys.stdin.read())
    namespace, problems = definitions_from_source(job["source"], "your notebook")
    fn = namespace.get(job["function"])
    used = static_reference_use(job["source"], job["function"])
    if used:
        result = CheckResult(job["exercise"], "failed", 0, 0, math.nan, f"{used}: that is nstedu's own "
                             "implementation, the reference this exercise is compared with — it earns no credit")
        print(f"{job['exercise']}: FAILED ✗ — {result.hint}")
    elif not callable(fn):
        why = "; ".join(problems) or "not defined"
        result = CheckResult(job["exercise"], "failed", 0, 0, math.nan, f"{job['function']}: {why}")
        print(f"{job['exercise']}: FAILED ✗ — {result.hint}")
    else:
        result = run_guarded(job["exercise"], fn, job["seed"])
    data = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(result).items()}
    sys.stdout.flush()
    print(f"{RESULT_TAG} {job['nonce']} {json.dumps(data)}")
    return 0


def hidden_test(exercise: str, fn, seed: int | None = None) -> bool:
    """nbgrader's hidden test for ``exercise``: the check with other random inputs (``seed``, default
    :func:`nstedu.checks.grading.hidden_seed`), run on ``fn``'s source in a fresh process. True when it passes — use
    as ``assert checks.hidden_test("gram_matrix", gram_matrix)``."""
    return bool(run_isolated(exercise, fn, hidden_seed() if seed is None else seed))
