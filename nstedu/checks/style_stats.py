r"""Check for exercise 12: ``sliced_wasserstein_loss`` (Heitz et al. 2021), with diagnoses of the usual mistakes.

The learner's function: ``sliced_wasserstein_loss(features, target, n_directions, generator)`` with ``features``
and ``target`` ``(1, C, H, W)`` (the same number of positions M), ``n_directions`` = P and a seeded
``torch.Generator``: draw ``torch.randn(C, P, generator=generator)``, make each column a unit vector, project the
C-dimensional feature vectors of both maps on the P directions, sort each projection over the M positions and
return the mean over directions and positions of the squared differences (the target detached). The reference is
:func:`nstedu.style_stats.sliced_wasserstein_loss`.
"""
from __future__ import annotations

from typing import Callable

import torch

from .. import style_stats as S
from .core import CheckResult, _close, _crash_hint, _grad_hint, _near, _not_scalar_hint, _scale, _trials

#: The global seed set before each call, so that a function that ignores the generator can be recognised.
_GLOBAL_SEED = 20261203


def reference_sliced_wasserstein(features: torch.Tensor, target: torch.Tensor, n_directions: int,
                                 generator: torch.Generator) -> torch.Tensor:
    """nstedu's sliced Wasserstein loss with the directions drawn from ``generator`` (``(C, P)`` Gaussian, unit
    columns): what the exercise asks for."""
    d = S.directions(features.shape[1], n_directions, generator=generator).to(features)
    return S.sliced_wasserstein_loss(features, S.sorted_projections(target.detach(), d), d)


def _variants(f, t, p, seed):
    """(value, hint) of the common mistakes, each with the directions the learner would have drawn."""
    c = f.shape[1]
    raw = torch.randn(c, p, generator=torch.Generator().manual_seed(seed)).double()
    unit = raw / raw.norm(dim=0, keepdim=True)
    f, t = f.detach().double(), t.detach().double()

    def proj(x, d):  # (M, P)
        return x.reshape(c, -1).T @ d

    def srt(x):
        return x.sort(dim=0).values

    out = [
        (((proj(f, unit) - proj(t, unit)) ** 2).mean(), "the projections are not sorted: sort each direction's "
         "projections over the positions (`.sort(dim=0).values` on (M, P)) before comparing — sorted values are the "
         "quantiles, and matching quantiles is what compares two distributions"),
        (((srt(proj(f, raw)) - srt(proj(t, raw))) ** 2).mean(), "the directions are not unit vectors: divide each "
         "column of the random (C, P) matrix by its norm (`d / d.norm(dim=0, keepdim=True)`)"),
        ((srt(proj(f, unit)) - srt(proj(t, unit))).abs().mean(), "you took absolute differences (L1); the sliced "
         "Wasserstein loss here is the mean of the *squared* differences"),
        ((srt(proj(f, unit)) - srt(proj(t, unit))).pow(2).mean().sqrt(), "you returned the square root (a "
         "distance); return the mean of the squared differences (SW²) as the loss"),
        (((srt(f.reshape(-1, c) @ unit) - srt(t.reshape(-1, c) @ unit)) ** 2).mean(), "projections of the wrong "
         "axis: `features.reshape(-1, C)` mixes channels and positions. Each position's C-vector is a column of "
         "`features.reshape(C, -1)`: project with `features.reshape(C, -1).T @ directions` (M × P)"),
        (((proj(f, unit).sort(dim=1).values - proj(t, unit).sort(dim=1).values) ** 2).mean(), "you sorted along "
         "the wrong dimension (over the directions): sort each direction's M projections, i.e. over the positions"),
        (((srt(proj(f, unit)) - proj(t, unit)) ** 2).mean(), "only the generated projections are sorted: sort the "
         "target's too, so that quantile i is compared with quantile i"),
    ]
    swapped = torch.randn(p, c, generator=torch.Generator().manual_seed(seed)).double().T
    swapped = swapped / swapped.norm(dim=0, keepdim=True)
    out.append((((srt(proj(f, swapped)) - srt(proj(t, swapped))) ** 2).mean(), "draw the directions with the shape "
                "(C, P), `torch.randn(C, n_directions, generator=generator)`, so that they are the same random numbers "
                "as the reference's"))
    torch.manual_seed(_GLOBAL_SEED)
    glob = torch.randn(c, p).double()
    glob = glob / glob.norm(dim=0, keepdim=True)
    out.append((((srt(proj(f, glob)) - srt(proj(t, glob))) ** 2).mean(), "draw the directions from the generator "
                "passed in (`torch.randn(C, n_directions, generator=generator)`), not from torch's global one: "
                "the check, like the engine, must get the same directions every time"))
    return out


def check_sliced_wasserstein(sliced_wasserstein_loss: Callable, trials: int = 4, seed: int = 0) -> CheckResult:
    r"""Check ``sliced_wasserstein_loss(features, target, n_directions, generator) -> 0-dim tensor`` =
    :math:`\frac{1}{PM}\sum_{p,i}(\mathrm{sort}(F^\top\theta_p)_i - \mathrm{sort}(S^\top\theta_p)_i)^2` with unit
    :math:`\theta_p` drawn as ``torch.randn(C, P, generator=generator)``; the target detached."""
    g = torch.Generator().manual_seed(seed)
    shapes = [((1, 3, 4, 5), 4), ((1, 5, 3, 3), 7), ((1, 4, 6, 2), 3), ((1, 6, 2, 5), 6)]
    cases = []
    for i in range(trials):
        shape, p = shapes[i % len(shapes)]
        f = (torch.randn(shape, generator=g) + 0.3).requires_grad_(True)
        t = (torch.randn(shape, generator=g) * 1.5 + 0.8).requires_grad_(True)
        cases.append((f, t, p, 1000 + seed * 100 + i))

    def call(case):
        f, t, p, s = case
        f.grad = t.grad = None
        torch.manual_seed(_GLOBAL_SEED)
        return sliced_wasserstein_loss(f, t, p, torch.Generator().manual_seed(s))

    def run(case):
        out = call(case)
        return out.detach() if isinstance(out, torch.Tensor) else out

    def reference(case):
        f, t, p, s = case
        return reference_sliced_wasserstein(f.detach(), t.detach(), p, torch.Generator().manual_seed(s))

    def diagnose(case, out, exc):
        f, t, p, s = case
        if exc is not None:
            return _crash_hint(exc)
        hint = _not_scalar_hint(out)
        if hint:
            return hint
        for value, why in _variants(f, t, p, s):
            if _close(out, value, 1e-4):
                return why
        ref = reference(case)
        r = _scale(out, ref)
        m = f.shape[2] * f.shape[3]
        for factor, why in ((m * p, f"you summed instead of averaging (×{m * p} = M·P): take the mean over the "
                             "directions and the positions"),
                            (m, f"×{m} = M: you summed over the positions; take the mean over them too"),
                            (p, f"×{p} = P: you summed over the directions; take the mean over them too")):
            if _near(r, factor):
                return why
        return ""

    def followup(case, out):
        f, t, _, _ = case
        return _grad_hint({"input": f, "target": t}, call(case), "loss")

    return _trials("sliced_wasserstein", cases, run, reference, diagnose, followup=followup)
