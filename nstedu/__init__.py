"""nstedu — a course and toolkit for Neural Style Transfer (Gatys et al., 2015) on a frozen VGG-19.

    import nstedu
    img = nstedu.stylize("photo.jpg", "starry_night", size=256, steps=300)
    nstedu.save_image(img, "out.png")

Modules, in the order data flows: :mod:`nstedu.images` → :mod:`nstedu.vgg` → :mod:`nstedu.losses` →
:mod:`nstedu.transfer` → :mod:`nstedu.images` (save/show). Samples: :mod:`nstedu.samples`.
"""
__version__ = "0.1.0"

from . import samples
from .env import info, quick_mode
from .images import ImageError, load_image, save_image, show
from .transfer import StyleTransferResult, TransferConfig, run_style_transfer, stylize
from .vgg import WeightsError, get_vgg

__all__ = ["stylize", "run_style_transfer", "TransferConfig", "StyleTransferResult", "load_image", "save_image",
           "show", "samples", "get_vgg", "info", "quick_mode", "ImageError", "WeightsError", "__version__"]
