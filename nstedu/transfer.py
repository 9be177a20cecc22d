"""The optimization: make an image whose VGG-19 features match the content photo and whose Gram matrices
match the painting (Gatys, Ecker & Bethge, 2015). We optimize the *pixels*; the network stays frozen.

    result = run_style_transfer("photo.jpg", "starry_night", steps=300)   # -> StyleTransferResult
    image = stylize("photo.jpg", "starry_night")                           # -> PIL.Image

Every evaluation: clamp the pixels into [0, 1], one VGG-19 forward to the deepest layer needed, the loss
``α·content + β·style + γ·tv`` (see :mod:`nstedu.losses`), one backward to the pixels. L-BFGS (strong-Wolfe line
search; default) or Adam (learning rate ×0.96 every 100 steps) takes the step. The lowest-loss image seen so
far is kept, so a stop, an interrupt or a numerical blow-up still returns the best result.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from typing import Callable, Optional, Sequence, Union

import torch
from PIL import Image

from . import losses as L
from .images import ImageLike, load_image, pil_to_tensor, tensor_to_pil
from .vgg import VGG19Features, check_layers, get_vgg

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style")
TERMS = ("total", "content", "style", "tv")


@dataclass
class TransferConfig:
    """All settings of one style transfer. α/β = ``content_weight / style_weight`` (default 1e-3)."""

    size: Optional[int] = None             # longest side of the result in pixels; None: 512 on CUDA, 256 otherwise
    steps: int = 300                       # loss evaluations (one VGG forward + backward each)
    content_weight: float = 1.0            # α: weight of the content loss
    style_weight: float = 1e3              # β: weight of the style loss (α/β = 1e-3 balanced; 5e-3 content … 5e-4 style)
    tv_weight: float = 1e2                 # γ: total-variation smoothing weight (0 disables)
    content_layers: Sequence[str] = L.DEFAULT_CONTENT_LAYERS  # layers whose activations must match the photo
    style_layers: Sequence[str] = L.DEFAULT_STYLE_LAYERS      # layers whose Gram matrices must match the painting
    style_layer_weights: Optional[Sequence[float]] = None     # w_l per style layer; None: 1/L each
    optimizer: str = "lbfgs"               # "lbfgs" (strong-Wolfe line search) or "adam"
    lr: Optional[float] = None             # step size; None: 1.0 for L-BFGS, 0.02 for Adam (pixels are in [0, 1])
    lr_decay: float = 0.96                 # Adam: multiply the learning rate by this …
    lr_decay_every: int = 100              # … every this many steps
    lbfgs_history: int = 100               # L-BFGS memory (2 image-sized vectors each; lower it for huge images)
    init: str = "content"                  # start image: "content", "noise" or "style"
    seed: int = 0                          # seeds the noise init; same seed + config → identical image on CPU
    device: str = "auto"                   # "auto" (cuda > mps > cpu), "cpu", "cuda", "cuda:1", "mps"
    weights: str = "caffe"                 # VGG-19 weights: "caffe" (offline), "torchvision" or a .pth path
    pooling: str = "max"                   # "max" or "avg" (Gatys et al. prefer avg for smoother results)
    size_invariant: bool = True            # relative terms that do not grow with the pixel count; False: content and TV grow like plain sums
    style_scale: float = 1.0               # style image's longest side relative to the result's: >1 = smaller strokes
    style_blend: Optional[Sequence[float]] = None  # weights of several style images (e.g. 0.6, 0.4); None: equal
    style_strength: float = 1.0            # 0 … 1: how much of the style to apply (see nstedu.control)
    preserve_colors: Optional[str] = None  # None, "luminance" (transfer luminance only) or "histogram" (match the style's colours to the content first)
    contrast: float = 0.0                  # boost the photo's contrast first: 0.25 = +25 % (PIL ImageEnhance); 0 = off
    sharpness: float = 0.0                 # sharpen the photo first: 0.1 = +10 % (PIL ImageEnhance); 0 = off
    progress: bool = True                  # show a tqdm progress bar

    def validate(self) -> "TransferConfig":
        """Raise ``ValueError`` naming the field for any out-of-range setting; return self."""
        def positive(name, allow_zero=False, integer=False):
            v = getattr(self, name)
            if v is None:
                return
            bad = isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and int(v) != v)
            if bad or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
                need = "a non-negative" if allow_zero else "a positive"
                raise ValueError(f"{name} must be {need} {'integer' if integer else 'number'}, got {v!r}")

        positive("size", integer=True)
        positive("steps", integer=True)
        for name in ("content_weight", "style_weight", "tv_weight"):
            positive(name, allow_zero=True)
        positive("lr")
        positive("lr_decay")
        positive("lr_decay_every", integer=True)
        positive("lbfgs_history", integer=True)
        positive("style_scale")
        if not (isinstance(self.style_strength, (int, float)) and 0.0 <= self.style_strength <= 1.0):
            raise ValueError(f"style_strength must be between 0 and 1 (0–100 %), got {self.style_strength!r}")
        from .control import check_enhancement

        check_enhancement("contrast", self.contrast)
        check_enhancement("sharpness", self.sharpness)
        if self.preserve_colors not in (None, "luminance", "histogram"):
            raise ValueError(f"preserve_colors must be None, 'luminance' or 'histogram', got {self.preserve_colors!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', got {self.pooling!r}")
        check_layers(self.content_layers, "content layer")
        check_layers(self.style_layers, "style layer")
        if not self.style_layers and self.style_weight > 0:
            raise ValueError("style_layers is empty: give at least one layer or set style_weight=0")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(f"style_layer_weights has {len(self.style_layer_weights)} values for {len(self.style_layers)} style layers")
            if any(w < 0 or not math.isfinite(w) for w in self.style_layer_weights):
                raise ValueError(f"style_layer_weights must be non-negative, got {list(self.style_layer_weights)}")
        if self.style_blend is not None and any(w < 0 or not math.isfinite(w) for w in self.style_blend):
            raise ValueError(f"style_blend weights must be non-negative, got {list(self.style_blend)}")
        return self

    @property
    def ratio(self) -> float:
        """α/β: content weight over style weight."""
        return self.content_weight / self.style_weight if self.style_weight else math.inf

    def layer_weights(self) -> dict[str, float]:
        ws = self.style_layer_weights or [1.0 / len(self.style_layers)] * len(self.style_layers)
        return dict(zip(self.style_layers, map(float, ws)))

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def default_device() -> torch.device:
    """cuda > mps > cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    if device is None or str(device) == "auto":
        return default_device()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available (use device='cpu' or 'auto')")
    return dev


def default_size(device: torch.device) -> int:
    return 512 if device.type == "cuda" else 256


# ---------------------------------------------------------------------------------------------- targets
@dataclass
class StyleTarget:
    """Gram matrices to match: ``grams[layer]`` is ``(1, C, C)``. ``mask`` ``(1, 1, H, W)`` in [0, 1] at the
    result's resolution restricts this style to a region (``None``: everywhere); ``weight`` scales its loss."""

    grams: dict
    weight: float = 1.0
    mask: Optional[torch.Tensor] = None


@torch.no_grad()
def grams_of(feats: dict, mask: Optional[torch.Tensor] = None) -> dict:
    """``{layer: normalized Gram}`` of ``{layer: features}``; with ``mask`` ``(1, 1, H, W)``, of that region only."""
    return {k: L.gram_matrix(v, None if mask is None else L.resize_mask(mask, v.shape[-2:])) for k, v in feats.items()}


def style_grams(vgg: VGG19Features, style: torch.Tensor, layers: Sequence[str], mask: Optional[torch.Tensor] = None) -> dict:
    """Normalized Gram matrices of ``style`` ``(1, 3, H, W)`` in [0, 1] at ``layers`` (optionally of a masked region)."""
    return grams_of(vgg(style, layers), mask)


def blend_targets(targets: Sequence[dict], weights: Optional[Sequence[float]] = None) -> dict:
    r"""Weighted average of several styles' Grams: :math:`\bar A = \sum_k w_k A_k / \sum_k w_k`.

    Matching :math:`\bar A` has the same gradient as minimizing :math:`\sum_k w_k \|G - A_k\|^2` (they differ by
    a constant), so this *is* multi-style blending (e.g. 60/40)."""
    if weights is None:
        weights = [1.0] * len(targets)
    if len(weights) != len(targets):
        raise ValueError(f"style_blend has {len(weights)} weights for {len(targets)} style images")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"style_blend weights must not all be zero, got {list(weights)}")
    return {k: sum(w * t[k] for w, t in zip(weights, targets)) / total for k in targets[0]}


def prepare_style_targets(style: Union[ImageLike, Sequence[ImageLike]], vgg: VGG19Features, config: TransferConfig,
                          size: int, device: torch.device) -> list[StyleTarget]:
    """Load one or several style images (each resized to ``size × style_scale``) into blended Gram targets."""
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise ValueError("no style image given")
    style_size = max(16, round(size * config.style_scale))
    grams = [style_grams(vgg, pil_to_tensor(load_style(s, style_size), device), config.style_layers) for s in styles]
    return [StyleTarget(blend_targets(grams, config.style_blend))]


def _load_as(src, size, role: str):
    from . import samples

    if isinstance(src, str) and src in samples.names():
        src = samples.path(src)
    return load_image(src, size, name=f"{role} '{src}'" if isinstance(src, str) else role)


def load_style(src, size: Optional[int] = None) -> Image.Image:
    """A style image: a bundled sample name or anything :func:`load_image` takes; errors say "style image '…'"."""
    return _load_as(src, size, "style image")


def load_content(src, size: Optional[int] = None) -> Image.Image:
    """A content photo: a bundled sample name or anything :func:`load_image` takes; errors say "content image '…'"."""
    return _load_as(src, size, "content image")


# -------------------------------------------------------------------------------------------- objective
class Objective:
    """``objective(x) -> (total, {"content", "style", "tv", "total"})`` for ``x`` ``(1, 3, H, W)`` in [0, 1]."""

    def __init__(self, vgg: VGG19Features, content: torch.Tensor, style_targets: Sequence[StyleTarget],
                 config: TransferConfig):
        self.vgg, self.config = vgg, config
        self.content_layers = list(config.content_layers) if config.content_weight > 0 else []
        self.style_layers = list(config.style_layers) if config.style_weight > 0 else []
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        self.layer_weights = config.layer_weights()
        self.style_targets = list(style_targets)
        h, w = content.shape[-2:]
        with torch.no_grad():
            self.content_targets = vgg(content, self.content_layers) if self.content_layers else {}
        # each term relative to its target's energy (nstedu.losses): every style layer counts, and the balance does
        # not depend on the image, the painting or (size_invariant) the pixel count
        size = 1.0 if config.size_invariant else h * w / L.REFERENCE_PIXELS
        self.content_scales = {k: L.relative_content_scale(v, size) for k, v in self.content_targets.items()}
        self.style_weights = [L.relative_style_weights({k: t.grams[k] for k in self.style_layers}, self.layer_weights)
                              for t in self.style_targets]
        self.tv_scale = L.tv_scale(h, w, config.size_invariant)
        self._masks: dict = {}

    def _mask_for(self, target_index: int, target: StyleTarget, layer: str, shape) -> Optional[torch.Tensor]:
        if target.mask is None:
            return None
        key = (target_index, layer)
        if key not in self._masks:
            self._masks[key] = L.resize_mask(target.mask, shape[-2:])
        return self._masks[key]

    def __call__(self, x: torch.Tensor):
        cfg = self.config
        feats = self.vgg(x, self.layers) if self.layers else {}
        zero = x.new_zeros(())
        c = sum((L.content_loss(feats[k], self.content_targets[k], self.content_scales[k]) for k in self.content_layers), zero)
        s = zero
        for i, t in enumerate(self.style_targets if self.style_layers else []):
            masks = None if t.mask is None else {k: self._mask_for(i, t, k, feats[k].shape) for k in self.style_layers}
            s = s + t.weight * L.style_loss({k: feats[k] for k in self.style_layers},
                                            {k: t.grams[k] for k in self.style_layers}, self.style_weights[i], masks)
        tv = L.tv_loss(x, self.tv_scale) if cfg.tv_weight > 0 else zero
        total = cfg.content_weight * c + cfg.style_weight * s + cfg.tv_weight * tv
        return total, {"total": total, "content": c, "style": s, "tv": tv}


# ----------------------------------------------------------------------------------------------- result
@dataclass
class StepInfo:
    """What a callback receives: ``step`` (evaluations so far), ``losses`` (floats), the current ``image``
    tensor ``(1, 3, H, W)`` in [0, 1] (detached), the best total loss so far and seconds since the start."""

    step: int
    losses: dict
    image: torch.Tensor
    best_loss: float
    elapsed: float


@dataclass
class StyleTransferResult:
    """The outcome: the best ``image`` (PIL), its ``tensor`` on the CPU, the loss ``history`` (lists per term,
    one entry per evaluation), why it stopped, and the settings used."""

    image: Image.Image
    tensor: torch.Tensor
    history: dict
    stop_reason: str              # "finished", "converged", "stopped", "interrupted", "non-finite"
    best_step: int
    best_loss: float
    seconds: float
    config: TransferConfig
    device: str
    message: str = ""

    def save(self, path) -> None:
        from .images import save_image
        save_image(self.image, path)

    def final_losses(self) -> dict:
        """The loss terms of the returned (best) image."""
        i = self.history["step"].index(self.best_step) if self.best_step in self.history["step"] else -1
        return {k: self.history[k][i] for k in TERMS}


class _Stop(Exception):
    pass


class _NonFinite(Exception):
    pass


def initial_image(init: str, content: torch.Tensor, style_image=None, seed: int = 0) -> torch.Tensor:
    """The start image ``(1, 3, H, W)`` in [0, 1]: a copy of the content, uniform noise (seeded) or the
    (first) style image resized to the content's size."""
    if init == "content":
        return content.clone()
    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=g).to(content.device)
    if init == "style":
        if style_image is None:
            raise ValueError("init='style' needs a style image")
        img = style_image.resize((content.shape[-1], content.shape[-2]), Image.LANCZOS)
        return pil_to_tensor(img, content.device)
    raise ValueError(f"init must be one of {INITS}, got {init!r}")


def run_style_transfer(content: ImageLike, style: Union[ImageLike, Sequence[ImageLike], None] = None,
                       config: Optional[TransferConfig] = None, *, style_targets: Optional[Sequence[StyleTarget]] = None,
                       init_image: Optional[ImageLike] = None, callback: Optional[Callable[[StepInfo], None]] = None,
                       callback_every: int = 10, should_stop: Optional[Callable[[], bool]] = None,
                       mask=None, **overrides) -> StyleTransferResult:
    """Stylize ``content`` with ``style`` and return a :class:`StyleTransferResult`.

    ``content``/``style``: a path, a bundled sample name (``"starry_night"``), a ``PIL.Image``, numpy array or
    tensor in [0, 1]; ``style`` may be a list (blended, see ``style_blend``). ``config`` and/or keyword
    ``overrides`` set any :class:`TransferConfig` field. ``style_targets`` replaces ``style`` with precomputed
    Gram targets (batch processing, masks). ``init_image`` overrides ``init`` (multi-scale continues from it).
    ``callback(StepInfo)`` runs every ``callback_every`` evaluations; ``should_stop()`` returning True ends the
    run early. Ctrl-C (KeyboardInterrupt) also ends it; the best image so far is returned in every case.
    ``mask`` (path, image, array or :class:`nstedu.control.Mask`; white = style) restricts the style to a region
    (and, by default, pastes the photo back where the mask is black).
    ``style_strength``, ``preserve_colors``, ``contrast`` and ``sharpness`` are applied by :mod:`nstedu.control`;
    with ``preserve_colors="luminance"`` the losses are those of the luminance image that was optimized.
    """
    from . import control

    unknown = set(overrides) - {f.name for f in fields(TransferConfig)}
    if unknown:
        raise TypeError(f"unknown setting(s) {sorted(unknown)}; see nstedu.TransferConfig")
    cfg = replace(config or TransferConfig(), **overrides).validate()
    if callback_every <= 0:
        raise ValueError(f"callback_every must be positive, got {callback_every}")
    device = resolve_device(cfg.device)
    size = cfg.size or default_size(device)
    content_img = control.enhance(load_content(content, size), cfg.contrast, cfg.sharpness)
    content_t = colour_t = pil_to_tensor(content_img, device)
    luminance_only = cfg.preserve_colors == "luminance"
    if luminance_only:
        content_t = control.luminance_rgb(colour_t)
    vgg = get_vgg(cfg.weights, device, cfg.pooling)

    first_style = None
    if style_targets is None:
        if style is None:
            if cfg.style_weight > 0:
                raise ValueError("no style image given (or set style_weight=0)")
            style_targets = []
        else:
            styles = list(style) if isinstance(style, (list, tuple)) else [style]
            styles = control.prepare_styles(styles, colour_t, cfg.preserve_colors, max(16, round(size * cfg.style_scale)))
            style_targets = prepare_style_targets(styles, vgg, cfg, size, device)
    elif cfg.preserve_colors == "histogram":
        raise ValueError("preserve_colors='histogram' recolours the style images for each photo: pass style images, not style_targets")
    mask_t = None if mask is None else control.as_mask(mask).tensor(content_t.shape[-1], content_t.shape[-2], device)
    if mask_t is not None:
        style_targets = control.apply_mask(style_targets, mask_t, content_t.shape[-1], content_t.shape[-2], device)
    if cfg.style_strength < 1 and cfg.style_weight > 0:
        style_targets = control.apply_strength(style_targets, vgg, content_t, cfg.style_strength, cfg.style_layers)
    if cfg.init == "style" and init_image is None:
        s0 = style[0] if isinstance(style, (list, tuple)) else style
        if s0 is None:
            raise ValueError("init='style' needs a style image")
        first_style = load_style(s0, size)

    objective = Objective(vgg, content_t, style_targets, cfg)
    if init_image is not None:
        init = load_image(init_image, name="init image").resize((content_t.shape[-1], content_t.shape[-2]), Image.BICUBIC)
        x0 = pil_to_tensor(init, device)
    else:
        x0 = initial_image(cfg.init, content_t, first_style, cfg.seed)
    if luminance_only:
        x0 = control.luminance_rgb(x0)
    result = optimize(objective, x0, cfg, callback=callback, callback_every=callback_every, should_stop=should_stop,
                      device=device)
    composite = mask_t is not None and control.as_mask(mask).composite
    if luminance_only or composite:  # the photo's chroma and/or the photo itself outside the mask
        result = control.finish(result, colour_t, luminance_only, mask_t if composite else None)
    return result


def optimize(objective: Callable, x0: torch.Tensor, cfg: TransferConfig, *, callback=None, callback_every: int = 10,
             should_stop=None, device=None) -> StyleTransferResult:
    """Minimize ``objective`` over the pixels of ``x0`` with ``cfg``'s optimizer, keeping pixels in [0, 1]."""
    x = x0.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
    lr = cfg.lr if cfg.lr is not None else (1.0 if cfg.optimizer == "lbfgs" else 0.02)
    history = {k: [] for k in ("step", "total", "content", "style", "tv", "time")}
    state = {"evals": 0, "best": math.inf, "best_x": x0.detach().clone().clamp_(0, 1), "best_step": 0,
             "good_x": x0.detach().clone().clamp_(0, 1)}
    t0 = time.perf_counter()
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, desc="stylize", leave=False)

    def closure():
        if state["evals"] >= cfg.steps:
            raise _Stop("finished")
        if should_stop is not None and should_stop():
            raise _Stop("stopped")
        with torch.no_grad():
            x.clamp_(0, 1)
        opt.zero_grad(set_to_none=True)
        total, parts = objective(x)
        total.backward()
        if x.grad is not None:  # projected gradient: a pixel at 0 or 1 is not pushed further out, where the clamp
            with torch.no_grad():  # above would undo the move (without this, L-BFGS's curvature pairs see steps that
                g = x.grad         # change nothing and its directions blow up: issue 12)
                g.masked_fill_(((x <= 0) & (g > 0)) | ((x >= 1) & (g < 0)), 0.0)
        # one device->host transfer per evaluation: the four loss terms and a finiteness probe of the gradient
        probe = x.grad.sum() if x.grad is not None else total.new_zeros(())
        terms = torch.stack([parts[k].detach().reshape(()).to(total.dtype) for k in TERMS] + [probe.detach()]).tolist()
        value = terms[0]
        if not math.isfinite(value):
            raise _NonFinite(f"loss became {value} at step {state['evals'] + 1}")
        if not math.isfinite(terms[-1]):
            raise _NonFinite(f"gradient became non-finite at step {state['evals'] + 1}")
        state["evals"] += 1
        n = state["evals"]
        history["step"].append(n)
        history["time"].append(time.perf_counter() - t0)
        for k, v in zip(TERMS, terms):
            history[k].append(v)
        state["good_x"] = x.detach().clone()
        if value < state["best"]:
            state["best"], state["best_x"], state["best_step"] = value, state["good_x"], n
        if bar is not None:
            bar.update(1)
            if n % 10 == 0 or n == 1:
                bar.set_postfix(loss=f"{value:.3g}")
        if callback is not None and (n % callback_every == 0 or n == cfg.steps):
            callback(StepInfo(n, {k: history[k][-1] for k in TERMS}, state["good_x"],
                              state["best"], history["time"][-1]))
        return total

    def make_optimizer(lr):
        if cfg.optimizer == "lbfgs":
            return torch.optim.LBFGS([x], lr=lr, max_iter=cfg.steps, max_eval=cfg.steps * 2, history_size=cfg.lbfgs_history,
                                     tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
        return torch.optim.Adam([x], lr=lr)

    opt = make_optimizer(lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_decay_every, cfg.lr_decay) if cfg.optimizer == "adam" else None
    stop_reason, message, retries = "finished", "", 0
    try:
        while state["evals"] < cfg.steps:
            try:
                if cfg.optimizer == "lbfgs":
                    before = state["evals"]
                    opt.step(closure)
                    if state["evals"] - before <= 1:  # no progress even from a fresh history: converged
                        stop_reason = "converged"
                        break
                    # L-BFGS ended early (clamping to [0, 1] can turn its direction uphill): restart its history
                    # from the current image and spend the rest of the budget
                    opt = make_optimizer(lr)
                else:
                    opt.step(closure)
                    sched.step()
            except _NonFinite as e:
                retries += 1
                with torch.no_grad():
                    x.copy_(state["good_x"])
                if retries > 3:
                    stop_reason, message = "non-finite", f"{e}; stopped after 3 retries with a lower step size, keeping the best image"
                    warnings.warn(message, RuntimeWarning, stacklevel=2)
                    break
                lr *= 0.5
                warnings.warn(f"{e}; restored the last good image and halved the step size to {lr:g}", RuntimeWarning, stacklevel=2)
                opt = make_optimizer(lr)
                sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_decay_every, cfg.lr_decay) if cfg.optimizer == "adam" else None
    except _Stop as e:
        stop_reason = str(e)
    except KeyboardInterrupt:
        stop_reason, message = "interrupted", "interrupted: returning the best image so far"
    finally:
        if bar is not None:
            bar.close()
    best = state["best_x"].detach().clamp(0, 1).cpu()
    return StyleTransferResult(image=tensor_to_pil(best), tensor=best, history=history, stop_reason=stop_reason,
                               best_step=state["best_step"], best_loss=state["best"], seconds=time.perf_counter() - t0,
                               config=cfg, device=str(device or x.device), message=message)


def stylize(content: ImageLike, style: Union[ImageLike, Sequence[ImageLike], None] = None, **config) -> Image.Image:
    """Stylize ``content`` with ``style`` and return the result as a ``PIL.Image`` (RGB).

    Any :class:`TransferConfig` field is a keyword (``size=256, steps=300, style_weight=1e3, init="noise"``), as
    are ``callback``, ``callback_every`` and ``should_stop``. For the loss history use :func:`run_style_transfer`.
    """
    return run_style_transfer(content, style, **config).image
