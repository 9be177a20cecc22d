"""Figures for the course: loss curves, feature-map grids, Gram-matrix heatmaps and titled image grids.

Every function draws with matplotlib and returns the ``Figure`` (pass ``ax=`` to draw into your own axes).
Images may be anything :func:`nstedu.images.load_image` accepts (``PIL.Image``, path, sample file, float
tensor ``(1, 3, H, W)`` in [0, 1]).

    from nstedu.plotting import plot_history, image_grid
    plot_history(result)                                    # one run: total, content, style, tv vs step
    plot_history({"L-BFGS": r1, "Adam": r2}, x="time")      # compare runs
    image_grid([content, style, result.image], titles=["content", "style", "result"])
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import torch

from .images import load_image
from .objective import TERMS


def _history(run) -> dict:
    """A ``StyleTransferResult`` or its ``history`` dict → the history dict."""
    history = getattr(run, "history", run)
    if not isinstance(history, Mapping) or "step" not in history:
        raise TypeError(f"expected a StyleTransferResult or its .history dict, got {type(run).__name__}")
    return history


def _new_axes(n: int, cols: int, size: float, ax=None):
    if ax is not None:
        axes = list(ax) if isinstance(ax, (list, tuple)) else list(getattr(ax, "flat", [ax]))
        return axes[0].figure, axes
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    return fig, list(axes.flat)


def plot_history(runs, terms: Sequence[str] = TERMS, x: str = "step", log: bool = True, ax=None, size: float = 3.2):
    """Loss curves from ``StyleTransferResult.history``: one panel per loss term.

    ``runs``: one result (or history dict), or a dict ``{label: result}`` to overlay several runs.
    ``x``: ``"step"`` (loss evaluations) or ``"time"`` (seconds). Terms that are all zero (e.g. ``tv`` when
    ``tv_weight=0``) are skipped. Each term is shown *unweighted*, as stored in the history.
    """
    if x not in ("step", "time"):
        raise ValueError(f"x must be 'step' or 'time', got {x!r}")
    runs = dict(runs) if isinstance(runs, Mapping) and "step" not in runs else {"": runs}
    histories = {label: _history(r) for label, r in runs.items()}
    shown = [t for t in terms if any(any(v != 0 for v in h.get(t, [])) for h in histories.values())]
    if not shown:
        shown = [terms[0]]
    fig, axes = _new_axes(len(shown), len(shown), size, ax)
    for a, term in zip(axes, shown):
        for label, h in histories.items():
            a.plot(h[x], h[term], label=label or None)
        a.set_title(f"{term} loss")
        a.set_xlabel("seconds" if x == "time" else "step (loss evaluations)")
        if log and all(v > 0 for h in histories.values() for v in h[term]):
            a.set_yscale("log")
        if len(histories) > 1 and a is axes[0]:
            a.legend(fontsize="small")
        a.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def feature_maps(features: torch.Tensor, n: int = 16, cols: int = 8, title: str | None = None,
                 channels: Sequence[int] | None = None, size: float = 1.4, cmap: str = "viridis"):
    """A grid of the first ``n`` channels (or the given ``channels``) of one layer's activations.

    ``features``: ``(1, C, H, W)`` or ``(C, H, W)``. Each map gets its own colour range (dark = silent).
    """
    f = features.detach().float().cpu()
    if f.dim() == 4:
        f = f[0]
    if f.dim() != 3:
        raise ValueError(f"features of shape {tuple(features.shape)}: expected (1, C, H, W) or (C, H, W)")
    idx = list(channels) if channels is not None else list(range(min(n, f.shape[0])))
    fig, axes = _new_axes(len(idx), min(cols, len(idx)), size)
    for a, c in zip(axes, idx):
        a.imshow(f[c].numpy(), cmap=cmap)
        a.set_title(f"ch {c}", fontsize=8)
    for a in axes:
        a.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def gram_heatmap(gram: torch.Tensor, n: int | None = 32, ax=None, title: str | None = None, cmap: str = "magma",
                 colorbar: bool = True):
    """Heatmap of a Gram matrix ``(1, C, C)`` or ``(C, C)``, its top-left ``n`` × ``n`` block (None: all)."""
    g = gram.detach().float().cpu()
    if g.dim() == 3:
        g = g[0]
    if g.dim() != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"gram of shape {tuple(gram.shape)}: expected (1, C, C) or (C, C)")
    if n is not None:
        g = g[:n, :n]
    fig, axes = _new_axes(1, 1, 3.6, ax)
    im = axes[0].imshow(g.numpy(), cmap=cmap)
    axes[0].set_xlabel("channel d")
    axes[0].set_ylabel("channel c")
    if title:
        axes[0].set_title(title)
    if colorbar:
        fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.04)
    return fig


def image_grid(images: Sequence, titles: Sequence[str] | None = None, cols: int | None = None, size: float = 3.0,
               suptitle: str | None = None, row_labels: Sequence[str] | None = None):
    """Images in a grid with titles (``cols`` defaults to all in one row). Returns the figure.

    ``row_labels`` (optional) label the rows on the left, e.g. for a sweep of settings.
    """
    pics = [load_image(im) for im in images]
    cols = cols or len(pics)
    fig, axes = _new_axes(len(pics), cols, size)
    for i, a in enumerate(axes):
        a.set_xticks([])
        a.set_yticks([])
        for spine in a.spines.values():
            spine.set_visible(False)
        if i < len(pics):
            a.imshow(pics[i])
            if titles is not None and i < len(titles):
                a.set_title(titles[i], fontsize=9)
        if row_labels is not None and i % cols == 0 and i // cols < len(row_labels):
            a.set_ylabel(row_labels[i // cols])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
