"""Checks for exercise 04: ``content_loss`` and ``tv_loss``."""
from __future__ import annotations

from typing import Callable

import torch

from .. import losses as L
from .core import (CheckResult, _close, _crash_hint, _feature_dicts, _grad_hint, _near, _not_scalar_hint,
                   _reset_grads, _scale, _sign_hint, _trials, content_layer)


def check_content_loss(content_loss: Callable, layer: str | None = None, trials: int = 4, seed: int = 0) -> CheckResult:
    r"""Check ``content_loss(features, targets) -> ½ Σ (F − P)²`` at ``layer`` (default: the engine's content layer,
    ``nstedu.losses.DEFAULT_CONTENT_LAYERS[0]``).

    ``features``/``targets``: dicts ``{layer: (1, C, H, W)}`` of the generated image's and the photo's activations,
    as ``vgg(x, layers)`` returns them (they hold other layers too)."""
    layer = layer or content_layer()
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
        sign = _sign_hint(out, ref, "½ Σ (F − P)²")
        if sign:
            return sign
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
        sign = _sign_hint(out, ref, "(Σ dy² + Σ dx²) · 255²")
        if sign:
            return sign
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
        per_pixel = (dy.pow(2).sum() + dx.pow(2).sum()) / x.numel()
        if any(_close(out, v * s) for v in (mean, per_pixel) for s in scales):
            return "you averaged (mean, or ÷ numel) the squared differences; TV sums them"
        l1 = dy.abs().sum() + dx.abs().sum()
        if any(_close(out, l1 * s) for s in scales):
            return "square the differences (this course's TV is the squared, 'β = 2' version), not the absolute value"
        if r is not None:
            return f"your loss is {r:.4g}× the reference"
        return "the value differs from (Σ dy² + Σ dx²) · 255²; compare your code with the formula"

    return _trials("tv_loss", cases, run, reference, diagnose,
                   followup=lambda x, out: _grad_hint({"input": x}, out, "TV loss"))
