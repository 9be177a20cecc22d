"""Check for exercise 05: one ``optimization_step`` (zero the gradients, evaluate, backward, step, clamp)."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..transfer import TransferConfig, optimize
from .core import TOL, CheckResult, _crash_hint, _report, rel_error


# ------------------------------------------------------------------------------------ optimization step
def _step_variant(x, objective, optimizer, zero=True, backward=True, step=True, clamp="after", order="normal"):
    """The reference step (defaults) and its common mistakes, for diagnosis."""
    if zero:
        optimizer.zero_grad()
    if clamp == "before":
        with torch.no_grad():
            x.clamp_(0, 1)
    if order == "step-first":
        optimizer.step()
    loss = objective(x)
    if backward:
        loss.backward()
    if step and order == "normal":
        optimizer.step()
    if clamp == "after":
        with torch.no_grad():
            x.clamp_(0, 1)
    return loss.item()


def _tiny_problem(seed):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(1, 3, 4, 5, generator=g) * 0.8 + 0.5  # some pixels want to leave [0, 1]
    weight = torch.rand(1, 3, 4, 5, generator=g) + 0.5
    x0 = torch.rand(1, 3, 4, 5, generator=g)

    def objective(x):
        return (weight * (x - target) ** 2).sum() + 0.1 * (x[..., 1:] - x[..., :-1]).pow(2).sum()
    return x0, objective


def _trajectory(step_fn, x0, objective, make_opt, steps):
    x = x0.clone().requires_grad_(True)
    opt = make_opt([x])
    losses, xs = [], []
    for _ in range(steps):
        losses.append(step_fn(x, objective, opt))
        xs.append(x.detach().clone())
    return losses, xs, x


def _engine_trajectory(x0, objective, lr, steps):
    """nstedu's own loop (:func:`nstedu.transfer.optimize` with Adam): losses and the image before each step."""
    seen = []
    cfg = TransferConfig(optimizer="adam", lr=lr, steps=steps + 1, progress=False, lr_decay_every=10_000)
    def engine_objective(x):  # the engine's objective returns (total, {term: value})
        total, zero = objective(x), x.new_zeros(())
        return total, {"total": total, "content": zero, "style": zero, "tv": zero}

    r = optimize(engine_objective, x0, cfg, callback=lambda info: seen.append(info.image.clone()), callback_every=1)
    return r.history["total"][:steps], seen[1:steps + 1]


def check_optimization_step(optimization_step: Callable, steps: int = 8, seed: int = 0) -> CheckResult:
    """Check ``optimization_step(x, objective, optimizer) -> float``: zero the gradients, compute
    ``loss = objective(x)``, ``loss.backward()``, ``optimizer.step()``, clamp ``x`` into [0, 1] in place; return
    the loss (a float). Compared with nstedu's own loop (Adam) and a reference step (SGD with momentum)."""
    exercise, unit = "optimization_step", "problems (Adam vs nstedu's loop, SGD with momentum)"
    setups = [("adam", 0.1, 2 * seed), ("sgd", 0.02, 2 * seed + 1)]
    worst = 0.0
    for i, (kind, lr, seed) in enumerate(setups):
        x0, objective = _tiny_problem(seed)
        make_opt = (lambda p: torch.optim.Adam(p, lr=lr)) if kind == "adam" else \
                   (lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9))
        if kind == "adam":
            ref_losses, ref_xs = _engine_trajectory(x0, objective, lr, steps)
        else:
            ref_losses, ref_xs, _ = _trajectory(_step_variant, x0, objective, make_opt, steps)
        try:
            losses, xs, x = _trajectory(optimization_step, x0, objective, make_opt, steps)
        except NotImplementedError as e:
            return _report(exercise, "not implemented", i, len(setups), math.nan, str(e) or exercise)
        except RuntimeError as e:
            hint = _crash_hint(e)
            if "leaf Variable" in str(e) or "in-place" in str(e):
                hint = "clamp without recording a gradient: `with torch.no_grad(): x.clamp_(0, 1)`"
            return _report(exercise, "failed", i, len(setups), math.nan, hint, unit=unit)
        except Exception as e:
            return _report(exercise, "failed", i, len(setups), math.nan, _crash_hint(e), unit=unit)
        err = rel_error(torch.stack(xs), torch.stack(ref_xs))
        hint = ""
        if err >= TOL:
            hint = _diagnose_step(xs, x, x0, objective, make_opt, steps)
        elif not all(_is_number(v) for v in losses):
            bad = next(v for v in losses if not _is_number(v))
            hint = (f"return the loss as a Python float (`loss.item()`), got {type(bad).__name__}"
                    + (": a tensor keeps the whole graph of the step alive, and code that plots or formats the losses "
                       "breaks" if isinstance(bad, torch.Tensor) else ""))
        else:
            err = max(err, rel_error(torch.tensor([float(v) for v in losses]), torch.tensor(ref_losses)))
            if err >= TOL:
                hint = "the image is right, but return the loss computed *before* the step (the value of objective(x))"
        if hint:
            return _report(exercise, "failed", i, len(setups), err, hint, unit=unit)
        worst = max(worst, err)
    return _report(exercise, "passed", len(setups), len(setups), worst, unit=unit)


def _is_number(v) -> bool:
    return isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool))


def _diagnose_step(xs, x, x0, objective, make_opt, steps) -> str:
    if all(torch.equal(v, x0) for v in xs):
        if x.grad is None or float(x.grad.abs().sum()) == 0:
            return ("x never changed and has no gradient: call loss.backward() before optimizer.step() "
                    "(and zero the gradients *before* the backward, not after)")
        return "x never changed: call optimizer.step() after loss.backward()"
    if any(float(v.min()) < 0 or float(v.max()) > 1 for v in xs):
        return ("pixels left [0, 1]: clamp them in place *after* optimizer.step(): "
                "`with torch.no_grad(): x.clamp_(0, 1)` (x = x.clamp(...) only rebinds a local name)")
    variants = [(dict(zero=False), "forgot optimizer.zero_grad(): gradients add up from step to step"),
                (dict(order="step-first"), "optimizer.step() must come after loss.backward() (it uses the fresh gradient)")]
    for kw, hint in variants:
        _, vxs, _ = _trajectory(lambda a, b, c: _step_variant(a, b, c, **kw), x0, objective, make_opt, steps)
        if rel_error(torch.stack(xs), torch.stack(vxs)) < 1e-4:
            return hint
    return "your steps differ from zero_grad → loss → backward → step → clamp; compare with the order above"
