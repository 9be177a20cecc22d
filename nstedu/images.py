"""Images in and out: load, convert, resize, tensors, save atomically, show.

Every image that enters nstedu passes through :func:`load_image`, which accepts a path, a ``PIL.Image``,
a numpy array or raw bytes, honours EXIF orientation and converts any mode (RGBA, P, L, CMYK, 16-bit, float)
to 8-bit RGB. Inside the engine images are float tensors of shape ``(1, 3, H, W)`` with values in [0, 1].
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .files import STALE_PART_SECONDS, _umask, atomic_write, clean_stale_parts  # noqa: F401 (re-exported)

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes, torch.Tensor]

#: Largest image (in pixels) we agree to decode: 178,956,970 (~179 megapixels, e.g. 16000×11000), PIL's own hard
#: limit (2 × ``Image.MAX_IMAGE_PIXELS``). PIL's warning above half of it is not an error here: this check replaces it.
MAX_PIXELS = 2 * 89_478_485
#: Every side of an image that goes through VGG-19 must be at least this long (four 2×2 poolings before conv5_1).
MIN_SIDE = 16

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
#: File extensions read as images wherever a folder is scanned (``nstedu batch``, fast-network training).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ImageError(ValueError):
    """A clear, one-line problem with an input image (names the file and the problem)."""


def _describe(src, name: str | None) -> str:
    if name:
        return name
    if isinstance(src, (str, os.PathLike)):
        return f"'{os.fspath(src)}'"
    return f"<{type(src).__name__}>"


#: PIL modes holding one channel of 16-bit, 32-bit integer or float values (scaled by :func:`white_level`).
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def white_level(arr: np.ndarray, mode: str) -> float:
    """The value that means white in ``arr`` (pixels of a PIL image of ``mode``, or ``"I"`` for integer arrays of
    unknown range): 1 for float images in [0, 1], 65535 for 16-bit images or any values above 255, else 255."""
    if mode == "F" and arr.max() <= 1.0:
        return 1.0
    return 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0


def image_files(folder: Union[str, os.PathLike], recursive: bool = False) -> list[Path]:
    """Files in ``folder`` (and its subfolders if ``recursive``) with an :data:`IMAGE_EXTENSIONS` suffix, sorted."""
    found = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on white, 16-bit scaled, CMYK converted)."""
    if img.mode == "RGB":
        return img
    if img.mode in WIDE_MODES:
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError(f"{int((~np.isfinite(arr)).sum())} pixel value(s) are NaN or infinite")
        arr = np.clip(arr / white_level(arr, img.mode) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode in ("P", "La"):  # "La": premultiplied alpha, which PIL converts only to LA
        img = img.convert("RGBA" if img.mode == "P" else "LA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Pixel values → uint8 by the dtype's meaning: uint8 as is; bool 0/1 → black/white; uint16 0–65535; other
    integers 0–255 (or 0–65535 if any value is above 255); floats 0–1. Anything else is refused (ValueError)."""
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        return arr.astype(np.uint8) * 255
    if kind in "ui":
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"integer pixel values must be 0–255 or 0–65535, got {lo} … {hi}")
        white = 65535.0 if arr.dtype == np.uint16 or hi > 255 else 255.0
        return np.floor(arr.astype(np.float64) * (255.0 / white) + 0.5).astype(np.uint8)
    if kind == "f":
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise ValueError(f"{int((~np.isfinite(arr)).sum())} pixel value(s) are NaN or infinite")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            hint = ": divide by 255?" if lo >= 0 and hi <= 255 else (": divide by 65535?" if lo >= 0 and hi <= 65535 else "")
            raise ValueError(f"float pixel values must be in [0, 1], got {lo:g} … {hi:g}{hint}")
        return np.floor(np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"pixels of dtype {arr.dtype} are not an image (use uint8, uint16, bool or float in [0, 1])")


def _from_array(arr, channels_last: bool = False) -> Image.Image:
    """A numpy array (H×W, H×W×1/3/4, or 1/3/4×H×W when the last side cannot be channels) → ``PIL.Image``, values
    read by :func:`_to_uint8`; ``channels_last``: the layout is declared H×W×C (tensors), nothing is guessed."""
    arr = np.asarray(arr)
    if not channels_last and arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"array of shape {arr.shape} is not an image (expected H×W, H×W×3 or H×W×4)")
    return Image.fromarray(np.ascontiguousarray(_to_uint8(arr)))


def _from_tensor(t: torch.Tensor) -> Image.Image:
    """A tensor ``(1, C, H, W)``, ``(C, H, W)`` (C = 1, 3 or 4: channels first, as declared, whatever the width), ``(H, W)``
    or ``(H, W, C)`` with H not 1, 3 or 4 → ``PIL.Image``; values by the same rules as arrays."""
    t = t.detach().cpu()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16
        t = t.float()
    if t.dim() == 3 and t.shape[0] in (1, 3, 4):  # declared channels first, whatever H and W are
        t = t.permute(1, 2, 0)
    elif t.dim() == 3 and t.shape[-1] not in (1, 3, 4):  # else H×W×C like a numpy array (its first side is no C)
        raise ValueError(f"tensor of shape {tuple(t.shape)} is not an image (expected (1, 3, H, W), (3, H, W) or (H, W))")
    return _from_array(t.numpy(), channels_last=True)


def load_image(src: ImageLike, max_size: int | None = None, *, name: str | None = None) -> Image.Image:
    """Load an image as an 8-bit RGB ``PIL.Image``.

    ``src``: a path, ``PIL.Image``, encoded bytes, a numpy array (H×W[×C]) or a tensor (``(1, 3, H, W)``/
    ``(3, H, W)``); array and tensor values are read by their dtype: uint8 0–255, uint16 0–65535, bool, other
    integers 0–255 (0–65535 if any is above 255), floats in [0, 1] (outside it, or NaN/inf: refused). EXIF orientation is applied. With
    ``max_size`` the longest side is reduced to at most that many pixels (aspect kept). ``name`` is used in
    error messages (e.g. ``"style image 'x.jpg'"``). Raises :class:`ImageError` with a one-line message.
    """
    label = _describe(src, name)
    if not isinstance(src, (str, os.PathLike, Image.Image, np.ndarray, bytes, bytearray, torch.Tensor)):
        raise ImageError(f"{name or 'image'} must be a path, a sample name, a PIL image, an array or a tensor; "
                         f"got {type(src).__name__}")
    try:
        if isinstance(src, Image.Image):
            img = src
        elif isinstance(src, torch.Tensor):
            img = _from_tensor(src)
        elif isinstance(src, np.ndarray):
            img = _from_array(src)
        else:
            if isinstance(src, (bytes, bytearray)):
                fp = io.BytesIO(src)
            else:
                path = Path(src)
                if not path.exists():
                    raise ImageError(f"{label}: file not found")
                if path.is_dir():
                    raise ImageError(f"{label}: is a directory, not an image file")
                if not path.is_file():  # reading a FIFO or a device would block or never end
                    raise ImageError(f"{label}: not a regular file (a FIFO, socket or device)")
                if path.stat().st_size == 0:
                    raise ImageError(f"{label}: file is empty (0 bytes)")
                fp = path
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS below is the limit
                img = Image.open(fp)
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{label}: image is too large ({w}×{h} pixels; limit {MAX_PIXELS:,})")
                img.load()
        img = ImageOps.exif_transpose(img)
        if img.width == 0 or img.height == 0:
            raise ImageError(f"{label}: image has zero size ({img.width}×{img.height})")
        img = _to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{label}: image is too large (decompression bomb guard: {e})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image file (format not recognised)") from None
    except (OSError, SyntaxError) as e:
        raise ImageError(f"{label}: corrupted or truncated image ({e})") from None
    except ValueError as e:
        raise ImageError(f"{label}: {e}") from None
    if max_size is not None:
        img = resize_longest(img, max_size)
    return img


def fit_longest(width: int, height: int, size: int) -> tuple[int, int]:
    """The (width, height) of a ``width``×``height`` image resized so its longest side is ``size`` (aspect kept)."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_longest(img: Image.Image, size: int) -> Image.Image:
    """Resize so the longest side is ``size`` pixels, keeping the aspect ratio (LANCZOS; BICUBIC when enlarging)."""
    new = fit_longest(*img.size, size)
    if new == img.size:
        return img
    return img.resize(new, Image.LANCZOS if size < max(img.size) else Image.BICUBIC)


def min_size_for(width: int, height: int) -> int:
    """The smallest longest side at which a ``width``×``height`` image keeps both sides ≥ :data:`MIN_SIDE`."""
    size = max(1, (MIN_SIDE - 1) * max(width, height) // min(width, height))  # a lower bound (sides are rounded)
    while min(fit_longest(width, height, size)) < MIN_SIDE:
        size += 1
    return size


def check_min_side(original: tuple[int, int], size: int, label: str, option: str = "--size") -> tuple[int, int]:
    """The (width, height) of an ``original`` = (width, height) image at ``size``; :class:`ImageError` (naming the
    smallest ``option`` value that would do) if a side would be shorter than :data:`MIN_SIDE` pixels."""
    w, h = fit_longest(*original, size)
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{label} would be {w}×{h} pixels at {option} {size}: every side needs at least {MIN_SIDE} "
                         f"(VGG-19 halves it four times); use {option} {min_size_for(*original)} or more, or crop it")
    return w, h


def pil_to_tensor(img: Image.Image, device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """``PIL.Image`` (RGB) → float tensor ``(1, 3, H, W)`` in [0, 1]."""
    arr = np.asarray(_to_rgb(img), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()
    return t.to(device) if device is not None else t


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """Float tensor ``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1] → ``PIL.Image`` (values clamped, rounded)."""
    t = t.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"tensor of shape {tuple(t.shape)} is not an image (expected (1, 3, H, W))")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    if not torch.isfinite(t).all():
        raise ValueError(f"{int((~torch.isfinite(t)).sum())} pixel value(s) of the tensor are NaN or infinite")
    arr = (t.float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def to_tensor(src: ImageLike, size: int | None = None, device=None, *, name: str | None = None) -> torch.Tensor:
    """Load anything :func:`load_image` accepts straight to a ``(1, 3, H, W)`` tensor in [0, 1]."""
    return pil_to_tensor(load_image(src, size, name=name), device)


def save_image(img: Union[Image.Image, torch.Tensor], path: Union[str, os.PathLike], quality: int = 95) -> Path:
    """Save atomically (see :func:`atomic_write`): a crash half-way never leaves a partial file at ``path``.

    The format follows the extension (.png, .jpg/.jpeg, .webp, .bmp, .tif). Returns the path.
    """
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"output '{path}': unknown image extension '{path.suffix}' (use one of {', '.join(sorted(SAVE_FORMATS))})")
    if isinstance(img, torch.Tensor):
        img = tensor_to_pil(img)
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    return atomic_write(path, lambda f: img.save(f, format=fmt, **kwargs))


def show(*images, titles: Sequence[str] | None = None, size: float = 4.0, axes=None):
    """Show images side by side with matplotlib (e.g. ``show(content, style, result, titles=[...])``).

    Accepts anything :func:`load_image` accepts. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt  # heavy, and only for notebooks: imported when first used

    pics = [load_image(im) for im in images]
    if titles is None:
        titles = ["content", "style", "result"][: len(pics)] if len(pics) == 3 else [""] * len(pics)
    if axes is None:
        fig, axes = plt.subplots(1, len(pics), figsize=(size * len(pics), size), squeeze=False)
        axes = axes[0]
    else:
        fig = axes[0].figure
    for ax, im, title in zip(axes, pics, titles):
        ax.imshow(im)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    return fig
