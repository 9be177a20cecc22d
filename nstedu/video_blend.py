"""Fast video mode's blend of the warped previous output into the network's new frame, keeping the strokes' detail.

Blending, ``out = y + b·m·(w − y)`` (``y`` the network's frame, ``w`` the previous output warped along the flow,
``m`` the flow's reliability mask), averages two drawings of the same strokes. Where they agree it changes nothing;
where they differ (the network draws a stroke a little elsewhere in the next frame, the warp resamples it) the
average is a fainter, blurrier stroke. For two uncorrelated textures of variance σ² the blend has variance
(b² + (1 − b)²)·σ², and carried from frame to frame the loss compounds: at b = 0.5 the strokes settle at a third
of their variance. The style distance (the Gram matrices of the painting's features) counts that loss: it is what
limits blending on models with fine strokes (``nstedu/models/README.md``).

:func:`keep_detail` gives the strokes their energy back. The blend is split into a coarse band (a Gaussian blur of
``sigma`` px: colour, light, layout) and a fine band (the rest: the strokes). The coarse band stays as blended. The
fine band is scaled, pixel by pixel, up to the local energy of the new frame's fine band (both measured over a
Gaussian window of ``window`` px), by a factor between 1 (never less detail than the plain blend) and 1/√(b²+(1−b)²)
(times a little :data:`HEADROOM` for the warp's resampling): the factor that keeps the variance of a blend of two
uncorrelated textures, the variance-preserving blending of Heitz & Neyret (2018, *High-performance by-example noise
using a histogram-preserving blending operator*). Where the two drawings agree the blend's detail already matches
and the factor is 1; where they are unrelated it is the full factor. The carried strokes then change slowly from
frame to frame instead of fading into a blur. The energies are compared over the blended pixels only, and the gain
is scaled by the blend's mask: a pixel that was let go (the flow's reliability test: a small object it cannot
follow) keeps the network's frame exactly, and its blended neighbours get their detail back like any others.
Measured (``benchmarks/RESULTS.md``, *bench_video real fast*): for ``starry_night`` at blend 0.8 it lowers the
warping error more than the plain blend at 0.5 does, at less style distance.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

#: The coarse band: what a Gaussian of this many pixels keeps (the networks' strokes are a few pixels wide, at any
#: frame size: the networks are convolutional).
DETAIL_SIGMA = 2.0
#: The window over which the fine bands' energies are compared (Gaussian, px).
ENERGY_SIGMA = 4.0
#: How far above the variance-preserving factor the gain may go: the carried strokes are also resampled by the warp
#: at every frame (bicubic: a little blur each time), which the two-texture formula does not count. Measured on
#: ``starry_night`` at blend 0.8 (held-out cup clips, ``nstedu/models/README.md``; energies over all pixels, the gain
#: not yet scaled by the mask): 1.0 left +10.8..+11.6 % style distance on two of them, 1.15 +8.5..+9.8 %, for
#: 0.7..1.1 points less flicker reduction; 1.25 within 0.3 points of 1.15.
HEADROOM = 1.15


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` (B, C, H, W) blurred by a Gaussian of ``sigma`` px, separably (rows, then columns; edges mirrored), as
    weighted sums of shifted copies: on a CPU 4× faster than a depthwise convolution (14 ms for two 640×360
    frames)."""
    r = max(1, min(math.ceil(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1))
    k = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-r, r + 1)]
    total = sum(k)
    k = [v / total for v in k]

    def along(x: torch.Tensor, dim: int) -> torch.Tensor:
        padded = F.pad(x, (r, r, 0, 0) if dim == -1 else (0, 0, r, r), mode="reflect")
        n = x.shape[dim]
        return sum(w * padded.narrow(dim, i, n) for i, w in enumerate(k))
    return along(along(x, -1), -2)


def blend(y: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor, share: float) -> torch.Tensor:
    """The plain blend: ``share`` of ``warped`` on the pixels where ``mask`` is 1, ``y`` elsewhere."""
    return y + share * mask * (warped - y)


def keep_detail(y: torch.Tensor, blended: torch.Tensor, share: float, mask: Optional[torch.Tensor] = None,
                sigma: float = DETAIL_SIGMA, window: float = ENERGY_SIGMA, headroom: float = HEADROOM) -> torch.Tensor:
    """``blended`` (a blend of ``share`` of the previous output into ``y``) with its fine band scaled up to ``y``'s
    local energy, by at most ``headroom`` × the variance-preserving factor 1/√(share² + (1 − share)²); in [0, 1].
    ``mask``: the blend's (B, 1, H, W) weights; the energies are compared over the blended pixels only, and the
    gain is scaled by it, so a pixel that was not blended (let go: a small object the flow cannot follow) stays
    exactly ``y``, and its blended neighbours are restored as fully as any others."""
    both = torch.cat([y, blended])                          # one pass of each blur for the two images
    coarse_both = blur(both, sigma)
    fine_both = both - coarse_both
    energies = fine_both.square().sum(1, keepdim=True)
    if mask is not None:   # over the blended pixels only: a let-go neighbour (y in both) would pull the ratio to 1
        energies = energies * torch.cat([mask, mask])       # (the window's weight of them cancels in the ratio)
    energy_y, energy = blur(energies, window).chunk(2)
    coarse, fine = coarse_both[y.shape[0]:], fine_both[y.shape[0]:]
    most = headroom / math.sqrt(share ** 2 + (1.0 - share) ** 2)
    gain = (energy_y / energy.clamp_min(1e-8)).sqrt().clamp_(1.0, most)
    if mask is not None:
        gain = 1.0 + (gain - 1.0) * mask
    return (coarse + gain * fine).clamp_(0, 1)
