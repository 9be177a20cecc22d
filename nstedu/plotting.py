"""Figures for the course: loss curves, feature-map grids, Gram-matrix heatmaps and titled image grids.

Every function draws with matplotlib and returns the ``Figure`` (pass ``ax=`` to draw into your own axes).
Images may be anything :func:`nstedu.images.load_image` accepts (``PIL.Image``, path, sample file, float
tensor ``(1, 3, H, W)`` in [0, 1]).

    from nstedu.plotting import plot_history, image_grid
    plot_history(result)                                    # one run: total, content, style, tv vs step
    plot_history({"L-BFGS": r1, "Adam": r2}, x="time")      # compare runs
    image_grid([content, style, result.image], titles=["content", "style", "result"])
    full_mode_reference("03_texture_sweep", fig)            # quick mode: show the full-mode result next to it
"""
from __future__ import annotations

import datetime
import io
import json
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from PIL import Image

from .env import __version__, quick_mode
from .images import atomic_write, load_image
from .objective import TERMS

WEIGHTS = {"content": "content_weight", "style": "style_weight", "tv": "tv_weight"}
SYMBOLS = {"content": "α", "style": "β", "tv": "γ"}


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


def _weighted(run, history: dict) -> dict:
    """The history with each term multiplied by its weight (α, β, γ from the run's config): they add up to the total."""
    cfg = getattr(run, "config", None)
    if cfg is None:
        raise TypeError("weighted=True needs StyleTransferResult objects (their .config holds α, β, γ), not bare histories")
    out = dict(history)
    for term, field in WEIGHTS.items():
        w = float(getattr(cfg, field))
        out[term] = [w * v for v in history.get(term, [])]
    return out


def plot_history(runs, terms: Sequence[str] = TERMS, x: str = "step", log: bool = True, ax=None, size: float = 3.2,
                 weighted: bool = False):
    """Loss curves from ``StyleTransferResult.history``: one panel per loss term.

    ``runs``: one result (or history dict), or a dict ``{label: result}`` to overlay several runs.
    ``x``: ``"step"`` (loss evaluations) or ``"time"`` (seconds). Terms that are all zero (e.g. ``tv`` when
    ``tv_weight=0``) are skipped. The history stores each term *unweighted*; ``weighted=True`` plots α·content,
    β·style and γ·tv instead (read from each result's config), whose sum is the total.
    """
    if x not in ("step", "time"):
        raise ValueError(f"x must be 'step' or 'time', got {x!r}")
    runs = dict(runs) if isinstance(runs, Mapping) and "step" not in runs else {"": runs}
    histories = {label: _history(r) for label, r in runs.items()}
    if weighted:
        histories = {label: _weighted(runs[label], h) for label, h in histories.items()}
    shown = [t for t in terms if any(any(v != 0 for v in h.get(t, [])) for h in histories.values())]
    if not shown:
        shown = [terms[0]]
    fig, axes = _new_axes(len(shown), len(shown), size, ax)
    for a, term in zip(axes, shown):
        for label, h in histories.items():
            a.plot(h[x], h[term], label=label or None)
        a.set_title(f"{SYMBOLS[term]}·{term}" if weighted and term in SYMBOLS else f"{term} loss")
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
                 colorbar: bool = True, vmin: float | None = None, vmax: float | None = None):
    """Heatmap of a Gram matrix ``(1, C, C)`` or ``(C, C)``, its top-left ``n`` × ``n`` block (None: all).

    Pass the same ``vmin``/``vmax`` to heatmaps you want to compare (by default each gets its own colour range)."""
    g = gram.detach().float().cpu()
    if g.dim() == 3:
        g = g[0]
    if g.dim() != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"gram of shape {tuple(gram.shape)}: expected (1, C, C) or (C, C)")
    if n is not None:
        g = g[:n, :n]
    fig, axes = _new_axes(1, 1, 3.6, ax)
    im = axes[0].imshow(g.numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
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


# ------------------------------------------------------------------------------- full-mode references
#: Where the full-mode reference figures live (shipped with the package, ≤ 2 MB in all).
REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "references"
#: Set to 1 (or a folder) while running the notebooks in full mode to (re)write the references: ``make references``.
WRITE_REFERENCES_ENV = "NSTEDU_WRITE_REFERENCES"
REFERENCE_MAX_WIDTH = 900      # px: keeps each JPEG around 50–150 KB


def reference_path(name: str, root=None) -> Path:
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise ValueError(f"reference name must be a plain file stem like '03_texture_sweep', got {name!r}")
    return Path(root or REFERENCE_DIR) / f"{name}.jpg"


def save_reference(name: str, fig, root=None) -> Path:
    """Save ``fig`` as the full-mode reference ``name`` (JPEG, at most REFERENCE_MAX_WIDTH px wide), atomically,
    and record when and with which nstedu it was made in ``index.json``."""
    path = reference_path(name, root)
    dpi = min(72.0, REFERENCE_MAX_WIDTH / fig.get_size_inches()[0])
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=dpi, pil_kwargs={"quality": 72, "optimize": True})
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    index_path = path.parent / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    index[name] = {"created": datetime.date.today().isoformat(), "nstedu": __version__}
    atomic_write(index_path, lambda f: f.write(json.dumps(index, indent=1, sort_keys=True) + "\n"), text=True)
    return path


def reference_action(name: str, root=None) -> str:
    """What :func:`full_mode_reference` does with the reference ``name`` here and now: "shown" (quick mode, the
    reference exists), "missing" (quick mode, not generated yet), "written" (full mode with
    ``NSTEDU_WRITE_REFERENCES`` set: ``make references``) or "full" (full mode: the figure *is* the result)."""
    if not quick_mode():
        target = os.environ.get(WRITE_REFERENCES_ENV, "").strip()
        return "written" if target and target.lower() not in ("0", "false", "no") else "full"
    return "shown" if reference_path(name, root).is_file() else "missing"


def full_mode_reference(name: str, fig=None, what: str = "", root=None) -> None:
    """Quick-mode honesty for the figure a cell just drew (``fig``, default: the current figure).

    * quick mode (``NSTEDU_QUICK=1``): marks ``fig`` "QUICK MODE" and draws, in a second figure, the reference
      ``name`` computed once in full mode and shipped with nstedu — or, if it was not generated yet, says so.
    * full mode with ``NSTEDU_WRITE_REFERENCES`` set (``make references``): saves ``fig`` as the reference.
    * full mode otherwise: does nothing (the figure *is* the full-mode result).

    :func:`reference_action` says which of these happens. Returns ``None``, like ``plt.show()``: a notebook cell
    that ends with this call shows its figures and nothing else (a returned value would be printed under them).
    ``what`` names the settings of the full run for the caption (e.g. "256 px, 300 steps").
    """
    fig = fig if fig is not None else plt.gcf()
    action = reference_action(name, root)
    if action == "written":
        target = os.environ[WRITE_REFERENCES_ENV].strip()
        save_reference(name, fig, None if target.lower() in ("1", "true", "yes") else target)
    if action in ("written", "full"):
        return None
    fig.suptitle("QUICK MODE — tiny images, few steps: not what this cell shows in full mode (reference below)",
                 color="firebrick", fontsize=9)
    if action == "missing":
        print(f"Full-mode reference '{name}' not generated yet (instructors: `make references`). "
              "Run without NSTEDU_QUICK to see the real result.")
        return None
    path = reference_path(name, root)
    index_path = path.parent / "index.json"
    made = json.loads(index_path.read_text()).get(name, {}) if index_path.is_file() else {}
    with Image.open(path) as im:
        pic = im.convert("RGB")
    w, h = pic.size
    ref = plt.figure(figsize=(w / 100, h / 100 + 0.35))
    ax = ref.add_axes((0, 0, 1, h / (h + 35)))
    ax.imshow(pic)
    ax.axis("off")
    when = f", made {made['created']}" if made.get("created") else ""
    ref.suptitle(f"FULL MODE reference{': ' + what if what else ''} (computed once and shipped{when})",
                 color="darkgreen", fontsize=9)
    return None
