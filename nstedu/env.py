"""The environment: which device to compute on and in what precision, how much memory it has (and whether a
size fits it), quick mode for notebooks and CI, and a report of versions, device and weights (``nstedu info``)."""
from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import sys
import traceback
from dataclasses import dataclass
from typing import Optional, Union

import torch

from .vgg import caffe_weights_path, torchvision_cache_path
from .weights import cache_dir

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
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(device)!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available (use device='cpu' or 'auto')")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device '{device}' requested but MPS (Apple GPU) is not available (use 'cpu' or 'auto')")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device '{device}' is not supported: use auto, cpu, cuda, cuda:N or mps")
    return dev


def default_size(device: torch.device) -> int:
    """The result's longest side when none is given: 512 px on CUDA, 256 px elsewhere."""
    return 512 if device.type == "cuda" else 256


# ------------------------------------------------------------------------------------------------ memory
def available_memory_gb() -> Optional[float]:
    """The memory (GB) the kernel can give this process now (``MemAvailable``), on Linux; else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_gb(device: torch.device) -> Optional[float]:
    """The memory (GB) a new run on ``device`` can take *now*: the CPU's available memory (Linux ``MemAvailable``:
    free plus reclaimable caches; physical memory where that is unknown), the GPU's free memory on CUDA, else None."""
    try:
        if device.type == "cuda":
            return torch.cuda.mem_get_info(device)[0] / 1e9
        if device.type == "cpu":
            available = available_memory_gb()
            return available if available is not None else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (AttributeError, ValueError, OSError, RuntimeError):  # not on Linux/macOS, or no such GPU
        pass
    return None


def estimate_memory_gb(width: int, height: int, history: int) -> float:
    """Rough peak memory (GB) of one evaluation at ``width``×``height``: ≈ 1.9 GB per megapixel for the VGG-19
    activations and their gradients (4.0 GB measured at 1920×1080 on the CPU) plus ``history`` L-BFGS entries
    (2 float32 image-sized vectors each) and a few image-sized buffers."""
    return 1.93 * width * height / 1e6 + 2 * 4 * 3 * width * height * (history + 4) / 1e9


#: GB per megapixel of a forward pass without gradients (the style image's Gram targets; its longest side is
#: ``size × style_scale`` and its shape unknown before it is read: counted as a square).
FORWARD_GB_PER_MPX = 1.0


def check_memory(width: int, height: int, history: int, device: torch.device, size: int,
                 multiscale_history: Optional[int] = None, style_scale: float = 1.0) -> None:
    """``ValueError`` (before anything is allocated) when a ``width``×``height`` result needs more than 90 % of the
    memory available now (:func:`memory_gb`, :func:`estimate_memory_gb`), naming the option that makes it too big:
    ``--lbfgs-history`` when the history alone is the cause, ``--style-scale`` when the style image is, else the
    largest ``--size`` that fits (and ``--multiscale`` when its short L-BFGS history of the finest level would fit)."""
    total = memory_gb(device)
    if total is None:
        return
    budget = 0.9 * total
    side = max(16, round(size * style_scale))
    style_need = FORWARD_GB_PER_MPX * side * side / 1e6
    if style_need > budget and style_scale > 1:
        fits = math.floor(style_scale * math.sqrt(budget / style_need) * 100) / 100
        raise ValueError(f"--style-scale {style_scale:g} makes the style image {side}×{side} pixels at most, which "
                         f"needs about {style_need:.0f} GB and {device.type} has {total:.0f} GB available: use "
                         f"--style-scale {fits:g} or less")
    need = estimate_memory_gb(width, height, history)
    if need <= budget:
        return
    base, per_entry = estimate_memory_gb(width, height, 0), estimate_memory_gb(width, height, 1) - estimate_memory_gb(width, height, 0)
    if history > 100 and base + 100 * per_entry <= budget:  # the history is the cause, not the size
        fits = int((budget - base) / per_entry)
        raise ValueError(f"--lbfgs-history {history} needs about {need:.0f} GB at {width}×{height} and this "
                         f"{device.type} has {total:.0f} GB available: use --lbfgs-history {fits} or less")
    fits = largest_size(size, total, need)
    hint = ""
    if multiscale_history is not None and estimate_memory_gb(width, height, multiscale_history) <= budget:
        hint = MULTISCALE_HINT
    raise ValueError(f"a {width}×{height} result needs about {need:.0f} GB of memory and this {device.type} has "
                     f"{total:.0f} GB available: the largest size that fits is about --size {fits}; use it{hint}")


def check_size_fits(label: str, need_gb: float, device: torch.device, option: str, value: float,
                    power: float = 2.0) -> None:
    """``ValueError`` before the work when ``need_gb`` (which grows as ``value ** power``) is more than 90 % of
    the memory available now, naming ``option`` and the largest value that fits (the fast network, its training)."""
    total = memory_gb(device)
    if total is None or need_gb <= 0.9 * total:
        return
    fits = math.floor(value * (0.9 * total / need_gb) ** (1.0 / power))
    raise ValueError(f"{label} needs about {need_gb:.1f} GB of memory and this {device.type} has {total:.1f} GB "
                     f"available: use {option} {fits} or less")


#: What the memory messages add when a multi-scale run would fit.
MULTISCALE_HINT = " or add --multiscale (its finest level keeps a short L-BFGS history)"


def largest_size(size: int, available_gb: float, need_gb: float) -> int:
    """The ``--size`` whose result needs about 90 % of ``available_gb``, when ``size`` needs ``need_gb`` (memory
    grows with the pixel count, i.e. with the square of the size)."""
    return math.floor(size * math.sqrt(0.9 * available_gb / need_gb))


class DeviceMemoryError(ValueError):
    """The run did not fit the device's memory; the message names the size that fits."""


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's failure."""
    text = str(error)
    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))


@contextlib.contextmanager
def explain_out_of_memory(width: int, height: int, history: int, device: torch.device, size: int,
                          suggest_multiscale: bool = True):
    """Turn an out-of-memory error inside the block into a one-line :class:`DeviceMemoryError` naming the
    ``--size`` that fits in what is free once the failed run's tensors are released (and suggesting
    ``--multiscale``): the estimate of :func:`check_memory` can miss, or another process holds memory."""
    try:
        yield
    except RuntimeError as e:
        if not is_out_of_memory(e):
            raise
        traceback.clear_frames(e.__traceback__)  # release the failed run's tensors before measuring what is free
        if device.type == "cuda":
            torch.cuda.empty_cache()
            free = torch.cuda.mem_get_info(device)[0] / 1e9
        else:
            free = memory_gb(device)
        need = max(estimate_memory_gb(width, height, history), 1.1 * (free or 0) / 0.9)  # it did not fit
        fits = largest_size(size, free, need) if free else None
        hint = MULTISCALE_HINT if suggest_multiscale else ""
        where = f"the largest size that fits is about --size {fits}; use it" if fits else "use a smaller --size"
        raise DeviceMemoryError(f"a {width}×{height} result ran out of {device.type} memory"
                                f"{f' ({free:.1f} GB free)' if free else ''}: {where}{hint}") from None


# --------------------------------------------------------------------------------------------- precision
#: ``precision`` settings: ``auto`` (fp32 channels_last on the CPU; on CUDA TF32 + bf16 autocast, fp16 where bf16 is missing),
#: ``fp32`` (exact, TF32 off: for teaching and comparisons), ``tf32``, ``bf16``, ``fp16``.
PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")


@dataclass(frozen=True)
class PrecisionPlan:
    """How the VGG-19 forward and backward run on one device. The Gram matrices and the loss sums are always
    computed in fp32 (the features are cast back before them); only the network's convolutions change."""

    name: str                                 # what is used: "fp32", "tf32", "bf16" or "fp16"
    autocast: Optional[torch.dtype] = None    # the convolutions' dtype under torch.autocast (None: plain fp32)
    tf32: bool = False                        # CUDA: TF32 tensor cores for the fp32 matrix products
    channels_last: bool = False               # NHWC layout for the network's input and weights

    @property
    def exact(self) -> bool:
        """True for plain fp32: the engine then runs exactly as it always has."""
        return self.autocast is None and not self.tf32 and not self.channels_last


def precision_plan(precision: str, device_type: str, bf16_supported: bool = False) -> PrecisionPlan:
    """The plan for ``precision`` (one of :data:`PRECISIONS`) on a ``device_type`` ("cpu", "cuda", "mps"); pure:
    the capability comes in (``bf16_supported``: the GPU has bf16, e.g. not a T4), the plan goes out.

    CPU and MPS: ``auto``/``fp32``/``tf32`` are plain fp32 (no TF32 there), ``auto`` on the CPU in channels_last
    (an iteration is ≈ 13 % faster so; same values within float rounding);
    ``bf16``/``fp16`` autocast on that device. CUDA: ``auto`` = TF32 + bf16 autocast + channels_last (fp16 autocast without bf16); ``bf16`` without
    bf16 support silently becomes fp16; ``fp32`` turns TF32 off."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device_type != "cuda":
        if precision in ("bf16", "fp16"):
            return PrecisionPlan(precision, torch.bfloat16 if precision == "bf16" else torch.float16)
        return PrecisionPlan("fp32", channels_last=precision == "auto" and device_type == "cpu")
    if precision == "fp32":
        return PrecisionPlan("fp32")
    if precision == "tf32":
        return PrecisionPlan("tf32", None, tf32=True, channels_last=True)
    dtype = torch.bfloat16 if precision != "fp16" and bf16_supported else torch.float16  # auto, bf16: bf16 if there
    return PrecisionPlan("bf16" if dtype == torch.bfloat16 else "fp16", dtype, tf32=True, channels_last=True)


def precision_for(precision: str, device: Union[str, torch.device]) -> PrecisionPlan:
    """:func:`precision_plan` for an actual ``device``, asking CUDA whether it has bf16."""
    device = torch.device(device)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return precision_plan(precision, device.type, bf16)


@contextlib.contextmanager
def matmul_precision(plan: Optional[PrecisionPlan]):
    """Within the block, CUDA's fp32 matrix products and convolutions use TF32 iff ``plan.tf32``, and cuDNN times
    its algorithms once per shape (``cudnn.benchmark``) unless the plan is exact fp32; restored after.
    A no-op for ``plan=None`` and on a machine without CUDA."""
    if plan is None or not torch.cuda.is_available():
        yield
        return
    b = torch.backends
    saved = b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark
    b.cuda.matmul.allow_tf32 = b.cudnn.allow_tf32 = plan.tf32
    b.cudnn.benchmark = not plan.exact  # the same shapes 300 times: worth one search; fp32 stays reproducible
    try:
        yield
    finally:
        b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark = saved


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
def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def info() -> dict:
    """Versions, device and weight availability, as a dict (``nstedu info`` prints it)."""
    report = {
        "nstedu": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),   # not imported: torchvision pulls in torch._dynamo (~2 s)
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
    cached = sorted(cache_dir().glob("vgg19_caffe-*.pt"))
    report["weights_cache"] = str(cached[0]) if cached else f"none yet (written to '{cache_dir()}' on first use)"
    try:
        cached = torchvision_cache_path()
        report["weights_torchvision"] = str(cached) if cached.is_file() else "not cached (downloads when online)"
    except Exception as e:  # pragma: no cover
        report["weights_torchvision"] = f"unavailable: {e}"
    return report


@contextlib.contextmanager
def environment(**values: Optional[str]):
    """Within the block, ``os.environ`` has these ``values`` (``None``: the variable is unset); restored after
    (e.g. a notebook kernel started inside inherits them)."""
    saved = {k: os.environ.get(k) for k in values}

    def put(items):
        for k, v in items:
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    put(values.items())
    try:
        yield
    finally:
        put(saved.items())
