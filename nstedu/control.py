r"""Artistic control: style strength, colour preservation, preprocessing and masks.

Everything here changes *what the optimizer is asked to match*, never the optimizer itself
(:mod:`nstedu.transfer` calls these helpers; you can also call them yourself):

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
* **Masks**: white = style, black = keep the photo (soft values blend). A mask restricts a style target to a
  region through masked Gram matrices (:func:`nstedu.losses.gram_matrix`); :func:`region_targets` builds
  "style A inside, style B outside".
* **Style scale** (bigger or smaller brush strokes) is ``TransferConfig.style_scale``: the style image is
  resized to ``style_scale ×`` the result's longest side before its Grams are taken (<1 → bigger strokes).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from .images import ImageError, ImageLike, pil_to_tensor, tensor_to_pil
from .transfer import StyleTarget, TransferConfig, grams_of, load_style

# --------------------------------------------------------------------------------------------- strength


@torch.no_grad()
def apply_strength(targets: Sequence[StyleTarget], vgg, content: torch.Tensor, strength: float,
                   layers: Sequence[str]) -> list[StyleTarget]:
    r"""Blend each target's Grams with the content's own: :math:`(1 - s)\,\hat G_c + s\,\hat A`.

    ``content`` ``(1, 3, H, W)`` in [0, 1] at the result's size; a masked target is blended with the Gram of the
    same region of the content. ``strength`` 1 returns the targets unchanged; 0 returns no targets at all (the
    photo is its own optimum, and a style term that is flat there only makes the line search stumble)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"style strength must be between 0 and 1, got {strength!r}")
    if strength >= 1.0:
        return list(targets)
    if strength == 0.0:
        return []
    feats = vgg(content, layers)
    out = []
    for t in targets:
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
def check_enhancement(name: str, v) -> None:
    """``ValueError`` unless ``v`` is a valid ``contrast``/``sharpness`` amount: a number ≥ -1 (0 = unchanged)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < -1:
        raise ValueError(f"{name} must be a number ≥ -1 (0 = unchanged, 0.2 = +20 %), got {v!r}")


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


# ------------------------------------------------------------------------------------------------- masks
_MASK_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "I;16L", "I;16B", "F")


def _mask_array(src, label: str) -> np.ndarray:
    """Any mask source → float array (H, W) in [0, 1]."""
    if isinstance(src, torch.Tensor):
        t = src.detach().float().cpu()
        while t.dim() > 2 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 2:
            raise ImageError(f"{label}: tensor of shape {tuple(src.shape)} is not a mask (expected (H, W) or (1, 1, H, W))")
        arr = t.numpy()
    elif isinstance(src, np.ndarray):
        arr = np.squeeze(src)
        if arr.ndim != 2:
            raise ImageError(f"{label}: array of shape {src.shape} is not a mask (expected one channel, H×W)")
        if arr.dtype == bool:
            arr = arr.astype(np.float32)
        elif arr.dtype.kind in "ui":
            arr = arr.astype(np.float32) / (65535.0 if arr.max() > 255 else 255.0)
        arr = arr.astype(np.float32)
    else:
        if isinstance(src, Image.Image):
            img = src
        else:
            try:
                img = Image.open(src)
                img.load()
            except FileNotFoundError:
                raise ImageError(f"{label}: file not found") from None
            except (OSError, SyntaxError) as e:
                raise ImageError(f"{label}: not a readable image ({e})") from None
        img = ImageOps.exif_transpose(img)
        if img.mode not in _MASK_MODES:
            raise ImageError(f"{label}: image mode {img.mode} cannot be a mask (use a greyscale image: white = style, black = photo)")
        if img.mode in ("RGBA", "LA") and img.getchannel("A").getextrema()[0] < 255:
            img = img.getchannel("A")  # transparency drawn in an editor: opaque = style
        elif img.mode in ("RGB", "RGBA", "P"):
            rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
            if np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max() > 16:
                raise ImageError(f"{label}: is a colour image; a mask must be greyscale (white = style, black = photo)")
            img = img.convert("L")
        if img.mode in ("I", "I;16", "I;16L", "I;16B", "F"):
            arr = np.asarray(img, dtype=np.float32)
            top = 1.0 if img.mode == "F" and arr.max() <= 1 else (65535.0 if arr.max() > 255 else 255.0)
            arr = arr / top
        else:
            arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ImageError(f"{label}: mask values must be in [0, 1] (got {arr.min():g} … {arr.max():g})")
    return arr


@dataclass
class Mask:
    """Where the style goes: ``source`` (path, ``PIL.Image``, array or tensor; white/1 = style, black/0 = photo),
    ``feather`` (Gaussian blur radius in result pixels: soft edges), ``invert`` (swap inside and outside),
    ``composite``: after the optimization, blend the result with the photo through the mask,
    ``m·result + (1 − m)·photo``, so the photo is kept exactly where the mask is black (VGG's receptive fields
    otherwise let some style bleed a few dozen pixels across the edge); ``False`` keeps the raw result.

    ``Mask("person.png", feather=8, invert=True).tensor(w, h)`` → ``(1, 1, h, w)`` float in [0, 1]."""

    source: object
    feather: float = 0.0
    invert: bool = False
    composite: bool = True
    name: Optional[str] = None

    def tensor(self, width: int, height: int, device=None) -> torch.Tensor:
        label = self.name or (f"mask '{self.source}'" if isinstance(self.source, (str,)) or hasattr(self.source, "__fspath__")
                              else "mask")
        if not (math.isfinite(self.feather) and self.feather >= 0):
            raise ValueError(f"mask feather must be a non-negative number of pixels, got {self.feather!r}")
        arr = _mask_array(self.source, label)
        mh, mw = arr.shape
        # Same aspect ratio as the content (to within rounding): the mask may be drawn at any resolution.
        if abs(mw / mh - width / height) > 0.02 * (width / height) + 1.0 / min(mh, height):
            raise ImageError(f"{label}: is {mw}×{mh} (aspect {mw / mh:.2f}) but the photo's aspect is {width / height:.2f} "
                             f"({width}×{height} at this size); draw the mask at the photo's size or aspect ratio")
        img = Image.fromarray(arr.astype(np.float32), mode="F")
        if (mw, mh) != (width, height):
            img = img.resize((width, height), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.float32)
        if self.feather > 0:  # PIL blurs 8-bit images: 1/255 steps are finer than any visible edge
            img = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
            arr = np.asarray(img.filter(ImageFilter.GaussianBlur(self.feather)), dtype=np.float32) / 255.0
        t = torch.from_numpy(arr.copy()).clamp_(0, 1)[None, None]
        if self.invert:
            t = 1.0 - t
        return t.to(device) if device is not None else t


def finish(result, photo: torch.Tensor, luminance_only: bool, mask: Optional[torch.Tensor]):
    """Post-process a :class:`~nstedu.transfer.StyleTransferResult` in place: the photo's chroma
    (:func:`keep_content_colors`) and/or the photo pasted back outside ``mask`` (``(1, 1, H, W)``). Its losses stay
    those of the optimized image."""
    x = result.tensor
    photo = photo.to(x.device)
    if luminance_only:
        x = keep_content_colors(x, photo)
    if mask is not None:
        m = mask.to(x.device)
        x = (m * x + (1 - m) * photo).clamp(0, 1)
    result.tensor, result.image = x, tensor_to_pil(x)
    return result


def as_mask(mask) -> Mask:
    """A :class:`Mask` from a ``Mask`` or anything it accepts as ``source``."""
    return mask if isinstance(mask, Mask) else Mask(mask)


def load_mask(src, size, *, feather: float = 0.0, invert: bool = False, device=None) -> torch.Tensor:
    """Load a mask for a result of ``size`` = (width, height) (e.g. ``content_image.size``) as ``(1, 1, H, W)``
    in [0, 1]; raises :class:`~nstedu.images.ImageError` with a one-line reason if its mode or shape does not fit."""
    return Mask(src, feather, invert).tensor(size[0], size[1], device)


def ellipse_mask(width: int, height: int, box: Sequence[float] = (0.2, 0.1, 0.8, 0.9), feather: float = 0.0) -> torch.Tensor:
    """A white ellipse in ``box`` = (left, top, right, bottom) as fractions of the size: ``(1, 1, H, W)``."""
    from PIL import ImageDraw

    img = Image.new("L", (width, height), 0)
    ImageDraw.Draw(img).ellipse([box[0] * width, box[1] * height, box[2] * width, box[3] * height], fill=255)
    return Mask(img, feather).tensor(width, height)


def rectangle_mask(width: int, height: int, box: Sequence[float] = (0.0, 0.0, 0.5, 1.0), feather: float = 0.0) -> torch.Tensor:
    """A white rectangle in ``box`` = (left, top, right, bottom) as fractions of the size: ``(1, 1, H, W)``."""
    arr = np.zeros((height, width), np.float32)
    arr[round(box[1] * height):round(box[3] * height), round(box[0] * width):round(box[2] * width)] = 1.0
    return Mask(arr, feather).tensor(width, height)


def apply_mask(targets: Sequence[StyleTarget], mask, width: int, height: int, device=None) -> list[StyleTarget]:
    """Restrict every target that has no mask of its own to ``mask`` (white = style)."""
    ready = isinstance(mask, torch.Tensor) and mask.dim() == 4 and tuple(mask.shape[-2:]) == (height, width)
    m = (mask if device is None else mask.to(device)) if ready else as_mask(mask).tensor(width, height, device)
    return [t if t.mask is not None else replace(t, mask=m) for t in targets]


def region_targets(vgg, inside: Union[ImageLike, Sequence[ImageLike]], mask, config: TransferConfig, size: int,
                   width: int, height: int, outside: Union[ImageLike, Sequence[ImageLike], None] = None,
                   device="cpu") -> list[StyleTarget]:
    """Style targets for "style ``inside`` where the mask is white, ``outside`` (or the photo) elsewhere".

    ``size`` is the result's longest side and (``width``, ``height``) its shape (e.g. ``load_image(photo,
    size).size``). Pass the list as ``run_style_transfer(photo, style_targets=...)``."""
    from .transfer import prepare_style_targets

    m = as_mask(mask).tensor(width, height, device)
    out = [replace(t, mask=m) for t in prepare_style_targets(inside, vgg, config, size, device)]
    if outside is not None:
        out += [replace(t, mask=1.0 - m) for t in prepare_style_targets(outside, vgg, config, size, device)]
    return out


# --------------------------------------------------------------------------------------------- command line
def _strength(text: str) -> float:
    try:
        v = float(text[:-1]) / 100.0 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction 0–1 or a percentage like 60%, got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"style strength must be 0–1 or 0%–100%, got {text!r}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The artistic-control options shared by ``nstedu stylize`` and ``nstedu batch``."""
    g = p.add_argument_group("artistic control")
    g.add_argument("--style-strength", type=_strength, default=1.0, metavar="S",
                   help="how much style, 0–1 or 0%%–100%% (Gram targets blended with the photo's; try 0.5–0.6; default 1)")
    g.add_argument("--preserve-colors", choices=("luminance", "histogram"), default=None,
                   help="keep the photo's colours: luminance-only transfer, or recolour the style to the photo's histogram")
    g.add_argument("--contrast", type=float, default=0.0, metavar="F",
                   help="boost the photo's contrast before stylizing, e.g. 0.25 = +25%% (default 0)")
    g.add_argument("--sharpness", type=float, default=0.0, metavar="F",
                   help="sharpen the photo before stylizing, e.g. 0.1 = +10%% (default 0)")


def add_mask_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mask (selective styling)")
    g.add_argument("--mask", default=None, metavar="FILE",
                   help="greyscale image, the photo's aspect ratio: white = style, black = keep the photo")
    g.add_argument("--mask-invert", action="store_true", help="style the black part instead")
    g.add_argument("--mask-feather", type=float, default=0.0, metavar="PX",
                   help="soften the mask edge with a Gaussian blur of this radius in output pixels (default 0)")
    g.add_argument("--mask-no-composite", action="store_true",
                   help="do not paste the photo back where the mask is black (lets some style bleed across the edge)")


def config_from_args(args) -> dict:
    """The :class:`~nstedu.transfer.TransferConfig` fields set by :func:`add_arguments`."""
    return dict(style_strength=args.style_strength, preserve_colors=args.preserve_colors, contrast=args.contrast,
                sharpness=args.sharpness)


def mask_from_args(args) -> Optional[Mask]:
    if getattr(args, "mask", None) is None:
        return None
    return Mask(args.mask, feather=args.mask_feather, invert=args.mask_invert, composite=not args.mask_no_composite)
