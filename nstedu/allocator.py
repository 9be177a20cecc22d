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

#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
#: Inside :func:`steady_allocator`: no block handed to the kernel, none given back until the heap's free top passes 2 GiB.
_STEADY = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
#: After it: what glibc's adaptive defaults settle at once a large block has been freed (blocks over 32 MiB mapped
#: on their own, the heap trimmed above 64 MiB free); ``mallopt`` cannot switch the adaptation itself back on.
_USUAL = ((_M_MMAP_MAX, 65536), (_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TRIM_THRESHOLD, 64 * 2**20))
#: The heap's peak over the run's own need when it keeps freed blocks (they fragment): 3.76 GB instead of 2.95 GB
#: at 1024 px (+27 %), none at 256 px. A run uses the steady heap only where its estimate times this fits.
STEADY_MEMORY_FACTOR = 1.35
_allocator = {"libc": None, "depth": 0, "lock": threading.Lock()}


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
    if os.environ.get("NSTEDU_MALLOC", "").strip().lower() == "system":
        return None
    return _allocator["libc"] or None


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


@contextlib.contextmanager
def steady_allocator(device: Union[str, torch.device, None] = "cpu", need_gb: Optional[float] = None):
    """Within the block, memory freed on the CPU stays in the process for reuse instead of going back to the
    kernel; at the end of the outermost block it is handed back (``malloc_trim``).

    Every iteration allocates and frees the same activation- and gradient-sized buffers, megabytes each. glibc maps
    blocks that large on their own and unmaps them when freed, so each iteration faults every page in again,
    zero-filled: ≈ 9,000 page faults per 256 px iteration for the bare network, ≈ 12,000 for the engine, a million
    at 1024 px. With ``mallopt(M_MMAP_MAX, 0)`` and a 2 GiB trim threshold the heap keeps them, on a 2-core CPU:
    ≈ −10 % per iteration at 256 px, ≈ −25 % at 1024 px, −6 % per fast-training step (``benchmarks/RESULTS.md``,
    engine overhead). The price is fragmentation (:data:`STEADY_MEMORY_FACTOR`), so with ``need_gb`` (the run's estimate,
    :func:`nstedu.env.estimate_memory_gb`) the block does nothing unless that much more fits in the available memory. Also
    nothing outside Linux/glibc, on other devices, or with ``NSTEDU_MALLOC=system``.
    """
    libc = _glibc() if torch.device(device).type == "cpu" else None
    free = available_memory_gb() if libc is not None and need_gb is not None else None
    if libc is None or (free is not None and STEADY_MEMORY_FACTOR * need_gb > free):
        yield
        return
    with _allocator["lock"]:
        if _allocator["depth"] == 0:
            for param, value in _STEADY:
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
