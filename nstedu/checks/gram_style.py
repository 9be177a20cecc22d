"""Checks for exercise 03: ``gram_matrix`` and ``style_loss``."""
from __future__ import annotations

from typing import Callable

import torch

from .. import losses as L
from .core import (CheckResult, _close, _crash_hint, _feature_dicts, _grad_hint, _near, _not_scalar_hint,
                   _reset_grads, _scale, _sign_hint, _trials, rel_error, style_layers)


# ---------------------------------------------------------------------------------------------- gram
def _gram_variants(f):
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    wrong_view = f.reshape(b, h * w, c)  # view(b, -1, c): channels and positions scrambled
    centred = flat - flat.mean(dim=2, keepdim=True)
    return [
        (wrong_view.transpose(1, 2) @ wrong_view, "you reshaped the features to (B, H·W, C); the tensor is stored "
         "channels-first, so reshape to (B, C, H·W) — `features.reshape(b, c, h * w)` — then G = F Fᵀ"),
        (centred @ centred.transpose(1, 2), "you subtracted the mean (that is a covariance); the Gram matrix uses "
         "the raw activations"),
    ]


def check_gram_matrix(gram_matrix: Callable, trials: int = 5, seed: int = 0) -> CheckResult:
    r"""Check ``gram_matrix(features (B, C, H, W)) -> (B, C, C)`` = :math:`F F^\top / (C H W)`."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(1, 3, 4, 5), (2, 4, 3, 7), (1, 6, 5, 2), (1, 2, 9, 4), (3, 5, 2, 3)]
    cases = [torch.randn(shapes[i % len(shapes)], generator=g).requires_grad_(True) for i in range(trials)]

    def diagnose(f, out, exc):
        b, c, h, w = f.shape
        f = f.detach()
        out = out.detach() if isinstance(out, torch.Tensor) else out
        if exc is not None:
            return _crash_hint(exc)
        if not isinstance(out, torch.Tensor):
            return f"return a torch tensor of shape (B, C, C), got {type(out).__name__}"
        ref = L.gram_matrix(f)
        shape = tuple(out.shape)
        if shape in ((b, h * w, h * w), (h * w, h * w)):
            return ("you computed Fᵀ F (positions × positions); the Gram matrix is F Fᵀ — channels × channels, "
                    f"shape (B, C, C) = {(b, c, c)}")
        if shape == (c, c):
            return f"keep the batch dimension: return shape (B, C, C) = {(b, c, c)} (use torch.bmm or @ on (B, C, H·W))"
        if shape != (b, c, c):
            return f"expected shape (B, C, C) = {(b, c, c)}, got {shape}"
        degenerate = _degenerate_gram_hint(out)
        if degenerate:
            return degenerate
        r = _scale(out, ref)
        factors = [(c * h * w, "C·H·W"), (c, "C"), (h * w, "H·W"), (1 / (c * h * w), "1/(C·H·W)")]
        if r is not None:
            if _near(r, c * h * w):
                return (f"your Gram matrix is {c * h * w}× too large (= C·H·W for this input): not normalized — "
                        "divide by C·H·W")
            if _near(r, c):
                return f"your Gram matrix is {c}× too large (= C): you divided by H·W only — divide by C·H·W"
            if _near(r, h * w):
                return f"your Gram matrix is {h * w}× too large (= H·W): you divided by C only — divide by C·H·W"
            if _near(r, 1 / (c * h * w)):
                return "your Gram matrix is C·H·W times too small: you divided by C·H·W twice"
            if b > 1 and _near(r, 1 / b):
                return (f"your Gram matrix is {b}× too small (= the batch size B): you divided by features.numel() = "
                        "B·C·H·W; normalize each image by its own C·H·W")
            if r < 0:
                return (f"the sign is flipped: your Gram matrix is {r:.4g}× the reference, but its diagonal "
                        "G[c, c] = Σ F[c]² / (C·H·W) can never be negative — G = F Fᵀ / (C·H·W), no minus sign")
            return f"your Gram matrix is {r:.4g}× the reference: divide F Fᵀ by C·H·W exactly once"
        for variant, hint in _gram_variants(f):
            for factor, _ in [(1, "")] + factors:
                if _close(out, variant / (c * h * w) * factor):
                    return hint
        d_scale = _diag_scale(out, ref)
        if d_scale > 0 and _close(torch.diagonal(out, dim1=1, dim2=2), torch.diagonal(ref, dim1=1, dim2=2) * d_scale):
            return ("only the diagonal is right: G[c, d] = Σ_positions F[c]·F[d] for every *pair* of channels — "
                    "a matrix product F @ Fᵀ, not F * F")
        if not torch.allclose(out, out.transpose(-1, -2), rtol=1e-4, atol=1e-6):
            return "your matrix is not symmetric, but G[c, d] must equal G[d, c]: compute F @ F.transpose(1, 2)"
        return "the values differ from F Fᵀ / (C·H·W); compare your code with the formula above"

    def run(f):
        f.grad = None
        return gram_matrix(f)

    return _trials("gram_matrix", cases, run, lambda f: L.gram_matrix(f.detach()), diagnose, followup=_gram_grad_hint)


def _gram_grad_hint(f, out) -> str:
    """A Gram matrix with the right values must also pass the gradient back to the features (the style loss
    optimizes the image *through* it): compare d(Σ R ⊙ G)/dF with the reference's for a random R."""
    if not out.requires_grad:
        return ("your Gram matrix has the right values but no gradient: it is detached from the features (.detach(), "
                "torch.no_grad(), .numpy(), .data or torch.tensor(...) on the way), so the style loss could not change "
                "the image. Compute it with torch operations on `features` itself")
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (grad,) = torch.autograd.grad((out * weights).sum(), f, allow_unused=True)
    ref_f = f.detach().clone().requires_grad_(True)
    (ref,) = torch.autograd.grad((L.gram_matrix(ref_f) * weights).sum(), ref_f)
    if grad is None or float(grad.abs().sum()) == 0:
        return "no gradient reaches the features through your Gram matrix: do not detach any part of F"
    if rel_error(grad, ref) > 1e-3:
        return ("the values are right but the gradient is not: part of the product is detached (e.g. F @ F.detach().T); "
                "both factors must be the features")
    return ""


def _degenerate_gram_hint(out) -> str:
    """Outputs that match no formula at all (NaN, all zeros, one value everywhere): say what they are, before any
    comparison with the reference can find a meaningless coincidence (a zero matrix has a "right" diagonal × 0)."""
    out = out.double()
    if not torch.isfinite(out).all():
        return ("your Gram matrix contains NaN or inf: look for a division by zero (an empty dimension, "
                "a size computed as 0) or an operation on uninitialized memory (torch.empty)")
    if float(out.abs().max()) == 0:
        return ("your Gram matrix is all zeros: was the product ever computed (a torch.zeros that is never filled, "
                "a loop that never runs, an integer division)? G = F Fᵀ / (C·H·W) with F = features.reshape(B, C, H·W)")
    if float((out - out.flatten(1)[:, :1, None]).abs().max()) == 0:
        return (f"every entry of your Gram matrix is the same number ({float(out.flatten()[0]):.4g}): a sum over "
                "everything (e.g. (F * F).sum() broadcast) is not a product per pair of channels — G = F Fᵀ / (C·H·W)")
    return ""


def _diag_scale(out, ref):
    d_out, d_ref = torch.diagonal(out, dim1=1, dim2=2), torch.diagonal(ref, dim1=1, dim2=2)
    return float((d_out * d_ref).sum() / (d_ref * d_ref).sum()) if float((d_ref * d_ref).sum()) else 1.0


# --------------------------------------------------------------------------------------------- style
def _check_layers() -> tuple:
    return style_layers()[:3]


def check_style_loss(style_loss: Callable, trials: int = 4, seed: int = 0) -> CheckResult:
    r"""Check ``style_loss(features, target_grams, layer_weights=None) -> Σ_l w_l · ¼ Σ (Ĝ_l − Â_l)²``.

    ``features``: ``{layer: (1, C, H, W)}`` (may hold extra layers, e.g. the content layer); ``target_grams``:
    ``{layer: (1, C, C)}`` — the layers to use; ``layer_weights``: ``{layer: w_l}``, default ``1/L`` each.
    Your ``style_loss`` should call your ``gram_matrix``."""
    g = torch.Generator().manual_seed(seed)
    _STYLE_LAYERS = _check_layers()
    cases = []
    for i in range(trials):
        f, t = _feature_dicts(g)
        grams = {k: L.gram_matrix(t[k].detach()).requires_grad_(True) for k in _STYLE_LAYERS}
        weights = None if i % 2 == 0 else {k: float(w) for k, w in zip(_STYLE_LAYERS, torch.rand(3, generator=g) + 0.2)}
        cases.append((f, grams, weights))

    def reference(case):
        f, a, w = case
        return L.style_loss(f, a, w)

    def run(case):
        f, a, w = case
        _reset_grads(f, a)
        return style_loss(f, a) if w is None else style_loss(f, a, w)

    def variant(case, gram=L.gram_matrix, layer_loss=L.style_layer_loss, weights="given"):
        f, a, w = case
        ws = w if (w is not None and weights == "given") else {k: (1.0 if weights == "ones" else 1 / len(a)) for k in a}
        return {k: ws[k] * layer_loss(gram(f[k]), a[k]) for k in a}

    def diagnose(case, out, exc):
        f, a, w = case
        if exc is not None:
            if isinstance(exc, KeyError):
                return ("loop over the layers of target_grams (the features dict also holds other layers, e.g. the "
                        f"content layer) — missing key {exc}")
            if "gram_matrix" in str(exc) or "size of tensor" in str(exc) or "shape" in str(exc):
                return f"{_crash_hint(exc)} — does check_gram_matrix pass? Fix gram_matrix first"
            return _crash_hint(exc)
        bad = _not_scalar_hint(out)
        if bad:
            return bad
        ref = reference(case)
        sign = _sign_hint(out, ref, "Σ_l w_l · ¼ Σ (Ĝ_l − Â_l)²")
        if sign:
            return sign
        parts = variant(case)
        if _close(out, parts[list(a)[-1]]):
            return "only the last layer counts: did you write `loss = …` instead of `loss += …` in the loop?"
        weights = w if w is not None else {k: 1 / len(a) for k in a}
        single = [k for k in a if _close(out, parts[k]) or _close(out, parts[k] / weights[k])]
        if single:
            k = single[0]
            where = "is your `return` inside the loop? " if k == list(a)[0] else ""
            return (f"only one layer ('{k}') counts: {where}add up w_l · E_l over every layer of target_grams "
                    "before returning")
        r = _scale(out, ref)
        if _near(r, 4):
            return "your loss is 4× too large: each layer's loss is ¼ Σ (Ĝ − Â)² (the ¼ of Gatys et al.)"
        if w is not None and _close(out, sum(variant(case, weights="uniform").values())):
            return "you ignored layer_weights: multiply each layer's loss by layer_weights[layer]"
        if w is None and _close(out, sum(variant(case, weights="ones").values())):
            return "with layer_weights=None each of the L layers gets weight 1/L (you used 1)"
        unnormalized = lambda x: L.gram_matrix(x) * x.shape[1] * x.shape[2] * x.shape[3]  # noqa: E731
        for wt in ("given", "uniform", "ones"):
            if _close(out, sum(variant(case, gram=unnormalized, weights=wt).values()) * 1, 1e-2) or \
               _close(out, sum(variant(case, gram=unnormalized, weights=wt).values()) * 4, 1e-2):
                return ("your loss matches one built on an un-normalized Gram matrix: does check_gram_matrix pass? "
                        "The target Grams are normalized by C·H·W")
        mean_loss = lambda G, A: 0.25 * (G - A.detach()).pow(2).mean()  # noqa: E731
        if any(_close(out, sum(variant(case, layer_loss=mean_loss).values()) * s) for s in (1, 4)):
            return "you averaged (mean) over the Gram entries; the layer loss sums them: ¼ Σ (Ĝ − Â)²"
        l1_loss = lambda G, A: (G - A.detach()).abs().sum()  # noqa: E731
        if any(_close(out, sum(variant(case, layer_loss=l1_loss).values()) * s) for s in (1, 0.25, 0.5)):
            return "square the differences: ¼ Σ (Ĝ − Â)², not the absolute value |Ĝ − Â| (an L1 distance)"
        norm_loss = lambda G, A: (G - A.detach()).pow(2).sum().sqrt()  # noqa: E731
        if any(_close(out, sum(variant(case, layer_loss=norm_loss).values()) * s) for s in (1, 0.25, 0.5)):
            return "use the *squared* distance ¼ Σ (Ĝ − Â)², without a square root"
        if r is not None:
            return f"your loss is {r:.4g}× the reference Σ_l w_l ¼ Σ (Ĝ_l − Â_l)²"
        return "the value differs from Σ_l w_l · ¼ Σ (Ĝ_l − Â_l)²; compare your code with the formula"

    def followup(case, out):
        grads = {"input": case[0][_STYLE_LAYERS[0]], **{f"target {k}": v for k, v in case[1].items()}}
        return _grad_hint(grads, out, "style loss")

    return _trials("style_loss", cases, run, reference, diagnose, followup=followup)
