"""The environment: which device to compute on, quick mode for notebooks and CI, and a report of versions,
device and weights (``nstedu info``)."""
from __future__ import annotations

import os
import platform
import sys
from typing import Union

import torch

from .vgg import caffe_weights_path, torchvision_cache_path

__version__ = "0.1.0"


# ------------------------------------------------------------------------------------------------ device
def default_device() -> torch.device:
    """cuda > mps > cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    """``"auto"`` (or ``None``) → :func:`default_device`; anything else as ``torch.device``, checked for CUDA."""
    if device is None or str(device) == "auto":
        return default_device()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available (use device='cpu' or 'auto')")
    return dev


def default_size(device: torch.device) -> int:
    """The result's longest side when none is given: 512 px on CUDA, 256 px elsewhere."""
    return 512 if device.type == "cuda" else 256


# -------------------------------------------------------------------------------------------- quick mode
def quick_mode() -> bool:
    """True when ``NSTEDU_QUICK`` is set to a true value (nbval and CI set it): notebooks shrink sizes/steps."""
    return os.environ.get("NSTEDU_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def pick(quick, full):
    """``quick`` in quick mode, else ``full`` — e.g. ``steps = pick(20, 300)``."""
    return quick if quick_mode() else full


def in_colab() -> bool:
    return "google.colab" in sys.modules


# ------------------------------------------------------------------------------------------------ report
def info() -> dict:
    """Versions, device and weight availability, as a dict (``nstedu info`` prints it)."""
    import torchvision  # heavy (~1 s): only for this report

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
        report["weights_caffe"] = str(caffe_weights_path())
    except Exception as e:  # report, don't fail
        report["weights_caffe"] = f"NOT FOUND: {e}"
    try:
        cached = torchvision_cache_path()
        report["weights_torchvision"] = str(cached) if cached.is_file() else "not cached (downloads when online)"
    except Exception as e:  # pragma: no cover
        report["weights_torchvision"] = f"unavailable: {e}"
    return report
