"""The playground: every knob of Gatys et al.'s style transfer (2015) as a widget, with a live preview.

    from nstedu.widgets import Playground
    Playground()          # in a notebook cell: pick the images, move the sliders, press Run

Each control sets one field of :class:`nstedu.config.TransferConfig` (the controls and that mapping are the
layout, :mod:`nstedu.widget_layout`); Run calls :func:`nstedu.transfer.run_style_transfer`, which minimizes
``α·content + β·style + γ·tv`` over the pixels. :meth:`Playground.settings` shows exactly what will be passed;
:meth:`Playground.set` changes controls from code. This module is the run controller: it starts and stops runs,
shows their progress, keeps a gallery and saves results.

Scheduling. The engine is synchronous. While a cell (or a button handler) runs, the kernel still *sends* widget
updates but does not *receive* clicks, so a Stop click would wait until the run is over. The playground therefore
runs the optimization in a background thread (``background=True``, the default outside Colab): the preview and the
loss plot update every ``preview_every`` steps and Stop acts at once. On Colab, widget updates sent from threads are
reported not to render (googlecolab/colabtools#3373), so there it runs in the foreground (``background=False``):
the preview still updates while it runs, and the ■ (interrupt kernel) button stops it, keeping the best image.
:meth:`Playground.run` with ``block=True`` runs in the caller's thread (scripts, tests).

Core ipywidgets only, with APIs present in both 7.7 (Colab) and 8.x.
"""
from __future__ import annotations

import base64
import html
import io
import threading
import time
from pathlib import Path
from typing import Optional

import ipywidgets as W
from matplotlib.figure import Figure

from . import transfer
from .env import in_colab
from .images import ImageError, resize_longest, save_image, tensor_to_pil
from .objective import TERMS, LossHistory
from .widget_layout import PRESETS, PlaygroundLayout, png_bytes, uploaded_files  # noqa: F401 (re-exported)


def loss_plot_png(history: dict, weights=(1.0, 1.0, 1.0), size=(4.8, 2.5)) -> bytes:
    """A log-scale plot of the total loss and its weighted terms α·content, β·style, γ·tv, as PNG bytes.
    Uses a bare matplotlib ``Figure`` (no pyplot), so it is safe from a background thread."""
    fig = Figure(figsize=size, dpi=80)
    ax = fig.subplots()
    steps = history.get("step", [])
    if steps:
        ax.semilogy(steps, history["total"], color="black", label="total")
        for key, w, label in zip(("content", "style", "tv"), weights, ("α·content", "β·style", "γ·tv")):
            values = [w * v for v in history[key]]
            if any(v > 0 for v in values):
                ax.semilogy(steps, values, label=label, linewidth=1)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    else:
        ax.text(0.5, 0.5, "the loss curve appears here", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class Playground(PlaygroundLayout):
    """Interactive style transfer. ``content``/``style``: bundled sample names (or anything
    :func:`nstedu.load_image` accepts; ``style`` may be a list). ``size``/``steps``: starting values of those
    sliders. ``preview_every``: refresh the preview and loss plot every this many steps. ``background``: run in
    a thread (default: yes, except on Colab). Saved images go to ``output_dir``. Display it as a cell's last line.
    """

    def __init__(self, content="chelsea", style="starry_night", *, size: int = 256, steps: int = 200,
                 preview_every: int = 5, device: str = "auto", background: Optional[bool] = None,
                 output_dir="outputs/playground", max_gallery: int = 8):
        self.background = (not in_colab()) if background is None else bool(background)
        self.preview_every, self.device, self.max_gallery = int(preview_every), device, int(max_gallery)
        self.output_dir = Path(output_dir)
        self.result: Optional[transfer.StyleTransferResult] = None   # the latest run's result
        self.gallery_entries: list = []                               # newest first: dicts with result, settings
        self.last_error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._runs = 0
        super().__init__(content, style, size=size, steps=steps)
        self.loss_plot.value = loss_plot_png(LossHistory())
        self.run_button.on_click(lambda _: self.run(block=not self.background))
        self.stop_button.on_click(lambda _: self.stop())
        self.save_button.on_click(lambda _: self.save())

    def settings(self) -> dict:
        """The :class:`~nstedu.config.TransferConfig` fields Run passes on: the controls' and the device."""
        return dict(super().settings(), device=self.device, progress=False)

    # ------------------------------------------------------------------------------------------ running
    def run(self, block: bool = True):
        """Start a run with the current settings. ``block=True``: run here and return the result;
        ``block=False``: run in a background thread and return the thread (see :meth:`wait`)."""
        if self.running:
            return None
        self._clear_error()
        try:
            settings = self.settings()
            content, style = self.inputs()
        except (ValueError, ImageError) as e:
            self._show_error(str(e))
            return None
        self._stop.clear()
        self._set_running(True, settings["steps"])
        if block:
            return self._work(content, style, settings)
        self._thread = threading.Thread(target=self._work, args=(content, style, settings), daemon=True,
                                        name="nstedu-playground")
        self._thread.start()
        return self._thread

    def stop(self):
        """Ask the running optimization to stop after the current step (the best image is kept)."""
        if self.running:
            self._stop.set()
            self.status.value = "stopping…"

    def wait(self, timeout: Optional[float] = None):
        """Wait for a background run to end; return the latest result."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def _set_running(self, running: bool, steps: int = 0):
        self.running = running
        self.run_button.disabled = running
        self.stop_button.disabled = not running
        self.save_button.disabled = running or self.result is None
        if running:
            self.progress.max, self.progress.value = max(1, steps), 0
            self.status.value = "starting…"

    def _work(self, content, style, settings):
        self._live = LossHistory()
        self._weights = (settings["content_weight"], settings["style_weight"], settings["tv_weight"])
        self._last_plot, self._steps = 0.0, settings["steps"]
        snapshot = self._snapshot()
        result = None
        try:
            result = transfer.run_style_transfer(content, style, callback=self._on_step, callback_every=self.preview_every,
                                                 should_stop=self._stop.is_set, **settings)
            self._finish(result, settings, snapshot)
        except Exception as e:  # shown in the widget; the exception is kept in .last_error
            self.last_error = e
            known = isinstance(e, (ValueError, ImageError, RuntimeError))
            self._show_error(str(e) if known else f"{type(e).__name__}: {e} (details: playground.last_error)")
            self.status.value = "failed"
        finally:
            self._set_running(False)
        return result

    def _on_step(self, info):
        self._live.append(info.step, [info.losses[k] for k in TERMS], info.elapsed)
        self.preview.value = png_bytes(tensor_to_pil(info.image))
        self.progress.value = info.step
        self.status.value = f"step {info.step}/{self._steps} · loss {info.losses['total']:.3g} · {info.elapsed:.1f} s"
        if time.perf_counter() - self._last_plot > 0.5:
            self.loss_plot.value = loss_plot_png(self._live, self._weights)
            self._last_plot = time.perf_counter()

    def _finish(self, result, settings, snapshot):
        self.result = result
        self._runs += 1
        self.preview.value = png_bytes(result.image)
        self.loss_plot.value = loss_plot_png(result.history, self._weights)
        n = len(result.history["step"])
        self.progress.value = min(n, self.progress.max)
        extra = f" ({result.message})" if result.message else ""
        self.status.value = (f"<b>{result.stop_reason}</b> after {n} steps in {result.seconds:.1f} s{extra}; "
                             f"showing the best image (step {result.best_step}, loss {result.best_loss:.3g})")
        self._add_to_gallery(result, settings, snapshot)

    def _add_to_gallery(self, result, settings, snapshot):
        content, style = snapshot["content"], [k for k in self.style_rows if snapshot.get(f"style:{k}")]
        ratio = settings["content_weight"] / settings["style_weight"] if settings["style_weight"] else float("inf")
        text = (f"<div style='line-height:1.35'><small><b>#{self._runs}</b> {html.escape(content)} × {html.escape(' + '.join(style))}<br>"
                f"α/β {ratio:.1e} · γ {settings['tv_weight']:.3g} · strength {settings['style_strength']:.2f} · {settings['style_loss']}<br>"
                f"layers {', '.join(settings['style_layers'])} · content {settings['content_layers'][0]}<br>"
                f"{settings['size']} px · {settings['optimizer']} lr {settings['lr']:.3g} · init {settings['init']} · "
                f"{settings['pooling']} pool · seed {settings['seed']} · colours {settings['preserve_colors'] or 'off'}<br>"
                f"{result.stop_reason}, {len(result.history['step'])} steps, loss {result.best_loss:.3g}</small></div>")
        use = W.Button(description="use these settings", layout=W.Layout(width="150px"))
        use.on_click(lambda _: self._restore(snapshot))
        card = W.VBox([W.Image(value=png_bytes(resize_longest(result.image, 160)), format="png", width="160"),
                       W.HTML(text, layout=W.Layout(width="220px")), use],
                      layout=W.Layout(border="1px solid #ddd", margin="2px", padding="4px"))
        self.gallery_entries.insert(0, dict(result=result, settings=settings, controls=snapshot))
        del self.gallery_entries[self.max_gallery:]
        self.gallery.children = ((card,) + tuple(self.gallery.children))[: self.max_gallery]

    # --------------------------------------------------------------------------------------- output
    def save(self, path=None) -> Optional[Path]:
        """Save the latest result as PNG (default ``output_dir/playground_NNN.png``) and show a download link."""
        if self.result is None:
            self._show_error("nothing to save yet: press Run first")
            return None
        path = Path(path) if path is not None else self.output_dir / f"playground_{self._runs:03d}.png"
        if path.suffix.lower() != ".png":
            self._show_error(f"save: '{path}' must end in .png")
            return None
        save_image(self.result.image, path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.download.value = (f"saved <code>{html.escape(str(path))}</code> · <a download=\"{html.escape(path.name)}\" "
                               f"href=\"data:image/png;base64,{data}\">⬇ download {html.escape(path.name)}</a>")
        return path
