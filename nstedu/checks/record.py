"""Record a learner's function in the sandbox, replay it in the grader: verdicts the learner's code cannot forge.

A learner's code runs only in a sealed process (:mod:`nstedu.checks.sandbox`). There, every check is run on a
:class:`Recorder` around the learner's function: what each call returned (tensors as numbers), what it did to its
tensor arguments in place, and the gradients it passes back for the two directions the checks ask for. The record
comes back as plain JSON. In the grader's own process, which never runs learner code, the *same* check runs again
on a :class:`Replayer` that answers each call from the record (:func:`verify`). The grader trusts only its own
inputs, its own reference and its own comparison: a record that was forged, or made on other inputs, fails there,
so a learner process can at most spoil its own grade.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict

import torch

from .core import CheckResult, quietly
from .registry import CHECKS

MAX_NUMEL = 1 << 20          # a larger tensor is not recorded (no check needs one): it replays as a mismatch
_DTYPES = {str(d).split(".")[-1]: d for d in (torch.float32, torch.float64, torch.float16, torch.bfloat16,
                                              torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8,
                                              torch.bool)}


class Opaque:
    """Stands in for a returned object that is not a number, a tensor or a container (a check then fails it)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __repr__(self):
        return f"<{self.kind}>"


class RecordedError(RuntimeError):
    """The learner's function raised this (its type and message, as recorded)."""


# ------------------------------------------------------------------------------------------ encoding
def encode(obj, depth: int = 0):
    """A JSON-able description of ``obj`` (tensors by value; containers kept; anything else by its type name)."""
    if depth > 20:
        return {"object": "too deep"}
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if t.numel() > MAX_NUMEL or str(t.dtype).split(".")[-1] not in _DTYPES or t.is_complex():
            return {"object": f"tensor {tuple(t.shape)} {t.dtype}"}
        return {"T": list(t.shape), "dtype": str(t.dtype).split(".")[-1], "rg": bool(obj.requires_grad),
                "v": t.cpu().reshape(-1).tolist()}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, (list, tuple)):
        items = [encode(v, depth + 1) for v in obj]
        return items if isinstance(obj, list) else {"tuple": items}
    if isinstance(obj, dict):
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in obj.items()]}
    return {"object": type(obj).__name__}


def decode(data):
    """The inverse of :func:`encode` (tensors come back without gradients; see :class:`Replayer`)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "T" in data:
        dtype = _DTYPES[data["dtype"]]
        return torch.tensor(data["v"], dtype=dtype).reshape(data["T"])
    if "float" in data:
        return float(data["float"])
    if "tuple" in data:
        return tuple(decode(v) for v in data["tuple"])
    if "dict" in data:
        return {_key(decode(k)): decode(v) for k, v in data["dict"]}
    return Opaque(str(data.get("object", "object")))


def _key(k):
    return tuple(k) if isinstance(k, list) else k


def leaves(obj, out=None, depth: int = 0) -> list:
    """The tensors inside ``obj`` (tensors, lists, tuples, dict values), in a fixed order."""
    out = [] if out is None else out
    if depth > 20:
        return out
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            leaves(v, out, depth + 1)
    elif isinstance(obj, dict):
        for v in obj.values():
            leaves(v, out, depth + 1)
    return out


def _directions(t: torch.Tensor) -> dict:
    """The output gradients the checks back-propagate: ``backward()`` (ones) and a fixed random probe."""
    return {"ones": torch.ones_like(t), "probe": torch.randn(t.shape, generator=torch.Generator().manual_seed(1))}


# ---------------------------------------------------------------------------------------- recording
class Recorder:
    """Calls ``fn`` and records each call (in the sandbox): output, tensor arguments afterwards, gradients."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: list = []
        self.on_call = None      # set by a ReferenceWatch: told the arguments the check hands in

    def __call__(self, *args, **kwargs):
        inputs = leaves([args, [kwargs[k] for k in sorted(kwargs)]])
        if self.on_call is not None:
            self.on_call(args, kwargs)
        try:
            out = self.fn(*args, **kwargs)
        except BaseException as e:
            self.calls.append({"raised": type(e).__name__, "message": str(e)[:500]})
            raise
        rec = {"out": encode(out), "after": [encode(t) for t in inputs]}
        wanted = [t for t in inputs if t.requires_grad]
        grads = []
        for t in leaves(out):
            if not (t.requires_grad and wanted and t.is_floating_point()):
                grads.append(None)
                continue
            per = {}
            for name, g in _directions(t).items():
                try:
                    got = torch.autograd.grad(t, wanted, g.to(t.dtype), retain_graph=True, allow_unused=True)
                    per[name] = [None if x is None else encode(x) for x in got]
                except Exception as e:  # a graph that cannot be differentiated: the replay has no gradient either
                    per[name] = f"{type(e).__name__}: {e}"[:300]
            grads.append(per)
        rec["grads"] = grads
        self.calls.append(rec)
        return out


def record_runs(exercise: str, fn, seeds, watch=None, check=None) -> list[dict]:
    """Run ``CHECKS[exercise]`` on a :class:`Recorder` of ``fn`` for each seed (stopping at the first failure), in
    the sandbox: ``[{seed, status, hint, rel_error, calls, reference}]``. ``watch`` (a
    :class:`nstedu.checks.reference_use.ReferenceWatch`) notes calls of nstedu's own implementations; ``check``
    is ``CHECKS[exercise]`` unless given (the sandbox passes the one it took before loading learner code)."""
    check = check or CHECKS[exercise]
    runs = []
    for seed in seeds:
        rec = Recorder(fn)
        if watch is not None:
            with watch.watching(rec):
                result = quietly(check, rec, seed=seed)
        else:
            result = quietly(check, rec, seed=seed)
        runs.append({"seed": seed, "status": result.status, "hint": result.hint[:2000],
                     "rel_error": result.rel_error if math.isfinite(result.rel_error) else None,
                     "calls": rec.calls,
                     "reference": sorted(watch.found, key=lambda n: ("._" in n, n)) if watch is not None else []})
        if watch is not None:
            watch.found.clear()
        if result.status != "passed":
            break
    return runs


# ------------------------------------------------------------------------------------------ replaying
class _ReplayGrad(torch.autograd.Function):
    """An output whose gradients are the recorded ones (for the directions recorded; any other raises)."""

    @staticmethod
    def forward(ctx, value, recorded, *inputs):
        ctx.recorded = recorded
        ctx.shapes = [x.shape for x in inputs]
        return value.clone()

    @staticmethod
    def backward(ctx, g):
        for name, direction in _directions(g).items():
            if name in ctx.recorded and torch.allclose(g, direction.to(g.dtype), rtol=1e-6, atol=1e-7):
                grads = ctx.recorded[name]
                if isinstance(grads, str):
                    raise RuntimeError(f"your function's gradient failed: {grads}")
                out = [None if x is None else decode(x) for x in grads]
                if len(out) != len(ctx.shapes) or any(x is not None and x.shape != s for x, s in zip(out, ctx.shapes)):
                    raise RuntimeError("the recorded gradients do not fit the inputs")
                return (None, None, *out)
        raise RuntimeError("no recorded gradient for this direction")


class Replayer:
    """Answers the check's calls from a record (in the grader's process): same outputs, same in-place changes."""

    __name__ = "replay"

    def __init__(self, calls: list):
        self.calls, self.used = calls, 0

    def __call__(self, *args, **kwargs):
        if self.used >= len(self.calls):
            raise RecordedError("the record has fewer calls than the check makes")
        rec = self.calls[self.used]
        self.used += 1
        if "raised" in rec:
            if rec["raised"] == "NotImplementedError":
                raise NotImplementedError(rec.get("message", ""))
            raise RecordedError(f"{rec['raised']}: {rec.get('message', '')}")
        inputs = leaves([args, [kwargs[k] for k in sorted(kwargs)]])
        after = rec.get("after", [])
        if len(after) != len(inputs):
            raise RecordedError("the record does not fit the check's arguments")
        with torch.no_grad():
            for t, a in zip(inputs, after):
                value = decode(a)
                if not isinstance(value, torch.Tensor) or value.shape != t.shape:
                    raise RecordedError("the record does not fit the check's arguments")
                if not torch.equal(value.to(t.dtype), t):
                    t.copy_(value)
        return self._attach(decode(rec["out"]), iter(rec.get("grads", [])), [t for t in inputs if t.requires_grad],
                            rec["out"])

    def _attach(self, out, grads, wanted, raw):
        """Give the decoded output tensors the recorded requires_grad and gradients."""
        if isinstance(out, torch.Tensor):
            recorded = next(grads, None)
            if not (isinstance(raw, dict) and raw.get("rg")):
                return out
            if not recorded or not wanted or not out.is_floating_point():
                return out.requires_grad_(True) if out.is_floating_point() else out
            return _ReplayGrad.apply(out, recorded, *wanted)
        if isinstance(out, (list, tuple)) and not isinstance(out, str):
            raws = raw if isinstance(raw, list) else raw.get("tuple", [])
            items = [self._attach(v, grads, wanted, r) for v, r in zip(out, raws)]
            return items if isinstance(out, list) else tuple(items)
        if isinstance(out, dict):
            return {k: self._attach(v, grads, wanted, r[1]) for (k, v), r in zip(out.items(), raw["dict"])}
        return out


def verify(exercise: str, runs: list, seeds) -> CheckResult:
    """The grader's verdict on a sandbox's record: every seed's run replayed through the check here. Passed only
    when the sandbox's own run and the replay both pass, for every seed, with no call of nstedu's own code."""
    total = 0
    for seed, run in zip(seeds, list(runs) + [None] * len(seeds)):
        if run is None or run.get("seed") != seed:
            return CheckResult(exercise, "failed", 0, total, math.nan,
                               "the grader did not get a complete record of your function's checks")
        if run.get("reference"):
            names = ", ".join(run["reference"][:3])
            return CheckResult(exercise, "failed", 0, total, math.nan,
                               f"your function calls nstedu's own implementation ({names}): that is the reference "
                               "this exercise compares with, so it earns no credit — write it with torch operations")
        if run.get("status") != "passed":
            status = run.get("status") if run.get("status") in ("failed", "not implemented") else "failed"
            err = run.get("rel_error")
            return CheckResult(exercise, status, 0, total, math.nan if err is None else float(err),
                               str(run.get("hint", ""))[:2000])
        replay = Replayer(run.get("calls", []))
        try:
            result = quietly(CHECKS[exercise], replay, seed=seed)
        except Exception as e:  # a record that breaks the check's own code is not a pass
            result = CheckResult(exercise, "failed", 0, 0, math.nan, f"{type(e).__name__}: {e}")
        if result.status != "passed" or replay.used != len(replay.calls):
            return CheckResult(exercise, "failed", 0, total, result.rel_error,
                               "the grader could not confirm your function's results from the sandbox "
                               f"({result.hint or 'a different number of calls'})")
        total += result.total
    return CheckResult(exercise, "passed", total, total, 0.0 if not runs else float(runs[-1].get("rel_error") or 0.0))


def dumps(obj) -> str:
    return json.dumps(obj, allow_nan=True, separators=(",", ":"))


def result_dict(result: CheckResult) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(result).items()}
