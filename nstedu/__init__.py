"""nstedu — a course and toolkit for Neural Style Transfer (Gatys et al., 2015) on a frozen VGG-19.

    import nstedu
    img = nstedu.stylize("photo.jpg", "starry_night", size=256, steps=300)
    nstedu.save_image(img, "out.png")

Modules, in the order data flows (ARCHITECTURE.md has the picture): :mod:`nstedu.images` and
:mod:`nstedu.samples` (pictures in) → :mod:`nstedu.vgg` (features) → :mod:`nstedu.losses` and
:mod:`nstedu.objective` (what is minimized, set by :mod:`nstedu.config`) → :mod:`nstedu.control` (before and after)
→ :mod:`nstedu.transfer` (the optimizer) → :mod:`nstedu.images` (save/show).
"""
from . import samples
from .config import TransferConfig
from .env import __version__, info, quick_mode
from .images import ImageError, load_image, save_image, show
from .transfer import StyleTransferResult, run_style_transfer, stylize
from .vgg import WeightsError, get_vgg

__all__ = ["stylize", "run_style_transfer", "TransferConfig", "StyleTransferResult", "load_image", "save_image",
           "show", "samples", "get_vgg", "info", "quick_mode", "ImageError", "WeightsError", "__version__"]
