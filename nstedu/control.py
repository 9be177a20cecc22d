r"""Artistic control: what happens to the photo and the style targets *before* the optimization, and to the
result *after* it. The optimizer itself never changes (:mod:`nstedu.transfer` calls :func:`prepare` and
:meth:`Prepared.finish`; you can also call the helpers yourself):

* **Style strength** :math:`s \in [0, 1]` blends the targets in feature space (the Gram matrices):
  :math:`A(s) = (1 - s)\,\hat G(\text{content}) + s\,\hat A(\text{style})` with β unchanged. :math:`s = 0`
  asks for the photo's own texture (the content image is already optimal: the result ≈ the photo, only the TV
  term smooths it a little), :math:`s = 1` is the full style. Measured on chelsea × starry night at 128 px, the
  content loss of the result — how far it moved from the photo — grows almost linearly with :math:`s`
  (18 / 44 / 72 / 100 % of the full-style value at 25 / 50 / 75 / 100 %); a log-scale β schedule over three
  decades gave 7 / 31 / 61 / 100 %, i.e. hardly any change in its lower half. Start at 50–60 %.
* **Colour preservation** (Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in Neural Artistic Style
  Transfer", 2016): ``"histogram"`` recolours the style image so that its RGB mean and covariance equal the
  content's (:math:`x' = A(x - \mu_s) + \mu_c` with :math:`A = \Sigma_c^{1/2}\Sigma_s^{-1/2}`) before its Grams
  are computed; ``"luminance"`` runs the whole transfer on luminance images (YIQ's Y, the style's Y matched to the
  content's mean and spread) and puts the content's chroma (I, Q) back on the result.
* **Preprocessing**: contrast / sharpness boost of the photo with ``PIL.ImageEnhance`` (+20–30 % / +10–15 %).
* **Masks** (:mod:`nstedu.masks`, re-exported here): white = style, black = keep the photo; the photo is pasted
  back outside the mask after the optimization.
* **Style scale** (bigger or smaller brush strokes) is ``TransferConfig.style_scale``: the style image is
  resized to ``style_scale ×`` the result's longest side before its Grams are taken (<1 → bigger strokes).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Optional, Sequence, Union

import torch
from PIL import Image, ImageEnhance

from . import style_stats as S
from .config import TransferConfig, check_enhancement, style_size
from .env import PrecisionPlan, precision_for
from .images import ImageLike, pil_to_tensor, tensor_to_pil
from .masks import (Mask, apply_mask, as_mask, ellipse_mask, load_mask, rectangle_mask,  # noqa: F401 (re-exported)
                    region_targets)
from .objective import StyleTarget, grams_of, network_features, prepare_style_targets
from .samples import load_style
from .vgg import VGG19Features

__all__ = ["apply_strength", "rgb_to_yiq", "yiq_to_rgb", "luminance_rgb", "match_luminance", "keep_content_colors",
           "match_color_histogram", "prepare_styles", "check_enhancement", "enhance", "Prepared", "prepare", "Mask",
           "apply_mask", "as_mask", "ellipse_mask", "load_mask", "rectangle_mask", "region_targets"]

# --------------------------------------------------------------------------------------------- strength


@torch.no_grad()
def apply_strength(targets: Sequence[StyleTarget], vgg, content: torch.Tensor, strength: float,
                   layers: Sequence[str], plan: Optional[PrecisionPlan] = None, statistic: str = "gram",
                   seed: int = 0) -> list[StyleTarget]:
    r"""Blend each target's Grams with the content's own: :math:`(1 - s)\,\hat G_c + s\,\hat A`.

    ``content`` ``(1, 3, H, W)`` in [0, 1] at the result's size; a masked target is blended with the Gram of the
    same region of the content; the network runs as ``plan`` says, like it did for the style targets. ``strength`` 1
    returns the targets unchanged; 0 returns no targets at all (the photo is its own optimum, and a style term that
    is flat there only makes the line search stumble). Another ``statistic`` (:mod:`nstedu.style_stats`) blends its
    own targets (:func:`~nstedu.style_stats.blend`; not ``mrf``: patches cannot be mixed)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"style strength must be between 0 and 1, got {strength!r}")
    if strength >= 1.0:
        return list(targets)
    if strength == 0.0:
        return []
    if statistic == "mrf":
        raise ValueError("style_strength < 1 needs style_loss gram, meanstd or swd (mrf's patches cannot be blended)")
    feats = network_features(vgg, content, layers, plan)
    out = []
    for t in targets:
        if statistic != "gram":
            own = {k: S.statistic_of(statistic, feats[k], seed) for k in t.grams}
            out.append(replace(t, grams={k: S.blend(statistic, [own[k], t.grams[k]], [1 - strength, strength])
                                         for k in t.grams}))
            continue
        own = grams_of(feats, t.mask)
        out.append(replace(t, grams={k: (1 - strength) * own[k] + strength * t.grams[k] for k in t.grams}))
    return out


# ------------------------------------------------------------------------------------------------ colour
#: RGB → YIQ (NTSC 1953). Y is the luminance; I and Q carry the colour (chroma).
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                           [0.595716, -0.274453, -0.321263],
                           [0.211456, -0.522591, 0.311135]])
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """``(1, 3, H, W)`` RGB in [0, 1] → YIQ (Y in [0, 1], I and Q roughly in ±0.6)."""
    return torch.einsum("ij,bjhw->bihw", RGB_TO_YIQ.to(x), x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """YIQ → RGB (not clamped)."""
    return torch.einsum("ij,bjhw->bihw", YIQ_TO_RGB.to(x), x)


def luminance_rgb(x: torch.Tensor) -> torch.Tensor:
    """The grey image with ``x``'s luminance Y in all three channels, ``(1, 3, H, W)`` in [0, 1]."""
    return rgb_to_yiq(x)[:, :1].expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    r"""Grey version of ``style`` whose luminance has the content's mean and standard deviation:
    :math:`Y' = \sigma_c / \sigma_s\,(Y_s - \mu_s) + \mu_c` (Gatys et al. 2016, luminance-only transfer)."""
    ys, yc = rgb_to_yiq(style)[:, :1], rgb_to_yiq(content)[:, :1]
    y = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return y.expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def keep_content_colors(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The result's luminance with the content's chroma: YIQ(Y of ``result``, I and Q of ``content``), clamped
    to [0, 1]. Both ``(1, 3, H, W)`` in [0, 1], same size."""
    if result.shape != content.shape:
        raise ValueError(f"result {tuple(result.shape)} and content {tuple(content.shape)} differ in shape")
    yiq = torch.cat([rgb_to_yiq(result)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, power: float) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    return vecs @ torch.diag(vals.clamp_min(1e-8) ** power) @ vecs.T


def match_color_histogram(style: torch.Tensor, content: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    r"""Recolour ``style`` so that its RGB mean and 3×3 covariance equal ``content``'s:
    :math:`x' = \Sigma_c^{1/2}\Sigma_s^{-1/2}(x - \mu_s) + \mu_c` (the symmetric "image analogies" square root
    of Gatys et al. 2016). Both ``(1, 3, H, W)`` in [0, 1] (sizes may differ); the result is clamped to [0, 1],
    so strongly saturated pictures match only approximately."""
    s = style.reshape(3, -1).double()
    c = content.reshape(3, -1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64, device=s.device) * eps
    cov_s = torch.cov(s) + eye
    cov_c = torch.cov(c) + eye
    a = _sqrtm(cov_c, 0.5) @ _sqrtm(cov_s, -0.5)
    out = a @ (s - mu_s) + mu_c
    return out.reshape(style.shape).to(style.dtype).clamp(0, 1)


def prepare_styles(styles: Sequence[ImageLike], content: torch.Tensor, mode: Optional[str], size: int) -> list:
    """Load the style images at ``size`` (longest side) and apply the colour mode: ``None`` → as they are,
    ``"histogram"`` → recoloured to the content's statistics, ``"luminance"`` → grey, luminance matched."""
    out = []
    for s in styles:
        if mode is None:
            out.append(s)
            continue
        t = pil_to_tensor(load_style(s, size), content.device)
        t = match_color_histogram(t, content) if mode == "histogram" else match_luminance(t, content)
        out.append(tensor_to_pil(t))
    return out


# ----------------------------------------------------------------------------------------- preprocessing
def enhance(img: Image.Image, contrast: float = 0.0, sharpness: float = 0.0) -> Image.Image:
    """Boost (or, negative, reduce) the contrast and sharpness of a photo before stylizing.

    ``contrast=0.25`` is ``ImageEnhance.Contrast(img).enhance(1.25)`` (+25 %); ``sharpness=0.1`` likewise
    (+10 %); 0 leaves the image unchanged. Returns an RGB ``PIL.Image``."""
    check_enhancement("contrast", contrast)
    check_enhancement("sharpness", sharpness)
    if contrast:
        img = ImageEnhance.Contrast(img).enhance(1.0 + contrast)
    if sharpness:
        img = ImageEnhance.Sharpness(img).enhance(1.0 + sharpness)
    return img


# ------------------------------------------------------------------------------------------ before / after
@dataclass
class Prepared:
    """One optimization's inputs after artistic control: ``photo`` ``(1, 3, H, W)`` in [0, 1] after contrast and
    sharpness, in colour; ``content``, what the content loss compares with (the photo, or its luminance);
    ``targets``, the style targets after colour, mask and strength; ``mask`` ``(1, 1, H, W)`` or ``None``;
    ``composite``: paste the photo back outside the mask afterwards; ``luminance_only``: optimize grey images and
    put the photo's chroma back afterwards."""

    photo: torch.Tensor
    content: torch.Tensor
    targets: Sequence[StyleTarget]
    mask: Optional[torch.Tensor] = None
    composite: bool = False
    luminance_only: bool = False

    def start(self, x0: torch.Tensor) -> torch.Tensor:
        """The start image as the optimizer must see it (grey with luminance-only transfer)."""
        return luminance_rgb(x0) if self.luminance_only else x0

    @property
    def changes_result(self) -> bool:
        return self.luminance_only or self.composite

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """The optimized image ``(1, 3, H, W)`` → the result: with the photo's chroma (:func:`keep_content_colors`)
        and/or the photo pasted back outside the mask, ``m·x + (1 − m)·photo``."""
        photo = self.photo.to(x.device)
        if self.luminance_only:
            x = keep_content_colors(x, photo)
        if self.composite:
            m = self.mask.to(x.device)
            x = (m * x + (1 - m) * photo).clamp(0, 1)
        return x


def prepare(photo: Image.Image, style: Union[ImageLike, Sequence[ImageLike], None], vgg: VGG19Features,
            config: TransferConfig, size: int, device: torch.device, *,
            style_targets: Optional[Sequence[StyleTarget]] = None, mask=None) -> Prepared:
    """Apply ``config``'s artistic control to the loaded ``photo`` (at the result's size) and the ``style`` image(s)
    (or precomputed ``style_targets``): contrast/sharpness, colour mode, style Grams, ``mask``, style strength."""
    photo_t = content_t = pil_to_tensor(enhance(photo, config.contrast, config.sharpness), device)
    luminance_only = config.preserve_colors == "luminance"
    if luminance_only:
        content_t = luminance_rgb(photo_t)
    if style_targets is None:
        if style is None:
            if config.style_weight > 0:
                raise ValueError("no style image given (or set style_weight=0)")
            style_targets = []
        else:
            styles = list(style) if isinstance(style, (list, tuple)) else [style]
            styles = prepare_styles(styles, photo_t, config.preserve_colors, style_size(size, config.style_scale))
            style_targets = prepare_style_targets(styles, vgg, config, size, device)
    elif config.preserve_colors == "histogram":
        raise ValueError("preserve_colors='histogram' recolours the style images for each photo: pass style images, not style_targets")
    h, w = content_t.shape[-2:]
    mask_t = None if mask is None else as_mask(mask).tensor(w, h, device)
    if mask_t is not None and float(mask_t.max()) == 0.0:
        warnings.warn("the mask is all black (after --mask-invert, if given): nothing will be styled and the photo "
                      "comes back unchanged (white = style)", RuntimeWarning, stacklevel=3)
    if mask_t is not None:
        style_targets = apply_mask(style_targets, mask_t, w, h, device)
    if config.style_strength < 1 and config.style_weight > 0:
        style_targets = apply_strength(style_targets, vgg, content_t, config.style_strength,
                                       S.layers_for(config.style_loss, config.style_layers),
                                       precision_for(config.precision, device), config.style_loss, config.seed)
    return Prepared(photo_t, content_t, style_targets, mask_t, mask_t is not None and as_mask(mask).composite,
                    luminance_only)
