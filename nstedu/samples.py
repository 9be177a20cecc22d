"""Bundled sample images: a few licensed content photos and public-domain paintings, so everything works offline,
and how the engine reads its inputs: a sample name or anything :func:`nstedu.images.load_image` takes.

    >>> from nstedu import samples
    >>> samples.list()                  # names, with kind and credit
    >>> img = samples.load("starry_night", size=256)
    >>> photo = samples.load_content("chelsea", 256)      # a name, a path, a PIL image, an array …

Licences and sources: ``nstedu/data/SOURCES.md`` (see :func:`licences`).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional

from PIL import Image

from .images import check_min_side, load_image, resize_longest

#: name -> (kind, title, credit, licence)
SAMPLES = {
    "starry_night": ("style", "The Starry Night (1889)", "Vincent van Gogh", "public domain"),
    "shipwreck": ("style", "The Shipwreck (1805)", "J. M. W. Turner", "public domain"),
    "great_wave": ("style", "The Great Wave off Kanagawa (c. 1831)", "Katsushika Hokusai", "public domain"),
    "astronaut": ("content", "Astronaut Eileen Collins", "NASA", "public domain"),
    "chelsea": ("content", "Chelsea the cat", "Stefan van der Walt", "CC0"),
    "coffee": ("content", "A cup of coffee", "Rachel Michetti", "CC0"),
    "rocket": ("content", "Falcon 9 launch of DSCOVR", "SpaceX", "public domain"),
    "grace_hopper": ("content", "Rear Admiral Grace Hopper", "US Navy", "public domain"),
}


def _data_dir() -> Path:
    return Path(str(resources.files("nstedu") / "data"))


def names(kind: str | None = None) -> list[str]:
    """Sample names, optionally only ``kind="content"`` or ``kind="style"``."""
    return [n for n, meta in SAMPLES.items() if kind is None or meta[0] == kind]


def list(kind: str | None = None) -> list[dict]:  # noqa: A001 - the issue asks for samples.list()
    """One dict per sample: name, kind, title, credit, licence, path."""
    return [dict(name=n, kind=SAMPLES[n][0], title=SAMPLES[n][1], credit=SAMPLES[n][2], licence=SAMPLES[n][3],
                 path=str(path(n))) for n in names(kind)]


def path(name: str) -> Path:
    """File path of a bundled sample."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample '{name}'; available: {', '.join(SAMPLES)}")
    return _data_dir() / f"{name}.jpg"


def load(name: str, size: int | None = None) -> Image.Image:
    """A bundled sample as an RGB ``PIL.Image``, longest side resized to ``size`` if given."""
    return load_image(path(name), size, name=f"sample '{name}'")


def licences() -> str:
    """The text of ``SOURCES.md``: where each bundled image comes from and its licence."""
    return (_data_dir() / "SOURCES.md").read_text(encoding="utf-8")


def _load_as(src, size, role: str) -> Image.Image:
    if isinstance(src, str) and src in SAMPLES:
        src = path(src)
    return load_image(src, size, name=f"{role} '{src}'" if isinstance(src, str) else role)


def load_style(src, size: Optional[int] = None) -> Image.Image:
    """A style image: a bundled sample name or anything :func:`load_image` takes; errors say "style image '…'".
    With ``size``, both sides must stay at least 16 px (VGG-19 needs them), else a one-line ImageError."""
    img = _load_as(src, None, "style image")
    if size is None:
        return img
    check_min_side(img.size, size, f"style image '{src}'" if isinstance(src, str) else "style image",
                   option="a style size (--size × --style-scale) of")
    return resize_longest(img, size)


def load_content(src, size: Optional[int] = None) -> Image.Image:
    """A content photo: a bundled sample name or anything :func:`load_image` takes; errors say "content image '…'"."""
    return _load_as(src, size, "content image")
