"""The playground's layout: every control of :class:`nstedu.widgets.Playground` and how the controls map to
:class:`~nstedu.config.TransferConfig` fields (:meth:`PlaygroundLayout.settings`, :meth:`PlaygroundLayout.set`).
The controls start at the config's defaults. Running the engine is the controller's job (:mod:`nstedu.widgets`);
this module never touches it.

Core ipywidgets only, with APIs present in both 7.7 (Colab) and 8.x.
"""
from __future__ import annotations

import html
import io
from pathlib import Path

import ipywidgets as W
from IPython.display import display
from PIL import Image

from . import samples
from .config import COLOR_MODES, INITS, STYLE_LOSSES, TransferConfig, default_lr
from .images import load_image, resize_longest
from .vgg import LAYER_NAMES, POOLINGS

#: One-click settings. α/β = 5e-3 keeps more of the photo, 1e-3 is balanced, 5e-4 leans to the painting.
PRESETS = {
    "subtle": dict(content_weight=1.0, style_weight=2e2, tv_weight=1e2, style_strength=0.6),
    "balanced": dict(content_weight=1.0, style_weight=1e3, tv_weight=1e2, style_strength=1.0),
    "bold": dict(content_weight=1.0, style_weight=2e3, tv_weight=1e1, style_strength=1.0),
}
_DESC = {"description_width": "105px"}
_WIDE = W.Layout(width="380px")


def uploaded_files(value) -> list:
    """``[(name, bytes), ...]`` from a ``FileUpload.value``: a dict ``{name: {"metadata": …, "content": bytes}}``
    in ipywidgets 7, a tuple of ``{"name": …, "content": memoryview, …}`` dicts in ipywidgets 8."""
    if isinstance(value, dict):
        items = [(name, f.get("content", b"")) for name, f in value.items()]
    else:
        items = [(f.get("name", "upload"), f.get("content", b"")) for f in (value or ())]
    return [(str(name), bytes(content)) for name, content in items]


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _tip(widget, text: str):
    """Hover help: ``tooltip`` in ipywidgets 8, ``description_tooltip`` in 7."""
    setattr(widget, "tooltip" if widget.has_trait("tooltip") else "description_tooltip", text)
    return widget


def _classed(widget, *classes):
    for c in classes:
        widget.add_class(c)
    return widget


class PlaygroundLayout:
    """The controls (tabs Images, Weights, Layers, Optimizer; buttons, preview, loss plot, gallery) and their
    mapping to the engine's settings. ``content``/``style``: bundled sample names (or anything
    :func:`nstedu.load_image` accepts; ``style`` may be a list); ``size``/``steps``: starting values of those sliders.
    """

    running = False  # set by the controller while a run is going on

    def __init__(self, content="chelsea", style="starry_night", *, size: int = 256, steps: int = 200):
        self._uploads: dict = {}        # option key -> PIL image
        self._controls: dict = {}       # name -> value widget (for reset / restoring a gallery entry)
        self._build(size, steps)
        styles = style if isinstance(style, (list, tuple)) else [style]
        self.set(content=self._content_key(content), style=[self._style_key(s) for s in styles])
        self._defaults = self._snapshot()
        self._show_content()

    # ------------------------------------------------------------------------------------------ layout
    def _reg(self, name, widget):
        self._controls[name] = widget
        return widget

    def _build(self, size, steps):
        D = TransferConfig()  # the engine's defaults are the controls' starting values
        slider = dict(style=_DESC, layout=_WIDE, continuous_update=False)
        self.content = self._reg("content", W.Dropdown(options=samples.names("content"), description="content photo",
                                                       style=_DESC, layout=_WIDE))
        self.content_upload = W.FileUpload(accept="image/*", multiple=False, description="upload photo")
        self.style_upload = W.FileUpload(accept="image/*", multiple=False, description="upload style")
        self.style_rows: dict = {}      # key -> (Checkbox, blend FloatSlider)
        self.style_box = W.VBox()
        for name in samples.names("style"):
            self._add_style_row(name, samples.load(name, 96), tick=False)
        images = W.VBox([self.content, self.content_upload,
                         W.HTML("<div style='line-height:1.4'><b>styles</b> — tick one or more; several are "
                                "blended with these weights</div>"),
                         self.style_box, self.style_upload])

        self.content_weight = self._reg("content_weight", _tip(W.FloatLogSlider(
            value=D.content_weight, base=10, min=-2, max=2, step=0.1, description="α content", readout_format=".3g", **slider),
            "weight of the content loss: higher keeps more of the photo"))
        self.style_weight = self._reg("style_weight", _tip(W.FloatLogSlider(
            value=D.style_weight, base=10, min=0, max=6, step=0.1, description="β style", readout_format=".3g", **slider),
            "weight of the style loss: higher paints more"))
        self.ratio = W.HTML()
        self.tv_on = self._reg("tv_on", W.Checkbox(value=D.tv_weight > 0, description="smooth (total variation)", indent=False))
        self.tv_weight = self._reg("tv_weight", _tip(W.FloatLogSlider(
            value=D.tv_weight or 1e2, base=10, min=-1, max=4, step=0.1, description="γ TV", readout_format=".3g", **slider),
            "weight of the total-variation loss: higher is smoother, less noisy"))
        self.style_strength = self._reg("style_strength", W.FloatSlider(
            value=D.style_strength, min=0.0, max=1.0, step=0.05, description="style strength", **slider))
        self.preserve_colors = self._reg("preserve_colors", W.Dropdown(
            options=["off", *COLOR_MODES], value=D.preserve_colors or "off", description="keep colours", style=_DESC,
            layout=_WIDE))
        self.style_loss = self._reg("style_loss", _tip(W.Dropdown(options=list(STYLE_LOSSES), value=D.style_loss, description="style is",
            style=_DESC, layout=_WIDE), TransferConfig.__dataclass_fields__["style_loss"].metadata["help"]))  # lesson 10
        weights = W.VBox([self.content_weight, self.style_weight, self.ratio, self.tv_on, self.tv_weight,
                          self.style_strength, self.preserve_colors, self.style_loss])

        self.layer_rows: dict = {}      # layer -> (Checkbox, weight FloatSlider)
        rows = []
        for layer in D.style_layers:
            cb = self._reg(f"layer:{layer}", W.Checkbox(value=True, description=layer, indent=False,
                                                        layout=W.Layout(width="90px")))
            w = self._reg(f"layer_weight:{layer}", W.FloatSlider(value=D.layer_weights()[layer], min=0.0, max=1.0, step=0.05,
                                                                  readout_format=".2f", continuous_update=False))
            self.layer_rows[layer] = (cb, w)
            rows.append(W.HBox([cb, w]))
        self.content_layer = self._reg("content_layer", W.Dropdown(
            options=[n for n in LAYER_NAMES if not n.startswith("pool")], value=D.content_layers[0],
            description="content layer", style=_DESC))
        layers = W.VBox([W.HTML("<div style='line-height:1.4'><b>style layers</b> (weights are normalized "
                                "to sum to 1 over the ticked ones)</div>")]
                        + rows + [self.content_layer])

        self.size = self._reg("size", W.IntSlider(value=size, min=64, max=1024, step=32, description="size (px)", **slider))
        self.steps = self._reg("steps", W.IntSlider(value=steps, min=1, max=1000, description="steps", **slider))
        self.optimizer = self._reg("optimizer", W.ToggleButtons(options=[("L-BFGS", "lbfgs"), ("Adam", "adam")],
                                                                value=D.optimizer, description="optimizer", style=_DESC))
        self.lr = self._reg("lr", W.FloatLogSlider(value=D.step_size(), base=10, min=-3, max=1, step=0.1, description="learning rate",
                                                   readout_format=".3g", **slider))
        self.init = self._reg("init", W.Dropdown(options=list(INITS), value=D.init, description="start from", style=_DESC))
        self.pooling = self._reg("pooling", W.ToggleButtons(options=list(POOLINGS), value=D.pooling, description="pooling",
                                                            style=_DESC))
        self.seed = self._reg("seed", W.BoundedIntText(value=D.seed, min=0, max=2**31 - 1, description="seed", style=_DESC))
        optim = W.VBox([self.size, self.steps, self.optimizer, self.lr, self.init, self.pooling, self.seed])

        self.tabs = W.Tab(children=[images, weights, layers, optim])
        for i, title in enumerate(("Images", "Weights", "Layers", "Optimizer")):
            self.tabs.set_title(i, title)

        def button(text, icon, cls, style="", tip=""):
            return _classed(W.Button(description=text, icon=icon, button_style=style, tooltip=tip), cls)

        self.run_button = button("Run", "play", "nstedu-run", "success", "start the optimization")
        self.stop_button = button("Stop", "stop", "nstedu-stop", "danger", "stop now and keep the best image")
        self.save_button = button("Save", "save", "nstedu-save", "", "save the result as PNG and offer a download")
        self.stop_button.disabled = self.save_button.disabled = True
        self.preset_buttons = {name: button(name, "", f"nstedu-preset-{name}", "info", str(PRESETS[name])) for name in PRESETS}
        self.reset_button = button("Reset", "undo", "nstedu-reset", "warning", "all controls back to their start values")
        self.preview = _classed(W.Image(format="png", width="320"), "nstedu-preview")
        self.loss_plot = _classed(W.Image(format="png", width="384"), "nstedu-loss")  # drawn by the controller
        self.progress = _classed(W.IntProgress(value=0, min=0, max=max(1, steps), description="progress"), "nstedu-progress")
        self.status = _classed(W.HTML("press <b>Run</b>"), "nstedu-status")
        self.error = _classed(W.HTML(layout=W.Layout(display="none")), "nstedu-error")
        self.download = _classed(W.HTML(), "nstedu-download")
        self.gallery = _classed(W.HBox(layout=W.Layout(flex_flow="row wrap")), "nstedu-gallery")
        right = W.VBox([W.HBox([self.run_button, self.stop_button, self.save_button]),
                        W.HBox(list(self.preset_buttons.values()) + [self.reset_button]),
                        self.progress, self.status, self.error, self.preview, self.loss_plot, self.download])
        self.ui = _classed(W.VBox([W.HBox([self.tabs, right]), W.HTML("<b>Gallery</b> — previous runs, newest first"),
                                   self.gallery]), "nstedu-playground")

        self.reset_button.on_click(lambda _: self.reset())
        for name, b in self.preset_buttons.items():
            b.on_click(lambda _, name=name: self.apply_preset(name))
        self.content_upload.observe(lambda ch: self._on_upload(ch["new"], self.add_content), names="value")
        self.style_upload.observe(lambda ch: self._on_upload(ch["new"], self.add_style), names="value")
        self.content.observe(lambda _: self._show_content(), names="value")
        for w in (self.content_weight, self.style_weight):
            w.observe(lambda _: self._show_ratio(), names="value")
        self.tv_on.observe(lambda ch: setattr(self.tv_weight, "disabled", not ch["new"]), names="value")
        self.optimizer.observe(lambda ch: setattr(self.lr, "value", default_lr(ch["new"])), names="value")
        self._show_ratio()

    def _add_style_row(self, key, thumb: Image.Image, tick: bool):
        cb = self._reg(f"style:{key}", W.Checkbox(value=tick, description=key, indent=False, layout=W.Layout(width="170px")))
        blend = self._reg(f"blend:{key}", W.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, readout_format=".2f",
                                                        continuous_update=False, layout=W.Layout(width="170px")))
        _tip(blend, "blend weight of this style (weights are normalized by their sum)")
        icon = W.Image(value=png_bytes(resize_longest(thumb, 96)), format="png", width="48")
        self.style_rows[key] = (cb, blend)
        self.style_box.children = tuple(self.style_box.children) + (W.HBox([icon, cb, blend]),)

    def _ipython_display_(self):
        display(self.ui)

    # ----------------------------------------------------------------------------------------- images
    def add_content(self, name: str, image) -> str:
        """Add a photo (path, bytes, PIL image…) to the content choices and select it; returns its key."""
        img = load_image(image, 1024, name=f"uploaded file '{name}'")
        key = f"upload: {name}"
        self._uploads[key] = img
        if key not in self.content.options:
            self.content.options = list(self.content.options) + [key]
        self.content.value = key
        return key

    def add_style(self, name: str, image) -> str:
        """Add a style image to the style choices and tick it; returns its key."""
        img = load_image(image, 1024, name=f"uploaded file '{name}'")
        key = f"upload: {name}"
        self._uploads[key] = img
        if key not in self.style_rows:
            self._add_style_row(key, img, tick=True)
        self.style_rows[key][0].value = True
        return key

    def _on_upload(self, value, add):
        for name, data in uploaded_files(value):
            try:
                add(name, data)
                self._clear_error()
            except Exception as e:  # show it in the widget, never as a traceback
                self._show_error(f"could not use the upload: {e}")

    def _content_key(self, c):
        if isinstance(c, str) and c in samples.names():
            if c not in self.content.options:      # a painting used as the photo
                self.content.options = list(self.content.options) + [c]
            return c
        return self.add_content(Path(c).name if isinstance(c, (str, Path)) else "content", c)

    def _style_key(self, s):
        if isinstance(s, str) and (s in self.style_rows or s in samples.names()):
            if s not in self.style_rows:
                self._add_style_row(s, samples.load(s, 96), tick=False)
            return s
        return self.add_style(Path(s).name if isinstance(s, (str, Path)) else "style", s)

    def _source(self, key):
        return self._uploads.get(key, key)

    # --------------------------------------------------------------------------------------- settings
    def settings(self) -> dict:
        """The :class:`~nstedu.config.TransferConfig` fields the controls set now."""
        ticked = [layer for layer, (cb, _) in self.layer_rows.items() if cb.value]
        if not ticked:
            raise ValueError("tick at least one style layer (Layers tab)")
        lw = [self.layer_rows[layer][1].value for layer in ticked]
        if sum(lw) <= 0:
            raise ValueError("the ticked style layers all have weight 0: raise at least one (Layers tab)")
        styles = [key for key, (cb, _) in self.style_rows.items() if cb.value]
        if not styles:
            raise ValueError("tick at least one style image (Images tab)")
        return dict(size=self.size.value, steps=self.steps.value, content_weight=self.content_weight.value,
                    style_weight=self.style_weight.value, tv_weight=self.tv_weight.value if self.tv_on.value else 0.0,
                    style_strength=self.style_strength.value, style_loss=self.style_loss.value,
                    preserve_colors=None if self.preserve_colors.value == "off" else self.preserve_colors.value,
                    content_layers=(self.content_layer.value,), style_layers=tuple(ticked),
                    style_layer_weights=tuple(w / sum(lw) for w in lw),
                    style_blend=[self.style_rows[k][1].value for k in styles] if len(styles) > 1 else None,
                    optimizer=self.optimizer.value, lr=self.lr.value, init=self.init.value,
                    pooling=self.pooling.value, seed=self.seed.value)

    def inputs(self):
        """``(content, style)`` as passed to the engine: sample names, or PIL images for uploads; ``style`` is a
        list when several are ticked."""
        styles = [self._source(k) for k, (cb, _) in self.style_rows.items() if cb.value]
        return self._source(self.content.value), (styles if len(styles) > 1 else styles[0] if styles else None)

    def set(self, **values):
        """Set controls by config name, e.g. ``set(style_weight=2e3, style_layers=("relu1_1", "relu2_1"))``;
        also ``content=`` (a name) and ``style=`` (a name or list of names, ticked; others unticked)."""
        simple = dict(content_weight=self.content_weight, style_weight=self.style_weight, style_strength=self.style_strength,
                      size=self.size, steps=self.steps, optimizer=self.optimizer, lr=self.lr, init=self.init,
                      pooling=self.pooling, seed=self.seed, content=self.content, style_loss=self.style_loss)
        order = ["content", "style", "style_blend", "optimizer", "style_layers", "style_layer_weights"]
        for key in sorted(values, key=lambda k: order.index(k) if k in order else len(order)):
            v = values[key]
            if key in simple:
                simple[key].value = v
            elif key == "tv_weight":
                self.tv_on.value = v > 0
                if v > 0:
                    self.tv_weight.value = v
            elif key == "preserve_colors":
                self.preserve_colors.value = v or "off"
            elif key == "content_layers":
                self.content_layer.value = v if isinstance(v, str) else v[0]
            elif key == "style_layers":
                for layer, (cb, _) in self.layer_rows.items():
                    cb.value = layer in v
            elif key == "style_layer_weights":
                for layer, w in zip([n for n, (cb, _) in self.layer_rows.items() if cb.value], v):
                    self.layer_rows[layer][1].value = w
            elif key == "style":
                chosen = [v] if isinstance(v, str) else list(v)
                for k, (cb, _) in self.style_rows.items():
                    cb.value = k in chosen
            elif key == "style_blend":
                for k, w in zip([k for k, (cb, _) in self.style_rows.items() if cb.value], v or []):
                    self.style_rows[k][1].value = w
            else:
                raise TypeError(f"unknown setting {key!r}; settable: {', '.join(list(simple) + order[1:] + ['tv_weight', 'preserve_colors', 'content_layers'])}")

    def apply_preset(self, name: str):
        """``"subtle"``, ``"balanced"`` or ``"bold"`` (see :data:`PRESETS`)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        self.set(**PRESETS[name])

    def _snapshot(self) -> dict:
        return {name: w.value for name, w in self._controls.items()}

    def _restore(self, snap: dict):
        for name, value in snap.items():
            if name in self._controls:
                self._controls[name].value = value

    def reset(self):
        """All controls back to the values they had when the playground was built."""
        self._restore(self._defaults)
        self._clear_error()

    def _show_content(self):
        if self.running:
            return
        try:
            src = self._source(self.content.value)
            img = load_image(samples.path(src) if isinstance(src, str) else src, self.size.value, name=str(src))
            self.preview.value = png_bytes(img)
        except Exception as e:
            self._show_error(str(e))

    def _show_ratio(self):
        r = self.content_weight.value / self.style_weight.value
        self.ratio.value = (f"<div style='line-height:1.4'>α/β = <b>{r:.1e}</b> &nbsp;<small>(5e-3 keeps more photo"
                            f" · 1e-3 balanced · 5e-4 more painting)</small></div>")

    def _show_error(self, message: str):
        self.error.value = f"<div style='color:#b00020'>⚠ {html.escape(message)}</div>"
        self.error.layout.display = None

    def _clear_error(self):
        self.error.value = ""
        self.error.layout.display = "none"
