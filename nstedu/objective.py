r"""What is minimized: style targets (Gram matrices of the paintings, blended) and the objective

.. math:: L(x) = \alpha\,L_{content}(x) + \beta\,L_{style}(x) + \gamma\,L_{tv}(x)

(Gatys, Ecker & Bethge, 2015; the terms are in :mod:`nstedu.losses`). One :class:`Objective` serves both
methods: the per-image optimization minimizes it over the pixels of one image (:mod:`nstedu.transfer`), fast
style transfer over the weights of a network, averaged over a batch of photos (:mod:`nstedu.fast`).

    targets = prepare_style_targets("starry_night", vgg, config, size=256, device="cpu")
    objective = Objective(vgg, content, targets, config)
    total, terms = objective(x)              # terms: {"total", "content", "style", "tv"} (TERMS)

:class:`LossHistory` records the terms of every evaluation (one list per term).
"""
from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from . import losses as L
from . import style_stats as S
from .config import TransferConfig, style_size
from .env import PrecisionPlan, precision_for
from .images import ImageLike, pil_to_tensor
from .samples import load_style
from .vgg import VGG19Features

#: The channels_last twin of each network in use (weights in NHWC), made once: with both the input and the weights
#: in that layout the CPU's oneDNN network runs ≈ 11 % faster (``benchmarks/RESULTS.md``); tensor cores prefer it too.
_TWINS: "weakref.WeakKeyDictionary[VGG19Features, VGG19Features]" = weakref.WeakKeyDictionary()


def channels_last_twin(vgg: VGG19Features) -> VGG19Features:
    """A copy of ``vgg`` with its weights in the channels_last memory format (same values), cached per network."""
    if vgg not in _TWINS:  # copy each 4-D weight once, straight into the new layout
        memo = {id(p): torch.nn.Parameter(p.detach().contiguous(memory_format=torch.channels_last), requires_grad=False)
                for p in vgg.parameters() if p.dim() == 4}
        _TWINS[vgg] = copy.deepcopy(vgg, memo)
    return _TWINS[vgg]


def network_features(vgg: VGG19Features, x: torch.Tensor, layers, plan: Optional[PrecisionPlan] = None) -> dict:
    """``vgg(x, layers)`` run as ``plan`` says (None: plain fp32), the activations returned in fp32 (Gram matrices
    and loss sums stay fp32 under autocast: the bf16/fp16 part is the convolutions)."""
    if plan is not None and plan.channels_last:  # input and weights in NHWC; the shared network keeps its layout
        vgg, x = channels_last_twin(vgg), x.contiguous(memory_format=torch.channels_last)
    if plan is None or plan.autocast is None:
        return vgg(x, layers)
    with torch.autocast(x.device.type, dtype=plan.autocast):
        feats = vgg(x, layers)
    return {k: v.float() for k, v in feats.items()}


#: The loss terms, in this order everywhere: the objective's output, the history, the plots.
TERMS = ("total", "content", "style", "tv")


class LossHistory(dict):
    """The loss of every evaluation: ``history["total"][i]`` (and ``"content"``, ``"style"``, ``"tv"``) at
    ``history["step"][i]``, ``history["time"][i]`` seconds after the start; ``extra`` columns (e.g. ``"size"``
    in multi-scale runs). A plain ``dict`` of lists underneath, so it saves, compares and plots as one."""

    COLUMNS = ("step", *TERMS, "time")

    def __init__(self, data: Optional[dict] = None, extra: Sequence[str] = ()):
        super().__init__({k: [] for k in (*self.COLUMNS, *extra)})
        for k, v in (data or {}).items():
            self[k] = list(v)

    def append(self, step: int, terms: Sequence[float], time: float, **extra) -> None:
        """Record one evaluation: ``terms`` in :data:`TERMS` order."""
        self["step"].append(step)
        self["time"].append(time)
        for k, v in zip(TERMS, terms):
            self[k].append(v)
        for k, v in extra.items():
            self[k].append(v)

    def extend(self, other: dict, step_offset: int = 0, time_offset: float = 0.0, **extra) -> None:
        """Append all of ``other``'s evaluations, shifting steps and times; ``extra`` columns get one value each."""
        n = len(other["step"])
        self["step"] += [s + step_offset for s in other["step"]]
        self["time"] += [t + time_offset for t in other["time"]]
        for k in TERMS:
            self[k] += other[k]
        for k, v in extra.items():
            self[k] += [v] * n

    def last(self) -> dict:
        """``{term: value}`` of the latest evaluation."""
        return {k: self[k][-1] for k in TERMS}

    def at(self, step: int) -> dict:
        """``{term: value}`` at ``step`` (the latest evaluation if that step was not recorded)."""
        i = self["step"].index(step) if step in self["step"] else -1
        return {k: self[k][i] for k in TERMS}


# ---------------------------------------------------------------------------------------------- targets
@dataclass
class StyleTarget:
    """Statistics to match: ``grams[layer]`` is the normalized Gram ``(1, C, C)`` (or, with another
    ``TransferConfig.style_loss``, that statistic's target, :mod:`nstedu.style_stats`). ``mask`` ``(1, 1, H, W)`` in [0, 1] at the
    result's resolution restricts this style to a region (``None``: everywhere); ``weight`` scales its loss."""

    grams: dict
    weight: float = 1.0
    mask: Optional[torch.Tensor] = None


@torch.no_grad()
def grams_of(feats: dict, mask: Optional[torch.Tensor] = None) -> dict:
    """``{layer: normalized Gram}`` of ``{layer: features}``; with ``mask`` ``(1, 1, H, W)``, of that region only."""
    return {k: L.gram_matrix(v, None if mask is None else L.resize_mask(mask, v.shape[-2:])) for k, v in feats.items()}


def style_grams(vgg: VGG19Features, style: torch.Tensor, layers: Sequence[str], mask: Optional[torch.Tensor] = None,
                plan: Optional[PrecisionPlan] = None, statistic: str = "gram", seed: int = 0) -> dict:
    """Normalized Gram matrices of ``style`` ``(1, 3, H, W)`` in [0, 1] at ``layers`` (optionally of a masked region),
    the network run as ``plan`` says (:func:`network_features`); with another ``statistic``, its targets
    (:func:`nstedu.style_stats.statistic_of`; ``seed`` draws the ``swd`` directions)."""
    with torch.no_grad():
        feats = network_features(vgg, style, layers, plan)
        if statistic == "gram":
            return grams_of(feats, mask)
        if mask is not None:
            raise ValueError(f"masks need style_loss='gram' (got style_loss={statistic!r})")
        return {k: S.statistic_of(statistic, v, seed) for k, v in feats.items()}


def blend_targets(targets: Sequence[dict], weights: Optional[Sequence[float]] = None, statistic: str = "gram") -> dict:
    r"""Weighted average of several styles' Grams: :math:`\bar A = \sum_k w_k A_k / \sum_k w_k`.

    Matching :math:`\bar A` has the same gradient as minimizing :math:`\sum_k w_k \|G - A_k\|^2` (they differ by
    a constant), so this *is* multi-style blending (e.g. 60/40). Other statistics: :func:`nstedu.style_stats.blend`."""
    if weights is None:
        weights = [1.0] * len(targets)
    if len(weights) != len(targets):
        raise ValueError(f"style_blend has {len(weights)} weights for {len(targets)} style images")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"style_blend weights must not all be zero, got {list(weights)}")
    if statistic != "gram":
        return {k: S.blend(statistic, [t[k] for t in targets], weights) for k in targets[0]}
    return {k: sum(w * t[k] for w, t in zip(weights, targets)) / total for k in targets[0]}


def prepare_style_targets(style: Union[ImageLike, Sequence[ImageLike]], vgg: VGG19Features, config: TransferConfig,
                          size: int, device: Union[str, torch.device]) -> list[StyleTarget]:
    """Load one or several style images (each resized to ``size × style_scale``) into blended targets of
    ``config.style_loss`` (Gram matrices by default)."""
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise ValueError("no style image given")
    side = style_size(size, config.style_scale)
    plan = precision_for(config.precision, device)
    stat = config.style_loss
    S.check_style_loss(stat)
    layers = S.layers_for(stat, config.style_layers)
    grams = [style_grams(vgg, pil_to_tensor(load_style(s, side), device), layers, plan=plan, statistic=stat, seed=config.seed)
             for s in styles]
    return [StyleTarget(blend_targets(grams, config.style_blend, stat))]


# -------------------------------------------------------------------------------------------- objective
class Objective:
    """``objective(x) -> (total, {"total", "content", "style", "tv"})`` for ``x`` ``(B, 3, H, W)`` in [0, 1].

    ``content`` ``(1, 3, H, W)``: the photo whose features ``x`` must keep (its targets are computed once), or
    ``None`` to pass the photos with every call, ``objective(x, content)`` (fast-network training: ``x`` is the
    network's output for the batch ``content``). Weights, layers and size scaling come from ``config``. With a
    batch (B > 1) every term is the mean over its images. Terms whose weight is 0 are skipped (reported as 0)
    unless ``skip_unweighted=False``.

    ``relative=True`` (the engine's): each term relative to its target's energy, so that every style layer counts
    and the balance does not depend on the photo, the painting or the pixel count (:mod:`nstedu.losses`);
    ``relative=False``: Gatys et al.'s plain sums, size-scaled (what the fast networks were calibrated with).
    ``config.precision`` sets how the network runs on the VGG's device (:func:`nstedu.env.precision_plan`, kept
    in ``self.precision``); the losses are always summed in fp32.
    """

    def __init__(self, vgg: VGG19Features, content: Optional[torch.Tensor], style_targets: Sequence[StyleTarget],
                 config: TransferConfig, *, skip_unweighted: bool = True, relative: bool = True):
        self.vgg, self.config, self.relative = vgg, config, relative
        keep = (lambda w: w > 0) if skip_unweighted else (lambda w: True)
        self.content_layers = list(config.content_layers) if keep(config.content_weight) else []
        self.statistic = stat = config.style_loss
        S.check_style_loss(stat)
        if stat != "gram" and not relative:
            raise ValueError(f"style_loss={stat!r} needs relative terms: fast training is Gram-only")
        style_layers = S.layers_for(stat, config.style_layers)
        self.style_layers = list(style_layers) if keep(config.style_weight) else []
        self.with_tv = keep(config.tv_weight)
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        self.layer_weights = (config.layer_weights() if tuple(style_layers) == tuple(config.style_layers)
                              else {k: 1.0 / len(style_layers) for k in style_layers})  # mrf: Li & Wand's layers
        self.style_targets = list(style_targets)
        self.style_weights = [S.relative_weights(stat, {k: t.grams[k] for k in self.style_layers}, self.layer_weights)
                              if relative else self.layer_weights for t in self.style_targets]
        self.directions = {k: S.directions(t.grams[k].shape[1], seed=config.seed, device=t.grams[k].device)
                           for t in self.style_targets[:1] for k in self.style_layers} if stat == "swd" else {}
        in_scale = getattr(vgg, "in_scale", None)
        self.precision = precision_for(config.precision, in_scale.device if in_scale is not None else "cpu")
        self._masks: dict = {}
        self._scales: dict = {}
        self.content_targets = self.content_features(content) if content is not None else None
        self.content_scales = self._content_scales(self.content_targets, *content.shape[-2:]) if content is not None else None

    def features(self, x: torch.Tensor, layers) -> dict:
        """The network's activations of ``x`` at ``layers``, computed as ``self.precision`` says, in fp32."""
        return network_features(self.vgg, x, layers, self.precision)

    @torch.no_grad()
    def content_features(self, content: torch.Tensor) -> dict:
        """The content photo's activations at the content layers (the targets of the content loss)."""
        return self.features(content, self.content_layers) if self.content_layers else {}

    def scale(self, height: int, width: int) -> float:
        """The size factor of the plain content and TV sums (:func:`nstedu.losses.size_scale`)."""
        if (height, width) not in self._scales:
            self._scales[(height, width)] = L.size_scale(height, width, self.config.size_invariant)
        return self._scales[(height, width)]

    def tv_scale(self, height: int, width: int) -> float:
        """The factor of the TV sum: the mean over pixels (relative) or the size-scaled sum."""
        return L.tv_scale(height, width, self.config.size_invariant) if self.relative else self.scale(height, width)

    def _content_scales(self, targets: dict, height: int, width: int) -> dict:
        """Per content layer, the ``scale`` of :func:`nstedu.losses.content_loss`: relative to the photo's
        feature energy (per image of a batch), or the size factor of the plain sum."""
        if not self.relative:
            return {k: self.scale(height, width) for k in targets}
        size = 1.0 if self.config.size_invariant else height * width / L.REFERENCE_PIXELS
        return {k: L.relative_content_scale(v, size) * v.shape[0] for k, v in targets.items()}

    def _mask_for(self, target_index: int, target: StyleTarget, layer: str, shape) -> Optional[torch.Tensor]:
        if target.mask is None:
            return None
        key = (target_index, layer)
        if key not in self._masks:
            self._masks[key] = L.resize_mask(target.mask, shape[-2:])
        return self._masks[key]

    def __call__(self, x: torch.Tensor, content: Optional[torch.Tensor] = None):
        cfg = self.config
        feats = self.features(x, self.layers) if self.layers else {}
        if content is not None:
            targets = self.content_features(content)
            scales = self._content_scales(targets, *x.shape[-2:])
        elif self.content_targets is None:
            raise ValueError("this objective has no content photo: call it as objective(x, content)")
        else:
            targets, scales = self.content_targets, self.content_scales
        zero = x.new_zeros(())
        c = sum((L.content_loss(feats[k], targets[k], scales[k]) for k in self.content_layers), zero)
        s = zero
        for i, t in enumerate(self.style_targets if self.style_layers else []):
            if self.statistic != "gram":
                if t.mask is not None:
                    raise ValueError(f"masks need style_loss='gram' (got style_loss={self.statistic!r})")
                s = s + t.weight * S.style_loss(self.statistic, feats, {k: t.grams[k] for k in self.style_layers},
                                                self.style_weights[i], self.directions)
                continue
            masks = None if t.mask is None else {k: self._mask_for(i, t, k, feats[k].shape) for k in self.style_layers}
            s = s + t.weight * L.style_loss({k: feats[k] for k in self.style_layers},
                                            {k: t.grams[k] for k in self.style_layers}, self.style_weights[i], masks)
        tv = L.tv_loss(x, self.tv_scale(*x.shape[-2:])) if self.with_tv else zero
        if x.shape[0] > 1:  # a batch: the mean over its images
            c, s, tv = c / x.shape[0], s / x.shape[0], tv / x.shape[0]
        total = cfg.content_weight * c + cfg.style_weight * s + cfg.tv_weight * tv
        return total, {"total": total, "content": c, "style": s, "tv": tv}


def term_tensor(parts: dict, probe: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The :data:`TERMS` of an objective's output as one detached tensor on its device (plus ``probe``'s value at
    the end, if given: the engine sends a sum of the gradient along to check it for NaN)."""
    total = parts["total"]
    values = [torch.as_tensor(parts[k]).detach().reshape(()).to(total) for k in TERMS]
    if probe is not None:
        values.append(probe.detach().to(total))
    return torch.stack(values)


def term_values(parts: dict, probe: Optional[torch.Tensor] = None) -> list[float]:
    """:func:`term_tensor` as floats, in one device→host transfer."""
    return term_tensor(parts, probe).tolist()
