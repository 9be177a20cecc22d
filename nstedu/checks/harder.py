"""Checks for the harder track: an L-BFGS step that handles the clamp, masked Gram matrices, and colour histogram
matching. The exercises give only the signature and the formula; the checks still name the common mistakes."""
from __future__ import annotations

import math
from typing import Callable

import torch

from .. import losses as L
from ..control import match_color_histogram
from .core import CheckResult, _close, _crash_hint, _report, _scale, _near, _trials, rel_error
from .optimization import _is_number, _tiny_problem

LBFGS_SETTINGS = dict(lr=1.0, max_iter=4, history_size=10, line_search_fn="strong_wolfe")


# --------------------------------------------------------------------------------------------- L-BFGS
def reference_lbfgs_step(x, objective, optimizer, clamp_in_closure: bool = True, clamp_after: bool = True,
                         zero: bool = True) -> float:
    """One L-BFGS step keeping the pixels in [0, 1]: every evaluation (the line search's trial points too) sees a
    clamped image, and the result is clamped. Returns the loss of the first evaluation. The keywords switch off
    one part at a time, to diagnose the common mistakes."""
    def closure():
        if clamp_in_closure:
            with torch.no_grad():
                x.clamp_(0, 1)
        if zero:
            optimizer.zero_grad()
        loss = objective(x)
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    if clamp_after:
        with torch.no_grad():
            x.clamp_(0, 1)
    return loss.item()


def _lbfgs_trajectory(step_fn, seed: int, steps: int):
    x0, objective = _tiny_problem(seed)
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], **LBFGS_SETTINGS)
    losses, xs = [], []
    for _ in range(steps):
        losses.append(step_fn(x, objective, opt))
        xs.append(x.detach().clone())
    return losses, xs


def check_lbfgs_step(lbfgs_step: Callable, steps: int = 3, seed: int = 0) -> CheckResult:
    """Check ``lbfgs_step(x, objective, optimizer) -> float`` (``optimizer`` a ``torch.optim.LBFGS`` on ``[x]``):
    a closure that clamps ``x`` into [0, 1], zeroes the gradients, evaluates and back-propagates; ``x`` clamped
    after the step; the first evaluation's loss returned as a float."""
    exercise, unit = "lbfgs_step", "problems (L-BFGS, strong-Wolfe line search)"
    seeds = (seed, seed + 1)
    worst = 0.0
    for i, s in enumerate(seeds):
        ref_losses, ref_xs = _lbfgs_trajectory(reference_lbfgs_step, s, steps)
        try:
            losses, xs = _lbfgs_trajectory(lbfgs_step, s, steps)
        except NotImplementedError as e:
            return _report(exercise, "not implemented", i, len(seeds), math.nan, str(e) or exercise)
        except TypeError as e:
            hint = _crash_hint(e)
            if "closure" in str(e):
                hint = "LBFGS.step needs a closure: optimizer.step(closure), where closure() returns the loss"
            return _report(exercise, "failed", i, len(seeds), math.nan, hint, unit=unit)
        except Exception as e:
            return _report(exercise, "failed", i, len(seeds), math.nan, _crash_hint(e), unit=unit)
        err = rel_error(torch.stack(xs), torch.stack(ref_xs))
        if err >= 1e-4:
            return _report(exercise, "failed", i, len(seeds), err, _diagnose_lbfgs(xs, s, steps), unit=unit)
        if not all(_is_number(v) for v in losses):
            bad = next(v for v in losses if not _is_number(v))
            return _report(exercise, "failed", i, len(seeds), err,
                           f"return the loss as a Python float (float(loss) or loss.item()), got {type(bad).__name__}",
                           unit=unit)
        err = max(err, rel_error(torch.tensor([float(v) for v in losses]), torch.tensor(ref_losses)))
        if err >= 1e-4:
            return _report(exercise, "failed", i, len(seeds), err, "the image is right, but return the loss of the "
                           "first evaluation (what optimizer.step(closure) returns)", unit=unit)
        worst = max(worst, err)
    return _report(exercise, "passed", len(seeds), len(seeds), worst, unit=unit)


def _diagnose_lbfgs(xs, seed, steps) -> str:
    if any(float(v.min()) < 0 or float(v.max()) > 1 for v in xs):
        return "pixels left [0, 1]: clamp x in place (under torch.no_grad()) inside the closure and after the step"
    variants = [
        (dict(clamp_in_closure=False), "you clamp only after the step: the line search evaluates images outside "
         "[0, 1] and L-BFGS's curvature pairs describe points the image never reaches. Clamp inside the closure too"),
        (dict(zero=False), "zero the gradients inside the closure: L-BFGS calls it several times per step and the "
         "gradients would add up"),
    ]
    for kw, hint in variants:
        _, vxs = _lbfgs_trajectory(lambda x, o, opt: reference_lbfgs_step(x, o, opt, **kw), seed, steps)
        if rel_error(torch.stack(xs), torch.stack(vxs)) < 1e-4:
            return hint
    return "your steps differ from: closure (clamp, zero_grad, loss, backward, return loss) → step(closure) → clamp"


# ----------------------------------------------------------------------------------------- masked Gram
def check_masked_gram_matrix(masked_gram_matrix: Callable, trials: int = 4, seed: int = 0) -> CheckResult:
    r"""Check ``masked_gram_matrix(features (1, C, H, W), mask (1, 1, H, W) in [0, 1]) -> (1, C, C)``
    = :math:`(F m)(F m)^\top / (C \sum m)`: the Gram matrix of the masked region, independent of its area."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(1, 3, 4, 5), (1, 4, 6, 3), (1, 2, 5, 5), (1, 5, 3, 4)]
    cases = []
    for i in range(trials):
        f = torch.randn(shapes[i % 4], generator=g).relu().requires_grad_(True)
        m = torch.rand((1, 1) + shapes[i % 4][2:], generator=g)
        cases.append((f, m if i % 2 else (m > 0.5).float()))   # soft and hard masks

    def reference(case):
        f, m = case
        return L.gram_matrix(f.detach(), m)

    def run(case):
        f, m = case
        f.grad = None
        return masked_gram_matrix(f, m.clone())

    def diagnose(case, out, exc):
        f, m = case
        f = f.detach()
        if exc is not None:
            return _crash_hint(exc)
        if not isinstance(out, torch.Tensor):
            return f"return a torch tensor (1, C, C), got {type(out).__name__}"
        b, c, h, w = f.shape
        flat, mm = f.reshape(b, c, h * w), m.reshape(1, 1, h * w)
        fm = flat * mm
        area = float(mm.sum())
        r = _scale(out, reference(case))
        if _near(r, area / (h * w)):
            return "divide by C · Σm (the masked area), not by C·H·W: the region's statistics must not depend on its size"
        if r is not None:
            return f"your matrix is {r:.4g}× the reference (F m)(F m)ᵀ / (C Σm)"
        once = flat @ fm.transpose(1, 2) / (c * area)
        if _close(out, once) or _close(out, once * area / (h * w)):
            return ("apply the mask to both factors: (F·m)(F·m)ᵀ — with the mask on one side only, a soft mask "
                    "counts once instead of twice")
        return "the values differ from (F m)(F m)ᵀ / (C Σm); compare your code with the formula"

    def followup(case, out):
        return "" if out.requires_grad else "your Gram matrix has no gradient: do not detach the features"

    return _trials("masked_gram_matrix", cases, run, reference, diagnose, followup=followup)


# ------------------------------------------------------------------------------------ colour histogram
def _cholesky_variant(style, content, eps: float = 0.0, upper: bool = False):
    """Colour matching with Cholesky factors instead of symmetric square roots: ``L_c L_s⁻¹ (x − μs) + μc`` (the
    mean and covariance match, the colours rotate), with ``eps · I`` added to both covariances as notebook 11 says;
    ``upper``: the upper factors ``U = Lᵀ`` (then not even the covariance matches). Not clamped."""
    s, c = style.reshape(3, -1).double(), content.reshape(3, -1).double()
    eye = torch.eye(3, dtype=torch.float64) * eps
    ls, lc = (torch.linalg.cholesky(torch.cov(t) + eye, upper=upper) for t in (s, c))
    out = lc @ torch.linalg.solve_triangular(ls, s - s.mean(1, keepdim=True), upper=upper) + c.mean(1, keepdim=True)
    return out.reshape(style.shape).float()


def _pca_variant(style, content, eps: float = 1e-5):
    """``V_c Λc^½ Λs^-½ V_sᵀ (x − μs) + μc``: each covariance's own eigenvectors (a 'PCA' match, not clamped)."""
    s, c = style.reshape(3, -1).double(), content.reshape(3, -1).double()
    eye = torch.eye(3, dtype=torch.float64) * eps
    (ls, vs), (lc, vc) = (torch.linalg.eigh(torch.cov(t) + eye) for t in (s, c))
    a = vc @ torch.diag(lc.clamp_min(1e-12).sqrt() / ls.clamp_min(1e-12).sqrt()) @ vs.T
    return (a @ (s - s.mean(1, keepdim=True)) + c.mean(1, keepdim=True)).reshape(style.shape).float()


def _colour_mistakes(style, content) -> list:
    """``(image, hint)`` for the known wrong recipes, each with and without the 1e-5 regularization and the clamp."""
    cholesky = ("your mean and covariance match, but Cholesky factors (with or without the + 1e-5·I) are not the "
                "symmetric square roots the formula asks for: L_c L_s⁻¹ rotates the colours. Use "
                "Σ^{±1/2} = V diag(λ^{±1/2}) Vᵀ from torch.linalg.eigh")
    upper = ("you used the upper Cholesky factors U = Lᵀ (torch.linalg.cholesky(..., upper=True)): the covariance "
             "does not even match. The formula needs the symmetric square roots Σ^{±1/2} = V diag(λ^{±1/2}) Vᵀ "
             "(torch.linalg.eigh)")
    pca = ("close: you scaled along each covariance's own eigenvectors (V_c Λc^½ Λs^-½ V_sᵀ), but the symmetric "
           "square roots are Σc^½ = V_c diag(λc^½) V_cᵀ and Σs^-½ = V_s diag(λs^-½) V_sᵀ — two full products")
    out = []
    for eps in (1e-5, 0.0):
        out += [(_cholesky_variant(style, content, eps), cholesky),
                (_cholesky_variant(style, content, eps, upper=True), upper),
                (_pca_variant(style, content, eps), pca)]
    return [(v, hint) for image, hint in out for v in (image.clamp(0, 1), image)]


def check_match_color_histogram(match: Callable, trials: int = 4, seed: int = 0) -> CheckResult:
    r"""Check ``match_color_histogram(style, content) -> (1, 3, H, W)``: the style image recoloured so that its RGB
    mean and covariance are the content's, :math:`x' = \Sigma_c^{1/2}\Sigma_s^{-1/2}(x - \mu_s) + \mu_c` with
    *symmetric* matrix square roots, clamped to [0, 1] (reference: :func:`nstedu.control.match_color_histogram`)."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for i in range(trials):
        hw_s, hw_c = ((12, 16), (12, 16)) if i % 2 == 0 else ((10, 14), (16, 12))
        mix_s, mix_c = torch.rand(3, 3, generator=g) * 0.5, torch.rand(3, 3, generator=g) * 0.5
        style = torch.einsum("ij,bjhw->bihw", mix_s, torch.rand((1, 3) + hw_s, generator=g)) + 0.2
        content = torch.einsum("ij,bjhw->bihw", mix_c, torch.rand((1, 3) + hw_c, generator=g)) + 0.1
        cases.append((style.clamp(0, 1), content.clamp(0, 1)))

    def reference(case):
        return match_color_histogram(*case)

    def run(case):
        out = match(*[t.clone() for t in case])
        return out.detach().float() if isinstance(out, torch.Tensor) else out

    def abs_error(out, ref):  # NaN anywhere is an infinite error (NaN >= tol is False: it would pass)
        return float((torch.as_tensor(out).double() - ref.double()).abs().max().nan_to_num(math.inf))

    def diagnose(case, out, exc):
        style, content = case
        if exc is not None:
            return _crash_hint(exc)
        if not isinstance(out, torch.Tensor) or out.shape != style.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            return f"return the recoloured style image, shape {tuple(style.shape)}, got {got}"
        near = lambda a: float((out - a).abs().max()) < 2e-3  # noqa: E731
        for image, hint in _colour_mistakes(style, content):
            if near(image):
                return hint
        swapped = match_color_histogram(content, style)     # the content's shape: comparable when the two agree
        if swapped.shape == out.shape and near(swapped):
            return "swapped: recolour the *style* image with the *content* photo's statistics"
        if float(out.min()) < 0 or float(out.max()) > 1:
            return "clamp the result to [0, 1]"
        return "the colours differ from Σc^½ Σs^-½ (x − μs) + μc; compare your code with the formula"

    return _trials("match_color_histogram", cases, run, reference, diagnose, error=abs_error, tol=1e-3,
                   measure="abs error (pixels in [0, 1])")
