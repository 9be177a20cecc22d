r"""What is style? Four statistics of the painting's VGG-19 features that a result can be asked to match.

With :math:`F^l` the generated image's features at layer :math:`l` (:math:`C` channels × :math:`M` positions) and
:math:`S^l` the painting's (:math:`M_s` positions), the style term of every statistic is a *relative* error, like
the Gram terms of :mod:`nstedu.losses` (each layer's error divided by its target's energy, weighted by
:math:`w_l`), times a constant :data:`BALANCE` measured so that α/β keeps its meaning (1e-3 balanced):

* ``gram`` — Gatys et al. 2015: :math:`\|\hat G - \hat A\|^2 / \|\hat A\|^2` (:mod:`nstedu.losses`). Li et al. 2017
  ("Demystifying neural style transfer") show it is the squared MMD between the two sets of feature vectors
  with the kernel :math:`k(f, s) = (f^\top s)^2`.
* ``meanstd`` — the per-channel mean and standard deviation (AdaIN, Huang & Belongie 2017; Li et al. 2017's
  batch-norm statistics, a linear kernel):
  :math:`\sum_c (\mu_c - \mu^s_c)^2 + (\sigma_c - \sigma^s_c)^2` relative to :math:`\sum_c (\mu^s_c)^2 + (\sigma^s_c)^2`.
* ``swd`` — the sliced Wasserstein distance (Heitz et al. 2021, "A sliced Wasserstein loss for neural texture
  synthesis"): project both sets of feature vectors on :math:`P` unit directions :math:`\theta_p`, sort each
  projection (sorted values are the 1-D distribution's quantiles), compare quantile by quantile:
  :math:`\frac{1}{PM}\sum_p \sum_i (\mathrm{sort}(F^\top\theta_p)_i - \mathrm{sort}(S^\top\theta_p)_i)^2`
  relative to the mean squared projection of the painting. It matches the whole distribution, not only its
  second moment. The painting's quantiles are resampled to :math:`M` when :math:`M_s \ne M`. The :math:`P = C`
  directions are drawn once from a seeded ``torch.Generator`` (:func:`directions`) and kept: L-BFGS's line search
  needs the same function at every evaluation (Heitz et al. draw new ones at each step).
* ``mrf`` — patches, a Markov random field (Li & Wand 2016, "Combining Markov random fields and convolutional
  neural networks for image synthesis"): every 3 × 3 patch :math:`\Psi_i(F)` of the generated features is
  matched to the painting's patch with the highest normalized cross-correlation and pulled towards it:
  :math:`\frac1N \sum_i \|\Psi_i(F) - \Psi_{NN(i)}(S)\|^2` relative to the painting's mean patch energy. At the
  default layers it uses relu3_1 and relu4_1 (:data:`MRF_LAYERS`, as Li & Wand).

Targets (what a :class:`nstedu.objective.StyleTarget` holds per layer): ``gram`` ``(1, C, C)``, ``meanstd``
``(1, C, 2)``, ``swd`` the sorted projections ``(1, P, M_s)``, ``mrf`` the patches ``(1, N_s, 9C)``.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from . import losses as L

#: The style statistics, the first one the default.
STYLE_LOSSES = ("gram", "meanstd", "swd", "mrf")
#: Li & Wand's layers for the patch statistic (used when the style layers are the defaults).
MRF_LAYERS = ("relu3_1", "relu4_1")
#: Patch side (3 × 3, Li & Wand) and the most painting patches kept per layer (more: a stride > 1 over the painting),
#: which bounds the memory of the nearest-neighbour search; generated patches are matched in chunks of this many.
MRF_PATCH, MRF_MAX_TARGET_PATCHES, MRF_CHUNK = 3, 16384, 2048
#: Each statistic's style term is its relative error × this constant, measured so that at the photo (the content
#: start image) the term is as large as the Gram term: the median over the quality benchmark's 9 pairs at 256 px of
#: Gram term / this statistic's term (``bench_quality.py --calibrate-style``; meanstd 1.96–4.47, swd 2.08–5.08, mrf
#: 0.59–2.13 across the pairs). So β pulls as hard towards the painting with every statistic, and α/β keeps its
#: meaning (tests/test_style_stats.py checks the balance that results).
BALANCE = {"gram": 1.0, "meanstd": 2.9, "swd": 3.3, "mrf": 1.0}
_EPS = 1e-5


def check_style_loss(name: str) -> None:
    if name not in STYLE_LOSSES:
        raise ValueError(f"style_loss must be one of {', '.join(STYLE_LOSSES)}, got {name!r}")


def layers_for(statistic: str, style_layers: Sequence[str]) -> tuple:
    """The layers a statistic uses: ``mrf`` at the default style layers uses :data:`MRF_LAYERS`."""
    if statistic == "mrf" and tuple(style_layers) == tuple(L.DEFAULT_STYLE_LAYERS):
        return MRF_LAYERS
    return tuple(style_layers)


# -------------------------------------------------------------------------------------------- mean / std
def mean_std(features: torch.Tensor) -> torch.Tensor:
    r"""Per-channel mean and standard deviation over positions, ``(B, C, H, W)`` → ``(B, C, 2)``:
    :math:`\mu_c = \frac1M\sum_i F_{ci}`, :math:`\sigma_c = \sqrt{\frac1M\sum_i (F_{ci} - \mu_c)^2 + \epsilon}`."""
    flat = features.flatten(2)
    mu = flat.mean(dim=2)
    sigma = (flat.var(dim=2, unbiased=False) + _EPS).sqrt()
    return torch.stack([mu, sigma], dim=2)


def meanstd_loss(features: torch.Tensor, target: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    r""":math:`\sum_c (\mu_c - \mu^s_c)^2 + (\sigma_c - \sigma^s_c)^2 \cdot s` for ``features`` ``(B, C, H, W)`` and
    ``target`` = :func:`mean_std` of the painting ``(1, C, 2)`` (detached)."""
    return (mean_std(features) - target.detach()).pow(2).sum() * scale


# ------------------------------------------------------------------------------------- sliced Wasserstein
def directions(channels: int, count: int | None = None, generator: torch.Generator | None = None,
               seed: int = 0, device=None) -> torch.Tensor:
    """``count`` (default ``channels``) random unit vectors as the columns of a ``(channels, count)`` matrix:
    Gaussian draws from ``generator`` (default: a new one seeded with ``seed``), each column divided by its norm."""
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    d = torch.randn(channels, count or channels, generator=g)
    return (d / d.norm(dim=0, keepdim=True)).to(device)


def sorted_projections(features: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """The features' vectors projected on each direction and sorted: ``(B, C, H, W)``, ``(C, P)`` → ``(B, P, M)``."""
    proj = features.flatten(2).transpose(1, 2) @ dirs.to(features)   # (B, M, P)
    return proj.transpose(1, 2).sort(dim=2).values


def resample_quantiles(values: torch.Tensor, count: int) -> torch.Tensor:
    """Sorted values ``(B, P, M_s)`` → ``(B, P, count)``: the quantile function at ``(i + ½) / count``, linearly
    interpolated (unchanged when ``count == M_s``)."""
    if values.shape[-1] == count:
        return values
    return F.interpolate(values, size=count, mode="linear", align_corners=False)


def sliced_wasserstein_loss(features: torch.Tensor, target: torch.Tensor, dirs: torch.Tensor,
                            scale: float = 1.0) -> torch.Tensor:
    r"""Squared sliced Wasserstein distance :math:`\frac1{PM}\sum_{p,i}(\mathrm{sort}(F^\top\theta_p)_i -
    q^s_{p,i})^2 \cdot s` for ``features`` ``(B, C, H, W)``, ``target`` = :func:`sorted_projections` of the
    painting on the same ``dirs`` ``(C, P)`` (``(1, P, M_s)``, detached, resampled to M positions)."""
    ours = sorted_projections(features, dirs)
    theirs = resample_quantiles(target.detach(), ours.shape[-1])
    return (ours - theirs).pow(2).mean(dim=(1, 2)).sum() * scale


# ------------------------------------------------------------------------------------------------ patches
def patches(features: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """3 × 3 patches of ``features`` ``(B, C, H, W)`` → ``(B, N, 9C)``, N positions at ``stride``."""
    return F.unfold(features, MRF_PATCH, stride=stride).transpose(1, 2)


def target_patches(features: torch.Tensor) -> torch.Tensor:
    """The painting's patches ``(1, N_s, 9C)``, with a stride that keeps N_s ≤ :data:`MRF_MAX_TARGET_PATCHES`."""
    h, w = (s - MRF_PATCH + 1 for s in features.shape[-2:])
    if h < 1 or w < 1:
        raise ValueError(f"style_loss='mrf': the painting's features {tuple(features.shape[-2:])} are smaller than a "
                         f"{MRF_PATCH}×{MRF_PATCH} patch: use a larger size or style_scale")
    stride = max(1, math.ceil(math.sqrt(h * w / MRF_MAX_TARGET_PATCHES)))
    return patches(features, stride)


@torch.no_grad()
def nearest_patches(ours: torch.Tensor, theirs: torch.Tensor, chunk: int = MRF_CHUNK) -> torch.Tensor:
    """For each of ``ours`` ``(N, D)``, the index in ``theirs`` ``(N_s, D)`` of the patch with the highest normalized
    cross-correlation :math:`\\langle a, b\\rangle / (\\|a\\|\\|b\\|)`, computed ``chunk`` rows at a time."""
    t = theirs / theirs.norm(dim=1, keepdim=True).clamp_min(1e-8)
    out = []
    for start in range(0, ours.shape[0], chunk):
        a = ours[start:start + chunk]
        out.append((a @ t.T).argmax(dim=1))  # dividing by ‖a‖ does not change the argmax of a row
    return torch.cat(out)


def mrf_loss(features: torch.Tensor, target: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    r""":math:`\frac1N\sum_i \|\Psi_i(F) - \Psi_{NN(i)}(S)\|^2 \cdot s` (Li & Wand 2016) for ``features``
    ``(B, C, H, W)`` and ``target`` = :func:`target_patches` of the painting ``(1, N_s, 9C)`` (detached)."""
    ours = patches(features)
    if ours.shape[1] == 0:
        raise ValueError(f"style_loss='mrf': the result's features {tuple(features.shape[-2:])} are smaller than a "
                         f"{MRF_PATCH}×{MRF_PATCH} patch: use a larger size")
    theirs = target.detach()[0]
    total = features.new_zeros(())
    for b in range(ours.shape[0]):
        match = theirs[nearest_patches(ours[b].detach(), theirs)]
        total = total + (ours[b] - match).pow(2).sum(dim=1).mean()
    return total * scale


# -------------------------------------------------------------------------------------- targets and terms
@torch.no_grad()
def statistic_of(statistic: str, features: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The target of ``statistic`` for one layer's ``features`` ``(1, C, H, W)`` (shapes in the module docstring);
    ``seed`` draws the ``swd`` directions (:func:`directions`)."""
    if statistic == "gram":
        return L.gram_matrix(features)
    if statistic == "meanstd":
        return mean_std(features)
    if statistic == "swd":
        return sorted_projections(features, directions(features.shape[1], seed=seed, device=features.device))
    if statistic == "mrf":
        return target_patches(features)
    check_style_loss(statistic)


def blend(statistic: str, targets: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    r"""Several targets of one layer as one, :math:`\sum_k w_k T_k / \sum_k w_k`: Grams and mean/std averaged,
    ``swd`` quantiles averaged (resampled to the longest; the 1-D Wasserstein barycenter along each direction),
    ``mrf`` patches pooled (the weights do not apply: ``ValueError`` unless equal)."""
    total = float(sum(weights))
    if statistic == "mrf":
        if len(set(weights)) > 1:
            raise ValueError("style_loss='mrf' pools the paintings' patches: style_blend weights must be equal")
        return torch.cat(list(targets), dim=1)
    if statistic == "swd":
        n = max(t.shape[-1] for t in targets)
        targets = [resample_quantiles(t, n) for t in targets]
    return sum(w * t for w, t in zip(weights, targets)) / total


def energy(statistic: str, target: torch.Tensor) -> float:
    """The target's own size, which its error is divided by: ``‖T‖²`` (gram, meanstd), the mean squared projection
    (swd), the mean squared patch norm (mrf)."""
    t = target.detach().double()
    if statistic == "swd":
        return float(t.pow(2).mean())
    if statistic == "mrf":
        return float(t.pow(2).sum(dim=-1).mean())
    return float(t.pow(2).sum())


def relative_weights(statistic: str, targets: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]) -> dict:
    r"""Per layer, the ``scale`` that makes the layer's loss :data:`BALANCE` × :math:`w_l` × its error relative to
    the target's :func:`energy` (``gram``: :func:`nstedu.losses.relative_style_weights`, whose ¼ it undoes)."""
    if statistic == "gram":
        return L.relative_style_weights(targets, layer_weights)
    k = BALANCE[statistic]
    out = {}
    for name, t in targets.items():
        e = energy(statistic, t)
        out[name] = k * layer_weights.get(name, 0.0) / e if e > 0 else 0.0
    return out


def style_loss(statistic: str, features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
               scales: Mapping[str, float], dirs: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    r""":math:`\sum_l s_l\,E_l` over the layers of ``targets`` for a statistic other than ``gram`` (whose loss is
    :func:`nstedu.losses.style_loss`); ``dirs``: the ``swd`` directions of each layer."""
    total = next(iter(features.values())).new_zeros(())
    for name, t in targets.items():
        s = scales.get(name, 0.0)
        if s == 0:
            continue
        if statistic == "swd":
            total = total + sliced_wasserstein_loss(features[name], t, dirs[name], s)
        elif statistic == "meanstd":
            total = total + meanstd_loss(features[name], t, s)
        else:
            total = total + mrf_loss(features[name], t, s)
    return total
