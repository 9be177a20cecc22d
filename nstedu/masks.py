"""Masks: where the style goes. White = style, black = keep the photo, grey = in between.

A mask restricts a style target to a region through masked Gram matrices (:func:`nstedu.losses.gram_matrix`:
the statistics of the region only, whatever its area); :func:`region_targets` builds "style A inside, style B
outside". A mask may be a path, a ``PIL.Image``, an array or a tensor, drawn at any resolution with the photo's
aspect ratio; :class:`Mask` checks it, resizes it and softens its edge.

    mask = Mask("person.png", feather=8, invert=True)        # the background gets the style
    result = run_style_transfer(photo, "starry_night", mask=mask)
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from .config import TransferConfig
from .images import WIDE_MODES, ImageError, ImageLike, white_level
from .objective import StyleTarget, prepare_style_targets

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
        elif arr.dtype.kind in "ui":  # integers of unknown depth: 16-bit if any value is above 255
            arr = arr.astype(np.float32) / white_level(arr, "I")
        arr = arr.astype(np.float32)
    else:
        if isinstance(src, Image.Image):
            img = src
        else:
            if not isinstance(src, (str, bytes, os.PathLike)):
                raise ImageError(f"{label} must be a path, a PIL image, an array or a tensor; got {type(src).__name__}")
            if isinstance(src, bytes):
                src = io.BytesIO(src)
            elif Path(src).exists() and not Path(src).is_file():  # a FIFO would block for ever, a folder fails later
                raise ImageError(f"{label}: not a regular file (a folder, FIFO, socket or device)")
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
        if img.mode in WIDE_MODES:
            arr = np.asarray(img, dtype=np.float32)
            arr = arr / white_level(arr, img.mode)
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


def as_mask(mask) -> Mask:
    """A :class:`Mask` from a ``Mask`` or anything it accepts as ``source``."""
    return mask if isinstance(mask, Mask) else Mask(mask)


def load_mask(src, size, *, feather: float = 0.0, invert: bool = False, device=None) -> torch.Tensor:
    """Load a mask for a result of ``size`` = (width, height) (e.g. ``content_image.size``) as ``(1, 1, H, W)``
    in [0, 1]; raises :class:`~nstedu.images.ImageError` with a one-line reason if its mode or shape does not fit."""
    return Mask(src, feather, invert).tensor(size[0], size[1], device)


def ellipse_mask(width: int, height: int, box: Sequence[float] = (0.2, 0.1, 0.8, 0.9), feather: float = 0.0) -> torch.Tensor:
    """A white ellipse in ``box`` = (left, top, right, bottom) as fractions of the size: ``(1, 1, H, W)``."""
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
    m = as_mask(mask).tensor(width, height, device)
    out = [replace(t, mask=m) for t in prepare_style_targets(inside, vgg, config, size, device)]
    if outside is not None:
        out += [replace(t, mask=1.0 - m) for t in prepare_style_targets(outside, vgg, config, size, device)]
    return out
