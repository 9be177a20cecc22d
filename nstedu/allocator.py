"""The CPU allocator during a run: freed buffers kept for the next iteration instead of being faulted in again
(:func:`steady_allocator`, used by the optimizer loop and fast training)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from typing import Optional, Union

import torch

from .env import available_memory_gb  # noqa: F401 (re-exported: the one reader of MemAvailable)
from .vgg import VGG19Features

#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
#: glibc's largest mmap threshold (``mallopt`` refuses more): blocks above it are always mapped on their own.
_LARGEST_THRESHOLD = 32 * 2**20
#: Inside :func:`steady_allocator`, *full* mode: no block handed to the kernel, none given back until the heap's free
#: top passes 2 GiB. *Partial* mode: blocks up to 32 MiB (glibc's largest threshold) from the heap, larger ones mapped.
_FULL = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
_PARTIAL = ((_M_MMAP_MAX, 65536), (_M_MMAP_THRESHOLD, _LARGEST_THRESHOLD), (_M_TRIM_THRESHOLD, 2**31 - 1))
#: After it: what glibc's adaptive defaults settle at once a large block has been freed (blocks over 32 MiB mapped
#: on their own, the heap trimmed above 64 MiB free); ``mallopt`` cannot switch the adaptation itself back on.
_USUAL = ((_M_MMAP_MAX, 65536), (_M_MMAP_THRESHOLD, _LARGEST_THRESHOLD), (_M_TRIM_THRESHOLD, 2 * _LARGEST_THRESHOLD))
#: The heap's peak over the run's own need in full mode (freed blocks fragment): 3.65 GB instead of 2.91 GB at
#: 1024 px (+25 %), none at 256 px. Full mode only where the run's estimate times this fits the available memory.
STEADY_MEMORY_FACTOR = 1.35
#: Full mode only below this many pixels: from there on the network recomputes its first block during the backward
#: pass, and in a heap that never maps blocks of their own those buffers fragment it: at 1920×1080, 7.70 GiB peak
#: instead of 5.04 GiB, and no faster than partial mode (4.97 GiB).
FULL_MAX_PIXELS = VGG19Features.checkpoint_pixels
_allocator = {"libc": None, "depth": 0, "lock": threading.Lock()}


def _switched_off() -> bool:
    return os.environ.get("NSTEDU_MALLOC", "").strip().lower() == "system"


def _glibc():
    """The C library if it is glibc on Linux (whose ``mallopt`` :func:`steady_allocator` uses) and ``NSTEDU_MALLOC``
    is not ``system``; else None."""
    if _allocator["libc"] is None:
        _allocator["libc"] = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
                libc.gnu_get_libc_version, libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only (not musl)
                _allocator["libc"] = libc
            except (OSError, AttributeError):
                pass
    return None if _switched_off() else _allocator["libc"] or None


def describe() -> str:
    """What :func:`steady_allocator` does in this process, in words (``nstedu info``)."""
    if _switched_off():
        return "the system's (NSTEDU_MALLOC=system)"
    if _glibc() is None:
        return "the system's (keeping freed buffers needs glibc on Linux)"
    return "glibc, freed buffers kept during CPU runs (NSTEDU_MALLOC=system turns it off)"


@contextlib.contextmanager
def steady_allocator(device: Union[str, torch.device, None] = "cpu", need_gb: Optional[float] = None,
                     pixels: Optional[int] = None):
    """Within the block, memory freed on the CPU stays in the process for reuse instead of going back to the
    kernel; at the end of the outermost block it is handed back (``malloc_trim``).

    Every iteration allocates and frees the same activation- and gradient-sized buffers, megabytes each. glibc maps
    blocks that large on their own and unmaps them when freed, so each iteration faults every page in again,
    zero-filled: ≈ 9,000 page faults per 256 px iteration for the bare network, ≈ 12,000 for the engine, a million
    at 1024 px. In *full* mode (``mallopt(M_MMAP_MAX, 0)``, a 2 GiB trim threshold) the heap keeps them all, on a
    2-core CPU: ≈ −10 % per iteration at 256 px, ≈ −25 % at 1024 px, −6 % per fast-training step
    (``benchmarks/RESULTS.md``, engine overhead). Its price is fragmentation, so a run whose estimate ``need_gb``
    (:func:`nstedu.env.estimate_memory_gb`) times :data:`STEADY_MEMORY_FACTOR` does not fit the available memory, or
    whose image has ``pixels`` ≥ :data:`FULL_MAX_PIXELS`, gets *partial* mode: blocks up to 32 MiB kept, larger
    ones mapped as usual (no memory cost measured: a 1920×1080 multi-scale run took 136 s instead of 144 s,
    peak 4.97 GiB instead of 5.04 GiB). Nothing at all outside Linux/glibc, on other devices, or with
    ``NSTEDU_MALLOC=system``.
    """
    libc = _glibc() if torch.device(device).type == "cpu" else None
    if libc is None:
        yield
        return
    free = available_memory_gb() if need_gb is not None else None
    full = ((free is None or STEADY_MEMORY_FACTOR * need_gb <= free)
            and (pixels is None or pixels < FULL_MAX_PIXELS))
    with _allocator["lock"]:
        if _allocator["depth"] == 0:
            for param, value in _FULL if full else _PARTIAL:
                libc.mallopt(param, value)
        _allocator["depth"] += 1
    try:
        yield
    finally:
        with _allocator["lock"]:
            _allocator["depth"] -= 1
            if _allocator["depth"] == 0:
                for param, value in _USUAL:
                    libc.mallopt(param, value)
                libc.malloc_trim(0)
