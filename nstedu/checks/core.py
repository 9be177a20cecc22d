"""The machinery every check shares: ``CheckResult``, ``rel_error``, running a function against the reference on
random inputs (``_trials``), printing the verdict, and hints for common crashes.

A verdict is only ever *returned* (a :class:`CheckResult`) and printed for the learner; nothing is written to a file
that a grader would trust. Grading (:mod:`nstedu.checks.grading`) runs the checks itself.
"""
from __future__ import annotations

import contextlib
import functools
import io
import math
import os
from dataclasses import dataclass
from typing import Callable

import torch

from .. import losses as L

TOL = 1e-4            # rel_error below this passes (inputs are float32)


@dataclass
class CheckResult:
    """The outcome of one check: ``status`` is "passed", "failed" or "not implemented"."""

    exercise: str
    status: str
    passed: int            # random inputs on which the function matched the reference
    total: int
    rel_error: float       # the largest rel_error seen (nan when not comparable)
    hint: str = ""

    def __bool__(self) -> bool:
        return self.status == "passed"

    def _ipython_display_(self):  # the check already printed its verdict; show nothing more in notebooks
        pass


def rel_error(a, b) -> float:
    """``max |a - b| / max(1e-8, |a| + |b|)`` elementwise (CS231n's measure); inf for different shapes and where
    either holds NaN or inf (a NaN would otherwise compare as "not above the tolerance" and pass)."""
    a, b = torch.as_tensor(a).detach().double(), torch.as_tensor(b).detach().double()
    if a.shape != b.shape:
        return math.inf
    err = float(((a - b).abs() / (a.abs() + b.abs()).clamp_min(1e-8)).max()) if a.numel() else 0.0
    return math.inf if math.isnan(err) or math.isinf(err) else err


def _close(a, b, tol: float = 1e-3) -> bool:
    return a is not None and rel_error(a, b) < tol


def _scale(out, ref):
    """The factor r with out ≈ r · ref (least squares), or None if out is not a multiple of ref."""
    out, ref = torch.as_tensor(out).detach().double(), torch.as_tensor(ref).detach().double()
    if out.shape != ref.shape or float((ref * ref).sum()) == 0:
        return None
    r = float((out * ref).sum() / (ref * ref).sum())
    return r if r != 0 and _close(out, r * ref, 1e-3) else None


def _near(r, value) -> bool:
    return r is not None and abs(r - value) <= 1e-3 * abs(value)


def _report(exercise, status, passed, total, err, hint="", measure="rel_error", unit="random inputs",
            values_ok=False) -> CheckResult:
    result = CheckResult(exercise, status, passed, total, err, hint)
    if status == "passed":
        print(f"{exercise}: PASSED ✓ — {passed}/{total} {unit}, max {measure} {err:.1e}")
    elif status == "not implemented":
        print(f"{exercise}: not implemented yet ({hint}) — fill in the function above and run this cell again.")
    else:
        shown = "n/a" if not math.isfinite(err) else f"{err:.1e}"
        if values_ok:
            print(f"{exercise}: FAILED ✗ — the values match ({measure} {shown}), but:")
        else:
            print(f"{exercise}: FAILED ✗ — {passed}/{total} {unit} right, {measure} {shown}")
        print(f"  hint: {hint}")
    return result


def quietly(check: Callable, *args, **kwargs) -> CheckResult:
    """Run a check without printing its verdict (graders, hidden tests); returns the :class:`CheckResult`."""
    with contextlib.redirect_stdout(io.StringIO()):
        return check(*args, **kwargs)


def _trials(exercise: str, cases, run: Callable, reference: Callable, diagnose: Callable, *, error=None,
            tol: float = TOL, measure: str = "rel_error", followup: Callable | None = None) -> CheckResult:
    """For each case: out = run(case); it passes when error(out, reference(case)) < tol, else stop and diagnose.
    ``followup(case, out)`` may return a hint for an answer whose values are right (e.g. gradients)."""
    error = error or rel_error
    worst = 0.0
    for i, case in enumerate(cases):
        try:
            out = run(case)
        except NotImplementedError as e:
            return _report(exercise, "not implemented", i, len(cases), math.nan, str(e) or exercise)
        except Exception as e:  # a crash is a failed check with the error named, never an exception here
            return _report(exercise, "failed", i, len(cases), math.nan, diagnose(case, None, e), measure)
        ref = reference(case)
        ok_type = isinstance(out, (torch.Tensor, float, int))
        err = error(out, ref) if ok_type and torch.as_tensor(out).shape == torch.as_tensor(ref).shape else math.inf
        hint = diagnose(case, out, None) if err >= tol else (followup(case, out) if followup else "")
        if err >= tol and not hint:
            hint = "the result differs from the reference"
        if hint:
            return _report(exercise, "failed", i, len(cases), err, hint, measure, values_ok=err < tol)
        worst = max(worst, err)
    return _report(exercise, "passed", len(cases), len(cases), worst, measure=measure)


def _crash_hint(e: Exception) -> str:
    return f"your function raised {type(e).__name__}: {e}"


def _grad_hint(case_inputs: dict, out, what: str) -> str:
    """Checks on autograd: the loss must reach the generated features and must not reach the target."""
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return (f"the returned {what} has no gradient: return a torch tensor computed from the features "
                "(no .item(), .detach(), numpy or float(...) on the way)")
    out.backward(retain_graph=True)
    for name, t in case_inputs.items():
        grad = t.grad
        if name.startswith("target") and grad is not None and float(grad.abs().sum()) > 0:
            return ("the gradient flows into the target as well: forgot to detach the target? Use "
                    "`target.detach()` — the target is a fixed constant, only the generated image is optimized")
        if name.startswith("input") and (grad is None or float(grad.abs().sum()) == 0):
            return "no gradient reaches the generated features: do not detach them, only the target"
    return ""


def _not_scalar_hint(out) -> str:
    if not isinstance(out, torch.Tensor):
        return f"return a torch tensor (a 0-dim loss), got {type(out).__name__}"
    if out.dim() != 0:
        return f"return a single number (0-dim tensor), got shape {tuple(out.shape)}: sum over all elements"
    return ""


def _sign_hint(out, ref, formula: str) -> str:
    """A loss that is a sum of squares can never be negative (or NaN): name that before any factor."""
    value, r = float(out.detach()), _scale(out, ref)
    if math.isnan(value) or math.isinf(value):
        return f"your loss is {value}: look for a division by zero or a log/sqrt of a negative number"
    if value >= 0:
        return ""
    times = "" if r is None else f" (your value is {r:.4g}× the reference)"
    return (f"the sign is flipped: the loss must be ≥ 0 — it is a sum of squares, {formula} — but yours is "
            f"{value:.4g}{times}; a negative loss would push the image *away* from its target")


# random feature maps (post-ReLU, small) for the loss checks, named like the engine's layers (nstedu.losses
# DEFAULT_CONTENT_LAYERS / DEFAULT_STYLE_LAYERS) plus two neighbours of the content layer for "wrong layer" hints
_BLOCK_SHAPES = {1: (3, 8, 10), 2: (4, 6, 5), 3: (5, 4, 6), 4: (6, 3, 4), 5: (7, 2, 3)}


def content_layer() -> str:
    """The engine's (first) content layer, e.g. ``relu4_2``: what ``content_loss`` exercises compare."""
    return L.DEFAULT_CONTENT_LAYERS[0]


def style_layers() -> tuple:
    """The engine's style layers, e.g. ``relu1_1 … relu5_1``."""
    return tuple(L.DEFAULT_STYLE_LAYERS)


def neighbour_layers() -> tuple:
    """Two layers next to the content layer (same kind, conv or relu): the usual "wrong layer" mistakes."""
    kind = content_layer()[:4]
    return f"{kind}4_1", f"{kind}5_2"


def _feature_shapes() -> dict:
    names = dict.fromkeys(style_layers() + (content_layer(),) + neighbour_layers())
    return {k: (1,) + _BLOCK_SHAPES[int(k[4])] for k in names}


def _feature_dicts(g):
    shapes = _feature_shapes()
    features = {k: torch.randn(s, generator=g).relu().requires_grad_(True) for k, s in shapes.items()}
    targets = {k: torch.randn(s, generator=g).relu().requires_grad_(True) for k, s in shapes.items()}
    return features, targets


def _reset_grads(*dicts):
    for d in dicts:
        for t in d.values():
            t.grad = None


GRADING_ENV = "NSTEDU_GRADING"   # set in a grader's sandboxed kernel (nstedu.checks.sandbox)


def leave_to_grader(check: Callable) -> Callable:
    """``check`` as learners call it: in a grader's sandboxed kernel (``NSTEDU_GRADING=1``) it only says that the
    grader checks this (the sealed checks run after the notebook), elsewhere it is ``check`` itself."""

    @functools.wraps(check)
    def call(fn, *args, **kwargs):
        if not os.environ.get(GRADING_ENV):
            return check(fn, *args, **kwargs)
        print(f"{getattr(fn, '__name__', 'your function')}: checked by the grader after the notebook has run")
        return True

    return call


HIDDEN_SEED_ENV = "NSTEDU_HIDDEN_SEED"   # graders may set their own, unpublished seed


def hidden_seed() -> int:
    """The seed of the second, hidden set of random inputs (the visible checks use 0): ``NSTEDU_HIDDEN_SEED``
    or 1."""
    value = os.environ.get(HIDDEN_SEED_ENV, "").strip()
    try:
        return int(value) if value else 1
    except ValueError:
        raise ValueError(f"{HIDDEN_SEED_ENV}={value!r}: expected an integer seed") from None
