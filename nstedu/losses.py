r"""The losses of neural style transfer (Gatys, Ecker & Bethge, "A Neural Algorithm of Artistic Style", 2015).

With :math:`F^l` the features of the generated image at layer :math:`l` (:math:`N_l` channels ×
:math:`M_l = H_l W_l` positions), :math:`P^l` those of the content photo and :math:`A^l` the style Gram matrix:

* Gram matrix (normalized):   :math:`\hat G^l = F^l F^{l\top} / (N_l M_l)` — the channel co-activations
  summed over positions and divided by channels × positions (÷M_l alone would be the average over positions; the
  extra ÷N_l keeps layers with many channels comparable), so it does not grow with the image size.
* Content loss:               :math:`L_c = \tfrac12 \sum (F^l - P^l)^2 \cdot s`
* Style loss of one layer:    :math:`E_l = \tfrac14 \sum (\hat G^l - \hat A^l)^2
  = \sum (G^l - A^l)^2 / (4 N_l^2 M_l^2)` (Gatys et al.'s exact form)
* Style loss:                 :math:`L_s = \sum_l w_l E_l`
* Total variation:            :math:`L_{tv} = \sum (x_{i+1,j} - x_{i,j})^2 + (x_{i,j+1} - x_{i,j})^2 \cdot s` (x in 0–255)
* Total:                      :math:`L = \alpha L_c + \beta L_s + \gamma L_{tv}`

**Layers.** Gatys et al.'s Caffe model computes ReLU *in place*, so the blobs the paper calls conv4_2 and
conv1_1 … conv5_1 hold *rectified* activations: the defaults are ``relu4_2`` and ``relu1_1`` … ``relu5_1``
(as in neural-style and neural-style-pt).

**Normalization: every layer counts.** On the Caffe feature scale the painting's Gram energy
:math:`\|\hat A^l\|^2` is about 1e6 at relu1_1 and 1e11 at relu4_1, so with equal :math:`w_l` the first layer —
the painting's colours and finest strokes — gets 1e-5 of relu4_1's pull and is hardly matched (measured:
its gradient is 1e-6 of relu4_1's). The engine (:class:`nstedu.transfer.Objective`) therefore uses these same
formulas with each term divided by its target's energy (:func:`relative_content_scale`,
:func:`relative_style_weights`, :func:`tv_scale`):

.. math:: L = \alpha\, K \frac{\|F - P\|^2}{\|P\|^2} + \beta \sum_l w_l \frac{\|\hat G^l - \hat A^l\|^2}{\|\hat A^l\|^2}
          + \gamma\, \overline{(\nabla x)^2}

— relative errors, the quantities :mod:`nstedu.metrics` reports. :math:`K` = :data:`CONTENT_SCALE` is chosen
(measured) so that Gatys et al.'s α/β range keeps its meaning: 5e-3 keeps more of the photo, 1e-3 is balanced,
5e-4 leans to the painting. TV is the mean squared difference of neighbouring pixels (values in [0, 1]).
Relative errors and means do not grow with the pixel count, so the same α/β gives the same balance at any size
(measured, converged, at 256 / 512 / 1024 px: content distance within ±6 %, relu1_1…relu4_1 errors unchanged; only
relu5_1, whose map is 16 × 16 at 256 px, is matched better at large sizes, 0.146 → 0.054; ``benchmarks/RESULTS.md``)
(``size_invariant=True``); with ``size_invariant=False`` the content and TV terms grow with the pixel count like
Gatys et al.'s plain sums (equal to the invariant form at :data:`REFERENCE_PIXELS`).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

#: Pixel count at which the size-invariant losses equal Gatys et al.'s sums (a 512 × 512 image).
REFERENCE_PIXELS = 512 * 512

#: Post-ReLU layers: what the paper's Caffe "conv4_2" / "conv1_1 … conv5_1" blobs hold (ReLU runs in place there).
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: :math:`w_l` of the default style layers. Equal weights (1/5) left the painting's mid-scale structure, relu4_1,
#: 0.104 and 0.134 from its target on two of the quality benchmark's 9 pairs, while relu5_1 — whose map is only
#: 16 × 16 at 256 px — took weight it cannot use; moving 0.1 from relu5_1 to relu4_1 brings them to 0.084 / 0.096
#: at the same content distance (``benchmarks/bench_quality.py``). Other layer choices get 1/L each.
DEFAULT_STYLE_LAYER_WEIGHTS = (0.2, 0.2, 0.2, 0.3, 0.1)
#: :math:`K`: the relative content error is multiplied by this so that α/β = 1e-3 is the balanced setting
#: (measured on the quality benchmark, ``benchmarks/bench_quality.py``).
CONTENT_SCALE = 200.0


def size_scale(height: int, width: int, size_invariant: bool = True) -> float:
    """The factor :math:`s` applied to the content and TV sums for an ``height`` × ``width`` image."""
    return REFERENCE_PIXELS / float(height * width) if size_invariant else 1.0


def relative_content_scale(target: torch.Tensor, size_factor: float = 1.0) -> float:
    r"""The ``scale`` for :func:`content_loss` that makes it :math:`K \|F - P\|^2 / \|P\|^2` (× ``size_factor``):
    the content error relative to the photo's own feature energy, :math:`K` = :data:`CONTENT_SCALE`."""
    energy = float(target.detach().double().pow(2).sum())
    return 2.0 * CONTENT_SCALE * size_factor / max(energy, 1e-12)


def relative_style_weights(target_grams: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]) -> dict[str, float]:
    r""":math:`w_l \cdot 4 / \|\hat A^l\|^2` per layer: with these weights :func:`style_loss` is
    :math:`\sum_l w_l \|\hat G^l - \hat A^l\|^2 / \|\hat A^l\|^2`, each layer's error relative to the painting's."""
    energy = {k: float(a.detach().double().pow(2).sum()) for k, a in target_grams.items()}
    return {k: layer_weights.get(k, 0.0) * 4.0 / e if e > 0 else 0.0 for k, e in energy.items()}  # 0: nothing to match


def tv_scale(height: int, width: int, size_invariant: bool = True) -> float:
    """The ``scale`` for :func:`tv_loss` that makes it the mean over the ``height`` × ``width`` pixels of the squared
    neighbour differences in [0, 1] units (with ``size_invariant=False``: the sum, divided by :data:`REFERENCE_PIXELS`)."""
    pixels = height * width if size_invariant else REFERENCE_PIXELS
    return 1.0 / (TV_PIXEL_SCALE ** 2 * pixels)


#: On the CPU a single image's Gram products run as oneDNN convolutions (the weight gradient of a 1×1 convolution
#: is F Fᵀ; a 1×1 convolution is S F), the library that already runs the network: 2–3× faster than the BLAS
#: batched product on a 2-core AMD EPYC (where MKL takes its slow path) for channels_last features (the CPU
#: default, :func:`nstedu.env.precision_plan`) and for contiguous ones from this many channels on; below it the
#: reorder to oneDNN's blocked layout costs more than it saves (``benchmarks/RESULTS.md``, engine overhead).
ONEDNN_GRAM_CHANNELS = 128


def _onednn(f: torch.Tensor) -> bool:
    return (f.device.type == "cpu" and f.dtype == torch.float32 and f.shape[0] == 1 and torch.backends.mkldnn.is_available()
            and (f.shape[1] >= ONEDNN_GRAM_CHANNELS or _nhwc(f)))


def _nhwc(f: torch.Tensor) -> bool:
    return f.is_contiguous(memory_format=torch.channels_last) and not f.is_contiguous()


def _product(f: torch.Tensor) -> torch.Tensor:
    """``f fᵀ`` ``(B, C, C)`` for ``f`` ``(B, C, H, W)``, positions flattened."""
    b, c = f.shape[:2]
    if _onednn(f):
        return torch.nn.grad.conv2d_weight(f, (c, c, 1, 1), f).view(1, c, c)
    if _nhwc(f):  # (B, H·W, C) is a view of channels_last features: no copy
        x = f.permute(0, 2, 3, 1).reshape(b, -1, c)
        return torch.bmm(x.transpose(1, 2), x)
    flat = f.reshape(b, c, -1)
    return torch.bmm(flat, flat.transpose(1, 2))


def _times(s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``s f`` for a symmetric ``s`` ``(B, C, C)``, in ``f``'s shape and layout."""
    b, c, h, w = f.shape
    if _onednn(f):
        return F.conv2d(f, s.reshape(c, c, 1, 1))
    if _nhwc(f):  # (s f)ᵀ = fᵀ s
        return torch.bmm(f.permute(0, 2, 3, 1).reshape(b, -1, c), s).view(b, h, w, c).permute(0, 3, 1, 2)
    return torch.bmm(s, f.reshape(b, c, -1)).view(f.shape)


class _SymmetricGram(torch.autograd.Function):
    """``f fᵀ / norm`` for ``f`` ``(B, C, H, W)`` with a one-product backward ``(g + gᵀ) f / norm`` (autograd's
    generic batched product would compute two): the Gram matrices are most of the engine's own cost."""

    @staticmethod
    def forward(ctx, f, norm):
        ctx.save_for_backward(f, norm)
        return _product(f) / norm

    @staticmethod
    def backward(ctx, grad):
        f, norm = ctx.saved_tensors
        return _times((grad + grad.transpose(1, 2)) / norm, f), None  # scale the small C×C factor, not C×H×W


class _GramLoss(torch.autograd.Function):
    """``scale · ¼‖f fᵀ/norm − target‖²`` in one node: :func:`style_layer_loss` of :func:`gram_matrix` times
    ``scale``, with a few C×C passes instead of a dozen: ``∂/∂f = scale · sym(G − A) f / norm``."""

    @staticmethod
    def forward(ctx, f, target, norm, scale):
        r = _product(f) / norm - target
        ctx.save_for_backward(f, norm, r)
        ctx.scale = scale
        return 0.25 * scale * r.pow(2).sum()

    @staticmethod
    def backward(ctx, grad):
        f, norm, r = ctx.saved_tensors
        return _times((r + r.transpose(1, 2)) * (0.5 * grad * ctx.scale / norm), f), None, None, None  # any target


def _gram_inputs(features: torch.Tensor, mask: torch.Tensor | None):
    """The (masked) features and the normalizer of :func:`gram_matrix`."""
    b, c, h, w = features.shape
    if mask is None:
        return features, features.new_tensor(float(c * h * w))
    m = mask.to(features.dtype)
    area = m.sum(dim=(2, 3)).reshape(-1, 1, 1).clamp_min(1e-8)  # (B, 1, 1)
    return features * m, (c * area).detach()


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Normalized Gram matrix :math:`\hat G = F F^\top / (C H W)`.

    ``features``: ``(B, C, H, W)`` → ``(B, C, C)``. Entry ``[c, d]`` is the mean over positions of
    ``F[c] * F[d]``, divided once more by the channel count C: how strongly channels c and d fire together,
    wherever they are — texture, not layout.

    ``mask`` (optional, ``(B or 1, 1, H, W)`` in [0, 1], at the features' resolution): the Gram of the
    masked region only, :math:`(F m)(F m)^\top / (C \sum m)`, so that a region's statistics do not depend
    on its area.
    """
    return _SymmetricGram.apply(*_gram_inputs(features, mask))


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
        f, norm = _gram_inputs(features[name], None if mask is None else mask[name])
        total = total + _GramLoss.apply(f, target_grams[name].detach(), norm, w)  # = w·style_layer_loss(gram_matrix)
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
