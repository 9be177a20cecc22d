"""nstedu — a course and toolkit for Neural Style Transfer (Gatys et al., 2015) on a frozen VGG-19.

    import nstedu
    img = nstedu.stylize("photo.jpg", "starry_night", size=256, steps=300)
    nstedu.save_image(img, "out.png")

Modules, in the order data flows (ARCHITECTURE.md has the picture): :mod:`nstedu.images` and
:mod:`nstedu.samples` (pictures in) → :mod:`nstedu.vgg` (features) → :mod:`nstedu.losses` and
:mod:`nstedu.objective` (what is minimized, set by :mod:`nstedu.config`) → :mod:`nstedu.control` (before and after)
→ :mod:`nstedu.transfer` (the optimizer) → :mod:`nstedu.images` (save/show).
"""
from .arguments import quiet_start

quiet_start()  # the `nstedu` command: Ctrl-C while torch loads below ends with one line (cli.main restores it)

from . import samples  # noqa: E402
from .config import TransferConfig  # noqa: E402
from .env import __version__, info, quick_mode  # noqa: E402
from .images import ImageError, load_image, save_image, show  # noqa: E402
from .transfer import StyleTransferResult, run_style_transfer, stylize  # noqa: E402
from .vgg import WeightsError, get_vgg  # noqa: E402

__all__ = ["stylize", "run_style_transfer", "TransferConfig", "StyleTransferResult", "load_image", "save_image",
           "show", "samples", "get_vgg", "info", "quick_mode", "ImageError", "WeightsError", "__version__"]
