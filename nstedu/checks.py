r"""Autograder for the course exercises (in the spirit of CS231n's ``rel_error`` checks, with diagnoses).

Each ``check_*`` runs your function and nstedu's reference on several random inputs, prints a verdict with
the largest ``rel_error = max |a - b| / (|a| + |b|)`` and, when the answer is wrong, tries the common mistakes
(a Gram matrix off by C·H·W, F^T F instead of F F^T, the wrong content layer, a target that is not detached,
total variation in one direction only, …) to give a targeted hint::

    from nstedu import checks
    checks.check_gram_matrix(gram_matrix)      # gram_matrix: PASSED — 5/5 random inputs, max rel_error 3.1e-08

A function that still raises ``NotImplementedError`` prints "not implemented yet" instead of raising, so an
exercise notebook runs top to bottom. Every check returns a :class:`CheckResult`.

Grading: ``python -m nstedu.checks grade exercises/03_*.ipynb`` executes notebooks (quick mode) and prints a
score per exercise.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from . import losses as L

TOL = 1e-4            # rel_error below this passes (inputs are float32)
GRADE_FILE_ENV = "NSTEDU_GRADE_FILE"
LUMA_BT601 = (0.299, 0.587, 0.114)   # Y of YIQ / YUV / YCbCr: Gatys et al. 2016 transfer luminance in YIQ
LUMA_BT709 = (0.2126, 0.7152, 0.0722)


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
    """``max |a - b| / max(1e-8, |a| + |b|)`` elementwise (CS231n's measure); inf for different shapes."""
    a, b = torch.as_tensor(a).detach().double(), torch.as_tensor(b).detach().double()
    if a.shape != b.shape:
        return math.inf
    return float(((a - b).abs() / (a.abs() + b.abs()).clamp_min(1e-8)).max()) if a.numel() else 0.0


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
    path = os.environ.get(GRADE_FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                for k, v in asdict(result).items()}) + "\n")
    return result


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
            return (f"the gradient flows into the target as well: forgot to detach the target? Use "
                    f"`target.detach()` — the target is a fixed constant, only the generated image is optimized")
        if name.startswith("input") and (grad is None or float(grad.abs().sum()) == 0):
            return "no gradient reaches the generated features: do not detach them, only the target"
    return ""


def _not_scalar_hint(out) -> str:
    if not isinstance(out, torch.Tensor):
        return f"return a torch tensor (a 0-dim loss), got {type(out).__name__}"
    if out.dim() != 0:
        return f"return a single number (0-dim tensor), got shape {tuple(out.shape)}: sum over all elements"
    return ""


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
    cases = [torch.randn(shapes[i % len(shapes)], generator=g) for i in range(trials)]

    def diagnose(f, out, exc):
        b, c, h, w = f.shape
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
            return f"your Gram matrix is {r:.4g}× the reference: divide F Fᵀ by C·H·W exactly once"
        for variant, hint in _gram_variants(f):
            for factor, _ in [(1, "")] + factors:
                if _close(out, variant / (c * h * w) * factor):
                    return hint
        if _close(torch.diagonal(out, dim1=1, dim2=2), torch.diagonal(ref, dim1=1, dim2=2) * _diag_scale(out, ref)):
            return ("only the diagonal is right: G[c, d] = Σ_positions F[c]·F[d] for every *pair* of channels — "
                    "a matrix product F @ Fᵀ, not F * F")
        if not torch.allclose(out, out.transpose(-1, -2), rtol=1e-4, atol=1e-6):
            return "your matrix is not symmetric, but G[c, d] must equal G[d, c]: compute F @ F.transpose(1, 2)"
        return "the values differ from F Fᵀ / (C·H·W); compare your code with the formula above"

    return _trials("gram_matrix", cases, lambda f: gram_matrix(f.clone()), L.gram_matrix, diagnose)


def _diag_scale(out, ref):
    d_out, d_ref = torch.diagonal(out, dim1=1, dim2=2), torch.diagonal(ref, dim1=1, dim2=2)
    return float((d_out * d_ref).sum() / (d_ref * d_ref).sum()) if float((d_ref * d_ref).sum()) else 1.0


# ------------------------------------------------------------------------------------------- content
_FEATURE_SHAPES = {"conv1_1": (1, 3, 8, 10), "conv2_1": (1, 4, 6, 5), "conv3_1": (1, 5, 4, 6), "conv4_1": (1, 6, 3, 4),
                   "conv4_2": (1, 6, 3, 4), "conv5_1": (1, 7, 2, 3), "conv5_2": (1, 7, 2, 3)}


def _feature_dicts(g):
    features = {k: torch.randn(s, generator=g).relu().requires_grad_(True) for k, s in _FEATURE_SHAPES.items()}
    targets = {k: torch.randn(s, generator=g).relu().requires_grad_(True) for k, s in _FEATURE_SHAPES.items()}
    return features, targets


def _reset_grads(*dicts):
    for d in dicts:
        for t in d.values():
            t.grad = None


def check_content_loss(content_loss: Callable, layer: str = "conv4_2", trials: int = 4, seed: int = 0) -> CheckResult:
    r"""Check ``content_loss(features, targets) -> ½ Σ (F − P)²`` at ``layer`` (default ``conv4_2``).

    ``features``/``targets``: dicts ``{layer: (1, C, H, W)}`` of the generated image's and the photo's activations,
    as ``vgg(x, layers)`` returns them (they hold other layers too)."""
    g = torch.Generator().manual_seed(seed)
    cases = [_feature_dicts(g) for _ in range(trials)]

    def reference(case):
        f, t = case
        return L.content_loss(f[layer], t[layer])

    def run(case):
        _reset_grads(*case)
        return content_loss(*case)

    def diagnose(case, out, exc):
        f, t = case
        if exc is not None:
            if isinstance(exc, KeyError):
                return f"your function looked up the layer {exc}; the content layer is '{layer}': features['{layer}']"
            return _crash_hint(exc)
        bad = _not_scalar_hint(out)
        if bad:
            if isinstance(out, torch.Tensor) and out.shape == f[layer].shape:
                return "you returned the element-wise squared differences: sum them (and multiply by ½)"
            return bad
        ref = reference(case)
        per_layer = {k: L.content_loss(f[k], t[k]) for k in f}
        for k, v in per_layer.items():
            if k != layer and any(_close(out, v * s) for s in (1, 2, 1 / f[k].numel(), 2 / f[k].numel())):
                return f"content loss on the wrong layer: your value matches '{k}'; the content layer is '{layer}'"
        if any(_close(out, sum(per_layer.values()) * s) for s in (1, 2)):
            return f"you summed over all layers; the content loss uses only '{layer}'"
        n = f[layer].numel()
        r = _scale(out, ref)
        if _near(r, 2):
            return "your loss is 2× too large: Gatys et al.'s content loss has a ½ in front: ½ Σ (F − P)²"
        if _near(r, 1 / n) or _near(r, 2 / n):
            return "you averaged (mean) the squared differences; the content loss sums them: ½ Σ (F − P)²"
        diff = (f[layer] - t[layer]).detach()
        if any(_close(out, diff.abs().sum() * s) for s in (0.5, 1)):
            return "square the differences: ½ Σ (F − P)², not the absolute value"
        if any(_close(out, diff.pow(2).sum().sqrt() * s) for s in (0.5, 1)):
            return "use the *squared* distance: ½ Σ (F − P)², without a square root"
        if r is not None:
            return f"your loss is {r:.4g}× the reference ½ Σ (F − P)²"
        return f"the value differs from ½ Σ (F − P)² at '{layer}'; compare your code with the formula"

    def followup(case, out):
        return _grad_hint({"input": case[0][layer], "target": case[1][layer]}, out, "content loss")

    return _trials("content_loss", cases, run, reference, diagnose, followup=followup)


# --------------------------------------------------------------------------------------------- style
_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1")


def check_style_loss(style_loss: Callable, trials: int = 4, seed: int = 0) -> CheckResult:
    r"""Check ``style_loss(features, target_grams, layer_weights=None) -> Σ_l w_l · ¼ Σ (Ĝ_l − Â_l)²``.

    ``features``: ``{layer: (1, C, H, W)}`` (may hold extra layers, e.g. the content layer); ``target_grams``:
    ``{layer: (1, C, C)}`` — the layers to use; ``layer_weights``: ``{layer: w_l}``, default ``1/L`` each.
    Your ``style_loss`` should call your ``gram_matrix``."""
    g = torch.Generator().manual_seed(seed)
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
        parts = variant(case)
        if _close(out, parts[list(a)[-1]]):
            return "only the last layer counts: did you write `loss = …` instead of `loss += …` in the loop?"
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


# ------------------------------------------------------------------------------------------------ tv
def check_tv_loss(tv_loss: Callable, trials: int = 4, seed: int = 0) -> CheckResult:
    r"""Check ``tv_loss(image (B, 3, H, W) in [0, 1]) -> (Σ (x[i+1,j] − x[i,j])² + Σ (x[i,j+1] − x[i,j])²) · 255²``."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(1, 3, 5, 8), (1, 3, 9, 4), (2, 3, 6, 7), (1, 3, 7, 6)]
    cases = [torch.rand(shapes[i % len(shapes)], generator=g).requires_grad_(True) for i in range(trials)]
    reference = L.tv_loss

    def run(x):
        x.grad = None
        return tv_loss(x)

    def diagnose(x, out, exc):
        if exc is not None:
            return _crash_hint(exc)
        bad = _not_scalar_hint(out)
        if bad:
            return bad
        ref = reference(x)
        x = x.detach()
        dy, dx = x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]
        k = L.TV_PIXEL_SCALE ** 2
        scales = (k, 1.0, L.TV_PIXEL_SCALE)
        if any(_close(out, dx.pow(2).sum() * s) for s in scales):
            return "TV loss using only one direction: you have the horizontal differences; add the vertical ones"
        if any(_close(out, dy.pow(2).sum() * s) for s in scales):
            return "TV loss using only one direction: you have the vertical differences; add the horizontal ones"
        r = _scale(out, ref)
        if _near(r, 1 / k):
            return "your loss is 255² times too small: measure differences in 0–255 pixel units (multiply by 255²)"
        if _near(r, 1 / L.TV_PIXEL_SCALE):
            return "multiply by 255² (squared pixel units), not by 255"
        rolled = ((x.roll(-1, -2) - x).pow(2).sum() + (x.roll(-1, -1) - x).pow(2).sum())
        if any(_close(out, rolled * s) for s in scales):
            return ("torch.roll wraps around: the last row/column is compared with the first. Use slices: "
                    "x[..., 1:, :] - x[..., :-1, :] and x[..., :, 1:] - x[..., :, :-1]")
        mean = dy.pow(2).mean() + dx.pow(2).mean()
        if any(_close(out, mean * s) for s in scales):
            return "you averaged (mean) the squared differences; TV sums them"
        l1 = dy.abs().sum() + dx.abs().sum()
        if any(_close(out, l1 * s) for s in scales):
            return "square the differences (this course's TV is the squared, 'β = 2' version), not the absolute value"
        if r is not None:
            return f"your loss is {r:.4g}× the reference"
        return "the value differs from (Σ dy² + Σ dx²) · 255²; compare your code with the formula"

    return _trials("tv_loss", cases, run, reference, diagnose,
                   followup=lambda x, out: _grad_hint({"input": x}, out, "TV loss"))


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
    from .transfer import TransferConfig, optimize

    seen = []
    cfg = TransferConfig(optimizer="adam", lr=lr, steps=steps + 1, progress=False, lr_decay_every=10_000)
    def engine_objective(x):  # the engine's objective returns (total, {term: value})
        total, zero = objective(x), x.new_zeros(())
        return total, {"total": total, "content": zero, "style": zero, "tv": zero}

    r = optimize(engine_objective, x0, cfg, callback=lambda info: seen.append(info.image.clone()), callback_every=1)
    return r.history["total"][:steps], seen[1:steps + 1]


def check_optimization_step(optimization_step: Callable, steps: int = 8) -> CheckResult:
    """Check ``optimization_step(x, objective, optimizer) -> float``: zero the gradients, compute
    ``loss = objective(x)``, ``loss.backward()``, ``optimizer.step()``, clamp ``x`` into [0, 1] in place; return
    the loss (a float). Compared with nstedu's own loop (Adam) and a reference step (SGD with momentum)."""
    exercise, unit = "optimization_step", "problems (Adam vs nstedu's loop, SGD with momentum)"
    setups = [("adam", 0.1, 0), ("sgd", 0.02, 1)]
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
        elif any(not isinstance(v, (float, int)) and not (isinstance(v, torch.Tensor) and v.numel() == 1) for v in losses):
            hint = f"return the loss as a Python float (`loss.item()`), got {type(losses[0]).__name__}"
        else:
            err = max(err, rel_error(torch.tensor([float(v) for v in losses]), torch.tensor(ref_losses)))
            if err >= TOL:
                hint = "the image is right, but return the loss computed *before* the step (the value of objective(x))"
        if hint:
            return _report(exercise, "failed", i, len(setups), err, hint, unit=unit)
        worst = max(worst, err)
    return _report(exercise, "passed", len(setups), len(setups), worst, unit=unit)


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


# ------------------------------------------------------------------------------------ colour preservation
def _luma(img, coeffs=LUMA_BT601):
    w = torch.tensor(coeffs, dtype=img.dtype).view(1, 3, 1, 1)
    return (img * w).sum(dim=1, keepdim=True)


def luminance_closed_form(stylized: torch.Tensor, content: torch.Tensor, coeffs=LUMA_BT601) -> torch.Tensor:
    r"""Luminance of ``stylized``, colour of ``content``, without a colour-space round trip.

    YIQ's I and Q rows sum to zero, so adding the same amount to R, G and B changes only Y. Hence
    "Y from ``stylized``, I and Q from ``content``" is ``content + (Y(stylized) − Y(content))`` in every channel,
    clamped to [0, 1]. Also used to diagnose variants (swapped roles, other luminance weights).
    """
    return (content + _luma(stylized, coeffs) - _luma(content, coeffs)).clamp(0, 1)


def reference_luminance_transfer(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The reference: :func:`nstedu.control.keep_content_colors` (YIQ; Gatys et al. 2016, "Preserving color in
    neural artistic style transfer"), or :func:`luminance_closed_form` where that module is absent."""
    try:
        from .control import keep_content_colors
    except ImportError:  # pragma: no cover - control.py ships with the package
        return luminance_closed_form(stylized, content)
    return keep_content_colors(stylized, content)


def _yiq(img):
    try:
        from .control import rgb_to_yiq
    except ImportError:  # pragma: no cover
        m = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=img.dtype)
        return torch.einsum("ij,bjhw->bihw", m, img)
    return rgb_to_yiq(img)


def check_luminance_transfer(luminance_transfer: Callable, trials: int = 4, seed: int = 0) -> CheckResult:
    """Check ``luminance_transfer(stylized, content) -> (1, 3, H, W)`` in [0, 1]: the stylized image's luminance
    (Y of YIQ) with the content photo's colour (I, Q). Passes within 1e-3 (a quarter of a grey level)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(1, 3, 6, 8), (1, 3, 5, 5), (1, 3, 8, 4), (1, 3, 7, 9)]
    cases = [(torch.rand(shapes[i % 4], generator=g), torch.rand(shapes[i % 4], generator=g) * 0.8 + 0.1)
             for i in range(trials)]
    cases[-1] = (cases[-1][0].round(), cases[-1][1])  # extreme stylized pixels: the result needs clamping

    def reference(case):
        return reference_luminance_transfer(*case)

    def diagnose(case, out, exc):
        s, c = case
        if exc is not None:
            return _crash_hint(exc)
        if not isinstance(out, torch.Tensor):
            return f"return a torch tensor (1, 3, H, W), got {type(out).__name__}"
        if tuple(out.shape) != tuple(c.shape):
            return f"expected shape {tuple(c.shape)} (RGB, like the inputs), got {tuple(out.shape)}"
        unclamped = c + _luma(s) - _luma(c)
        if (out - unclamped).abs().max() < 4e-3:
            return "some pixels are outside [0, 1]: clamp the result (`.clamp(0, 1)`)"
        if (out - luminance_closed_form(c, s)).abs().max() < 4e-3:
            return "swapped: you kept the stylized image's colours and the photo's luminance. Take Y from the " \
                   "stylized image and I, Q (the colour) from the content photo"
        if (out - _luma(s).expand_as(s)).abs().max() < 4e-3:
            return "you returned the luminance only (a grey image): combine it with the content's I and Q and " \
                   "convert back to RGB"
        if (out - luminance_closed_form(s, c, (1 / 3, 1 / 3, 1 / 3))).abs().max() < 4e-3:
            return "luminance is Y = 0.299 R + 0.587 G + 0.114 B (YIQ), not the plain mean of the channels"
        if (out - luminance_closed_form(s, c, LUMA_BT709)).abs().max() < 4e-3:
            return "you used BT.709 weights (0.2126, 0.7152, 0.0722); YIQ uses 0.299, 0.587, 0.114"
        yiq = torch.cat([_luma(s), _yiq(c)[:, 1:]], dim=1)
        if (out - yiq).abs().max() < 4e-3 or (out - yiq.clamp(0, 1)).abs().max() < 4e-3:
            return "you returned the YIQ image: convert it back to RGB with the inverse matrix (torch.linalg.inv)"
        if (out - s).abs().max() < 4e-3:
            return "you returned the stylized image unchanged"
        return "the result differs from Y(stylized) combined with I, Q (content); compare with the recipe above"

    def run(case):
        out = luminance_transfer(*[t.clone() for t in case])
        return out.detach().float() if isinstance(out, torch.Tensor) else out

    def abs_error(out, ref):
        return float((torch.as_tensor(out).double() - ref.double()).abs().max())

    return _trials("luminance_transfer", cases, run, reference, diagnose, error=abs_error, tol=1e-3,
                   measure="abs error (pixels in [0, 1])")


CHECKS = {"gram_matrix": check_gram_matrix, "content_loss": check_content_loss, "style_loss": check_style_loss,
          "tv_loss": check_tv_loss, "optimization_step": check_optimization_step,
          "luminance_transfer": check_luminance_transfer}


# ---------------------------------------------------------------------------------------------- grading
_CALL = re.compile(r"check_(" + "|".join(CHECKS) + r")\s*\(")


def grade_notebook(path, timeout: int = 600, quick: bool = True) -> dict:
    """Execute the notebook at ``path`` (errors allowed) and collect its checks' results.

    Returns ``{"notebook", "results": {exercise: CheckResult as dict}, "errors": [first line of each cell error]}``;
    an exercise whose check call is in the notebook but never reported counts as "not run".
    """
    import tempfile
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    expected = list(dict.fromkeys(m.group(1) for c in nb.cells if c.cell_type == "code" for m in _CALL.finditer(c.source)))
    fd, log = tempfile.mkstemp(prefix="nstedu-grade-", suffix=".jsonl")
    os.close(fd)
    saved = {k: os.environ.get(k) for k in (GRADE_FILE_ENV, "NSTEDU_QUICK", "MPLBACKEND")}
    os.environ.update({GRADE_FILE_ENV: log, "MPLBACKEND": "Agg"})
    if quick:
        os.environ["NSTEDU_QUICK"] = "1"
    try:
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent.resolve())}})
        client.execute()
        with open(log, encoding="utf-8") as f:
            reported = [json.loads(line) for line in f if line.strip()]
    finally:
        os.unlink(log)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    results = {}
    for r in reported:  # the last report of an exercise counts
        results[r["exercise"]] = r
    for name in expected:
        results.setdefault(name, dict(exercise=name, status="not run", passed=0, total=0, rel_error=None, hint=""))
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return {"notebook": str(path), "results": results, "errors": errors}


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m nstedu.checks",
                                description="Grade exercise notebooks: execute them and score each exercise.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="execute notebooks and print a score per exercise")
    g.add_argument("notebooks", nargs="+", help="exercise notebooks (e.g. exercises/03_*.ipynb, or a student's copy)")
    g.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    g.add_argument("--full", action="store_true", help="run without NSTEDU_QUICK (slower, full-size demos)")
    g.add_argument("--json", action="store_true", help="print the results as JSON (for a gradebook)")
    args = p.parse_args(argv)
    reports, total, got = [], 0, 0
    for nb in args.notebooks:
        if not os.path.isfile(nb):
            print(f"{nb}: notebook not found", file=sys.stderr)
            return 2
        report = grade_notebook(nb, args.timeout, quick=not args.full)
        reports.append(report)
        if args.json:
            continue
        print(f"{report['notebook']}")
        points = 0
        for name, r in report["results"].items():
            point = 1 if r["status"] == "passed" else 0
            points += point
            detail = f"{r['passed']}/{r['total']} inputs" if r["total"] else ""
            print(f"  {name:<20} {r['status']:<16} {detail:<11} {point} / 1")
            if r["hint"] and r["status"] == "failed":
                print(f"  {'':<20} hint: {r['hint']}")
        if report["errors"]:
            print(f"  {len(report['errors'])} cell(s) raised an error, first: {report['errors'][0]}")
        print(f"  notebook score: {points} / {len(report['results'])}")
        total, got = total + len(report["results"]), got + points
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        print(f"total score: {got} / {total}" + (f" ({100 * got / total:.0f} %)" if total else " (no checks found)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
