"""Check for exercise 07: ``luminance_transfer`` (keep the photo's colours, take the stylized luminance)."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..control import keep_content_colors, rgb_to_yiq
from .core import CheckResult, _crash_hint, _trials

LUMA_BT601 = (0.299, 0.587, 0.114)   # Y of YIQ / YUV / YCbCr: Gatys et al. 2016 transfer luminance in YIQ
LUMA_BT709 = (0.2126, 0.7152, 0.0722)


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
    neural artistic style transfer")."""
    return keep_content_colors(stylized, content)


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
        yiq = torch.cat([_luma(s), rgb_to_yiq(c)[:, 1:]], dim=1)
        if (out - yiq).abs().max() < 4e-3 or (out - yiq.clamp(0, 1)).abs().max() < 4e-3:
            return "you returned the YIQ image: convert it back to RGB with the inverse matrix (torch.linalg.inv)"
        if (out - s).abs().max() < 4e-3:
            return "you returned the stylized image unchanged"
        return "the result differs from Y(stylized) combined with I, Q (content); compare with the recipe above"

    def run(case):
        out = luminance_transfer(*[t.clone() for t in case])
        return out.detach().float() if isinstance(out, torch.Tensor) else out

    def abs_error(out, ref):  # NaN anywhere is an infinite error (NaN >= tol is False: it would pass)
        return float((torch.as_tensor(out).double() - ref.double()).abs().max().nan_to_num(math.inf))

    return _trials("luminance_transfer", cases, run, reference, diagnose, error=abs_error, tol=1e-3,
                   measure="abs error (pixels in [0, 1])")
