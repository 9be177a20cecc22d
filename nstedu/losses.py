r"""The losses of neural style transfer (Gatys, Ecker & Bethge, "A Neural Algorithm of Artistic Style", 2015).

With :math:`F^l` the features of the generated image at layer :math:`l` (:math:`N_l` channels ×
:math:`M_l = H_l W_l` positions), :math:`P^l` those of the content photo and :math:`A^l` the style Gram matrix:

* Gram matrix (normalized):   :math:`\hat G^l = F^l F^{l\top} / (N_l M_l)` — the average over positions of
  the channel co-activations, so it does not grow with the image size.
* Content loss:               :math:`L_c = \tfrac12 \sum (F^l - P^l)^2 \cdot s`
* Style loss of one layer:    :math:`E_l = \tfrac14 \sum (\hat G^l - \hat A^l)^2
  = \sum (G^l - A^l)^2 / (4 N_l^2 M_l^2)` (Gatys et al.'s exact form)
* Style loss:                 :math:`L_s = \sum_l w_l E_l` with :math:`w_l = 1/5` over conv1_1…conv5_1
* Total variation:            :math:`L_{tv} = \sum (x_{i+1,j} - x_{i,j})^2 + (x_{i,j+1} - x_{i,j})^2 \cdot s` (x in 0–255)
* Total:                      :math:`L = \alpha L_c + \beta L_s + \gamma L_{tv}`

These are Gatys et al.'s normalizations on the Caffe network's feature scale, for which their α/β range holds:
5e-3 keeps more content, 1e-3 is balanced, 5e-4 leans to style.

**Size invariance.** :math:`L_c` and :math:`L_{tv}` are sums over positions, so they grow with the pixel
count while :math:`L_s` does not: the same α/β would look more photographic at 1080p than at 256 px. With
``size_invariant=True`` (the default of the engine) both are multiplied by
:math:`s = \text{REFERENCE\_PIXELS} / (H \cdot W)`, i.e. measured as if the image had 512×512 pixels, the
size Gatys et al. worked at: at 512×512 this is exactly their form, at any other size the balance is the same.
(A 256×256 reference made 1e-3 and 5e-4 indistinguishable at small sizes — both fully stylized — so the
documented range would not hold; measured in ``benchmarks/bench_balance.py``.)
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

#: Pixel count at which the size-invariant losses equal Gatys et al.'s sums (a 512 × 512 image).
REFERENCE_PIXELS = 512 * 512

DEFAULT_CONTENT_LAYERS = ("conv4_2",)
DEFAULT_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def size_scale(height: int, width: int, size_invariant: bool = True) -> float:
    """The factor :math:`s` applied to the content and TV sums for an ``height`` × ``width`` image."""
    return REFERENCE_PIXELS / float(height * width) if size_invariant else 1.0


class _SymmetricGram(torch.autograd.Function):
    """``f fᵀ / norm`` for ``f`` ``(B, C, M)``, with a one-product backward ``(g + gᵀ) f / norm`` (autograd's
    generic batched product would compute two): the Gram matrices are most of the engine's own cost."""

    @staticmethod
    def forward(ctx, f, norm):
        ctx.save_for_backward(f, norm)
        return torch.bmm(f, f.transpose(1, 2)) / norm

    @staticmethod
    def backward(ctx, grad):
        f, norm = ctx.saved_tensors
        return torch.bmm((grad + grad.transpose(1, 2)) / norm, f), None  # scale the small C×C factor, not C×M


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Normalized Gram matrix :math:`\hat G = F F^\top / (C H W)`.

    ``features``: ``(B, C, H, W)`` → ``(B, C, C)``. Entry ``[c, d]`` is the mean over positions of
    ``F[c] * F[d]``: how strongly channels c and d fire together, wherever they are — texture, not layout.

    ``mask`` (optional, ``(B or 1, 1, H, W)`` in [0, 1], at the features' resolution): the Gram of the
    masked region only, :math:`(F m)(F m)^\top / (C \sum m)`, so that a region's statistics do not depend
    on its area.
    """
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    if mask is None:
        return _SymmetricGram.apply(f, f.new_tensor(float(c * h * w)))
    m = mask.reshape(mask.shape[0], 1, h * w).to(features.dtype)
    fm = f * m
    area = m.sum(dim=2, keepdim=True).clamp_min(1e-8)  # (B, 1, 1)
    return _SymmetricGram.apply(fm, (c * area).detach())


def content_loss(features: torch.Tensor, target: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    r"""Content loss :math:`\tfrac12 \sum (F - P)^2 \cdot s`.

    ``features``, ``target``: activations of the same layer, same shape (``target`` is detached).
    ``scale`` is the size factor :math:`s` (see :func:`size_scale`; 1 gives Gatys et al.'s plain sum).
    """
    if features.shape != target.shape:
        raise ValueError(f"content features {tuple(features.shape)} and target {tuple(target.shape)} differ in shape")
    return 0.5 * (features - target.detach()).pow(2).sum() * scale


def style_layer_loss(gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    r"""One layer's style loss :math:`E_l = \tfrac14 \sum (\hat G - \hat A)^2` on normalized Grams."""
    return 0.25 * (gram - target_gram.detach()).pow(2).sum()


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float] | None = None, mask: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    r"""Style loss :math:`\sum_l w_l E_l` over the layers of ``target_grams``.

    ``layer_weights`` defaults to :math:`1/L` for each of the :math:`L` layers; ``mask`` optionally maps each
    layer to a mask at that layer's resolution (see :func:`gram_matrix`).
    """
    layers = list(target_grams)
    if layer_weights is None:
        layer_weights = {name: 1.0 / len(layers) for name in layers}
    total = features[layers[0]].new_zeros(())
    for name in layers:
        w = layer_weights.get(name, 0.0)
        if w == 0:
            continue
        g = gram_matrix(features[name], None if mask is None else mask[name])
        total = total + w * style_layer_loss(g, target_grams[name])
    return total


#: TV is measured in 0–255 pixel units, the units the Caffe VGG-19 sees, so its weight is on the same footing.
TV_PIXEL_SCALE = 255.0


def tv_loss(image: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    r"""Total variation :math:`\sum (x_{i+1,j} - x_{i,j})^2 + (x_{i,j+1} - x_{i,j})^2 \cdot s` (squared
    differences of vertical *and* horizontal neighbours) of ``image`` ``(B, 3, H, W)`` in [0, 1], measured in
    0–255 pixel units (i.e. multiplied by 255²)."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return (dy.pow(2).sum() + dx.pow(2).sum()) * (scale * TV_PIXEL_SCALE ** 2)


def resize_mask(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize a ``(1, 1, H, W)`` mask in [0, 1] to ``size`` = (h, w) by area averaging (keeps soft edges)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.adaptive_avg_pool2d(mask, size) if mask.shape[-2] >= size[0] else F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
