"""High resolution by coarse-to-fine optimization (multi-scale), up to 1920×1080 and 4K on a CPU.

One VGG-19 evaluation costs time and memory in proportion to the pixel count (≈ 39 s and 4 GB at
1920×1080 on a 2-core CPU), so a 1080p result cannot afford hundreds of full-size steps. Instead:

1. stylize at a small size (the whole look — colours, strokes, layout — is decided there, cheaply);
2. upsample the result (bicubic) and use it as the start image at the next size (about twice as large);
3. repeat up to the requested size, with fewer and fewer steps: the finer scales only add detail.

This is the approach of jcjohnson/neural-style's multires scripts (Johnson, 2015) and of Gatys et al.'s
"Controlling Perceptual Factors in Neural Style Transfer" (2017, coarse-to-fine). L-BFGS keeps 2 image-sized
vectors per history entry (2 × 25 MB at 1080p), so the history is shortened at the big scales
(:func:`lbfgs_history_for`).

    result = stylize_multiscale("photo.jpg", "starry_night", size=1920)            # levels 240 … 1920
    result = stylize_multiscale("photo.jpg", "great_wave", sizes=[256, 512], steps_per_scale=[200, 50])
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable, Optional, Sequence, Union

from .config import TransferConfig
from .env import check_memory, estimate_memory_gb, resolve_device  # noqa: F401 (estimate_memory_gb: re-exported)
from .images import fit_longest
from .objective import LossHistory, StyleTarget
from .samples import load_content
from .transfer import StyleTransferResult, run_style_transfer

#: Coarsest level's longest side when the levels are chosen automatically.
MIN_SIZE = 200
#: Memory allowed for the L-BFGS history (bytes) before it is shortened.
LBFGS_MEMORY = 512 * 2 ** 20
#: Share of the step budget given to each level, coarse to fine: each finer level gets 1/4 of the previous
#: one's evaluations, so each level costs about the same time (4× the pixels, ¼ of the steps).
LEVEL_RATIO = 4


def scale_sizes(size: int, levels: Optional[int] = None, min_size: int = MIN_SIZE) -> list[int]:
    """Longest sides of the levels, coarse to fine, each half the next: ``scale_sizes(1920)`` →
    ``[240, 480, 960, 1920]``. Without ``levels``, as many as keep the coarsest level ≥ ``min_size``."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if levels is None:
        levels = 1 + max(0, int(math.floor(math.log2(size / min_size)))) if size > min_size else 1
    if levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels}")
    return [max(32, round(size / 2 ** k)) for k in reversed(range(levels))]


def split_steps(steps: int, levels: int, ratio: float = LEVEL_RATIO, min_steps: int = 3) -> list[int]:
    """Divide ``steps`` evaluations over ``levels`` (coarse to fine), each finer level getting ``1/ratio`` of the
    previous one's and at least ``min_steps``: ``split_steps(300, 4)`` → ``[226, 56, 14, 4]``."""
    shares = [ratio ** (levels - 1 - k) for k in range(levels)]
    return [max(min_steps, round(steps * s / sum(shares))) for s in shares]


def lbfgs_history_for(width: int, height: int, limit: int = 100, budget: int = LBFGS_MEMORY) -> int:
    """L-BFGS history length whose 2 float32 image-sized vectors per entry fit ``budget`` bytes (3 … ``limit``):
    100 up to ~850×850 pixels, 10 at 1920×1080, 3 at 4K."""
    per_entry = 2 * 4 * 3 * width * height
    return int(max(3, min(limit, budget // per_entry)))


def stylize_multiscale(content, style=None, config: Optional[TransferConfig] = None, *,
                       sizes: Optional[Sequence[int]] = None, levels: Optional[int] = None,
                       steps_per_scale: Union[int, Sequence[int], None] = None,
                       targets_at: Optional[Callable[[int], Sequence[StyleTarget]]] = None, mask=None,
                       callback: Optional[Callable] = None, callback_every: int = 10,
                       should_stop: Optional[Callable[[], bool]] = None, on_level: Optional[Callable] = None,
                       **overrides) -> StyleTransferResult:
    """Coarse-to-fine style transfer; returns the finest level's :class:`~nstedu.transfer.StyleTransferResult`.

    ``sizes`` (longest sides, coarse to fine) or ``size`` (the config's) and ``levels`` choose the scales
    (:func:`scale_sizes`). ``steps_per_scale``: one number for every level, a list (one per level) or ``None``
    to split the config's ``steps`` (:func:`split_steps`). ``targets_at(size)`` may supply precomputed style
    targets per level (batch processing). Every other argument is as in
    :func:`~nstedu.transfer.run_style_transfer`; ``on_level(size, result)`` runs after each level.

    The returned ``history`` spans all levels (``step`` and ``time`` cumulative, ``size`` per evaluation);
    ``seconds`` is the total. Loss values of different levels are not comparable (different images).
    """
    cfg = replace(config or TransferConfig(), **overrides).validate()
    if sizes is None:
        if cfg.size is None:
            raise ValueError("multi-scale needs the final size: give size=… (or sizes=[…])")
        most = 1 + max(0, int(math.log2(cfg.size / 32)))  # each level half the next, the coarsest ≥ 32 px
        if levels is not None and not (isinstance(levels, int) and 1 <= levels <= most):
            raise ValueError(f"--levels {levels} does not fit --size {cfg.size}: use 1 to {most} (each level is half "
                             f"the next and the coarsest needs at least 32 px)")
        sizes = scale_sizes(cfg.size, levels)
    sizes = [int(s) for s in sizes]
    if not sizes or any(s <= 0 for s in sizes) or sorted(sizes) != sizes:
        raise ValueError(f"sizes must be positive and increasing (coarse to fine), got {sizes}")
    if steps_per_scale is None:
        steps = split_steps(cfg.steps, len(sizes))
        if levels is not None and sum(steps) > cfg.steps:  # the split would run more evaluations than asked
            need = next(n for n in range(cfg.steps, 10 ** 9) if sum(split_steps(n, len(sizes))) <= n)
            raise ValueError(f"--steps {cfg.steps} is too few for {len(sizes)} levels (at least 3 each): use --steps "
                             f"{need} or more, fewer --levels, or --steps-per-scale")
    elif isinstance(steps_per_scale, int):
        steps = [steps_per_scale] * len(sizes)
    else:
        steps = [int(s) for s in steps_per_scale]
    if len(steps) != len(sizes) or any(s <= 0 for s in steps):
        raise ValueError(f"steps_per_scale needs one positive number per level ({len(sizes)}), got {steps}")

    thumb = load_content(content, 64).size  # the photo's aspect ratio, for each level's L-BFGS history
    _check_memory(content, sizes[-1], cfg, thumb)
    t0 = time.perf_counter()
    history = LossHistory(extra=("size",))
    previous, result, offset, done = None, None, 0, []
    for size, n in zip(sizes, steps):
        level_cfg = replace(cfg, size=size, steps=n, lbfgs_history=_history(thumb, size, cfg))
        start = time.perf_counter() - t0
        shift = offset

        def level_callback(info, shift=shift, start=start):
            callback(replace(info, step=info.step + shift, elapsed=info.elapsed + start))

        result = run_style_transfer(content, style if targets_at is None else None, level_cfg,
                                    style_targets=None if targets_at is None else targets_at(size),
                                    init_image=previous, mask=mask, callback=level_callback if callback else None,
                                    callback_every=callback_every, should_stop=should_stop)
        history.extend(result.history, step_offset=offset, time_offset=start, size=size)
        done.append(size)
        if on_level is not None:
            on_level(size, result)
        last_offset, offset = offset, offset + len(result.history["step"])
        previous = result.image
        if result.stop_reason in ("stopped", "interrupted"):
            break
    note = "levels " + " → ".join(map(str, done))
    return replace(result, history=history, seconds=time.perf_counter() - t0, config=cfg,
                   best_step=result.best_step + last_offset,
                   message=f"{result.message}; {note}" if result.message else note)


def _check_memory(content, size: int, cfg: TransferConfig, thumb: tuple) -> None:
    """Refuse (before hours of work) when the finest level will not fit the device's memory."""
    w, h = fit_longest(*thumb, size)
    check_memory(w, h, _history(thumb, size, cfg) if cfg.optimizer == "lbfgs" else 0, resolve_device(cfg.device), size,
                 style_scale=cfg.style_scale)


def _history(thumb: tuple, size: int, cfg: TransferConfig) -> int:
    """The L-BFGS history for the content's shape at ``size`` (aspect ratio from ``thumb``, its (w, h) at 64 px)."""
    return lbfgs_history_for(*fit_longest(*thumb, size), cfg.lbfgs_history)
