"""The environment: quick mode for notebooks and CI, and a report of versions, device and weights."""
from __future__ import annotations

import os
import platform


def quick_mode() -> bool:
    """True when ``NSTEDU_QUICK`` is set to a true value (nbval and CI set it): notebooks shrink sizes/steps."""
    return os.environ.get("NSTEDU_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def pick(quick, full):
    """``quick`` in quick mode, else ``full`` — e.g. ``steps = pick(20, 300)``."""
    return quick if quick_mode() else full


def in_colab() -> bool:
    import sys

    return "google.colab" in sys.modules


def info() -> dict:
    """Versions, device and weight availability, as a dict (``nstedu info`` prints it)."""
    import torch
    import torchvision

    from . import __version__
    from .transfer import default_device

    report = {
        "nstedu": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(default_device()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available",
        "threads": torch.get_num_threads(),
        "quick_mode": quick_mode(),
        "colab": in_colab(),
    }
    try:
        from .vgg import caffe_weights_path

        report["weights_caffe"] = str(caffe_weights_path())
    except Exception as e:  # report, don't fail
        report["weights_caffe"] = f"NOT FOUND: {e}"
    try:
        from pathlib import Path

        from torchvision.models import VGG19_Weights

        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG19_Weights.IMAGENET1K_V1.url).name
        report["weights_torchvision"] = str(cached) if cached.is_file() else "not cached (downloads when online)"
    except Exception as e:  # pragma: no cover
        report["weights_torchvision"] = f"unavailable: {e}"
    return report
