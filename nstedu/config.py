"""Every setting of one style transfer in one place: :class:`TransferConfig`, its validation and the choices.

Each field carries its help text (``field(metadata={"help": ...})``): the command line's options of
``nstedu stylize``/``nstedu batch`` (:mod:`nstedu.cli`), the playground's starting values (:mod:`nstedu.widgets`)
and the options table in README.md are all generated from these fields, so they cannot drift apart.

    cfg = TransferConfig(size=384, style_weight=2e3).validate()
    cfg.ratio                                   # α/β = content_weight / style_weight
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

from . import losses as L
from .style_stats import STYLE_LOSSES
from .env import PRECISIONS
from .images import MIN_SIDE
from .vgg import POOLINGS, check_layers, check_pooling

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style")
COLOR_MODES = ("luminance", "histogram")  # preserve_colors (None: off)
#: The style image is never resized below this many pixels on its longest side.
MIN_STYLE_SIZE = 16
#: Loss weights above this overflow float32 arithmetic (a term of ~1e8 times the weight passes 3.4e38).
MAX_WEIGHT = 1e30

OUTPUT, WEIGHTS, NETWORK, OPTIMIZATION, CONTROL = (
    "output and size", "loss weights (α/β = content/style; 1e-3 balanced, 5e-3 more content, 5e-4 more style)",
    "network", "optimization", "artistic control")


def setting(default, help: str, group: str, *, flags: Sequence[str] = (), metavar: Optional[str] = None,
            choices: Optional[Sequence] = None, kind: Optional[str] = None, default_text: Optional[str] = None,
            cli_help: Optional[str] = None, cli: bool = True):
    """A dataclass field with what the command line and the docs need to know about it.

    ``help``: one line, what the setting means; ``group``: the ``--help`` section; ``flags``: option names (default
    ``--field-name``); ``kind``: ``"fraction"`` (accepts 60%) or ``"negate"`` (a flag that stores False, with its
    own ``cli_help``); ``default_text``: how to describe a ``None`` default; ``cli=False``: Python API only."""
    return field(default=default, metadata=dict(help=help, group=group, flags=tuple(flags), metavar=metavar,
                                                choices=choices, kind=kind, default_text=default_text,
                                                cli_help=cli_help, cli=cli))


def style_size(size: int, style_scale: float = 1.0) -> int:
    """Longest side of the style image for a result of longest side ``size``: ``size × style_scale`` (≥ 16 px)."""
    return max(MIN_STYLE_SIZE, round(size * style_scale))


def default_lr(optimizer: str) -> float:
    """The step size when none is given: 1.0 for L-BFGS (its line search scales it), 0.02 for Adam on [0, 1] pixels."""
    return 1.0 if optimizer == "lbfgs" else 0.02


def check_enhancement(name: str, v) -> None:
    """``ValueError`` unless ``v`` is a valid ``contrast``/``sharpness`` amount: a number ≥ -1 (0 = unchanged)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < -1:
        raise ValueError(f"{name} must be a number ≥ -1 (0 = unchanged, 0.2 = +20 %), got {v!r}")


@dataclass
class TransferConfig:
    """All settings of one style transfer. α/β = ``content_weight / style_weight`` (default 1e-3)."""

    size: Optional[int] = setting(None, "longest side of the result in pixels", OUTPUT, flags=("--size", "-s"),
                                  metavar="PX", default_text="512 on CUDA, 256 otherwise")
    steps: int = setting(300, "loss evaluations (one VGG-19 forward + backward each)", OPTIMIZATION,
                         flags=("--steps", "-n"), metavar="N")
    content_weight: float = setting(1.0, "α: weight of the content loss", WEIGHTS, metavar="α")
    style_weight: float = setting(1e3, "β: weight of the style loss (α/β = 1e-3 balanced; 5e-3 content … 5e-4 style)",
                                  WEIGHTS, metavar="β")
    tv_weight: float = setting(1e2, "γ: total-variation smoothing weight (0 disables)", WEIGHTS, metavar="γ")
    content_layers: Sequence[str] = setting(L.DEFAULT_CONTENT_LAYERS, "VGG-19 layers whose activations must match the "
                                            "photo", NETWORK, metavar="L1,L2")
    style_layers: Sequence[str] = setting(L.DEFAULT_STYLE_LAYERS, "VGG-19 layers whose Gram matrices must match the "
                                          "painting", NETWORK, metavar="L1,L2")
    style_layer_weights: Optional[Sequence[float]] = setting(None, "w_l, one per style layer", NETWORK,
                                                             metavar="W1,W2", default_text="0.2,0.2,0.2,0.3,0.1 (other layers: 1/L each)")
    style_loss: str = setting("gram", "what style is: gram (Gatys), meanstd (per-channel mean and std, AdaIN), swd (sliced "
                              "Wasserstein: the whole distribution), mrf (3×3 patches, Li & Wand)", WEIGHTS,
                              choices=STYLE_LOSSES)
    optimizer: str = setting("lbfgs", "lbfgs (strong-Wolfe line search) or adam", OPTIMIZATION, choices=OPTIMIZERS)
    lr: Optional[float] = setting(None, "step size (pixels are in [0, 1])", OPTIMIZATION, metavar="X",
                                  default_text="1.0 for lbfgs, 0.02 for adam")
    lr_decay: float = setting(0.96, "adam: multiply the step size by this …", OPTIMIZATION, metavar="F")
    lr_decay_every: int = setting(100, "… every this many steps", OPTIMIZATION, metavar="N")
    lbfgs_history: int = setting(100, "L-BFGS memory (2 image-sized vectors each; lower it for huge images)",
                                 OPTIMIZATION, metavar="N")
    init: str = setting("content", "start image", OPTIMIZATION, choices=INITS)
    seed: int = setting(0, "seeds the noise init; same seed + settings → identical image on CPU", OPTIMIZATION,
                        metavar="N")
    device: str = setting("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps", OPTIMIZATION)
    precision: str = setting("auto", "arithmetic of the network: auto = fp32 (channels_last) on the CPU, TF32 + bf16 autocast "
                             "(fp16 without bf16) on CUDA; fp32 exact", OPTIMIZATION, choices=PRECISIONS)
    weights: str = setting("caffe", "VGG-19 weights: caffe (offline), torchvision (downloads once) or a .pth file",
                           NETWORK, metavar="SRC")
    pooling: str = setting("max", "VGG-19's pooling layers (Gatys et al. prefer avg for smoother results)", NETWORK,
                           choices=POOLINGS)
    size_invariant: bool = setting(True, "relative terms that do not grow with the pixel count: the same balance at any size",
                                   WEIGHTS, flags=("--no-size-invariant",), kind="negate",
                                   cli_help="plain sums: the content and TV terms grow with the pixel count")
    style_scale: float = setting(1.0, "style image's size relative to the result: <1 bigger strokes, >1 smaller",
                                 OUTPUT, metavar="F")
    style_blend: Optional[Sequence[float]] = setting(None, "weights of several style images, e.g. 0.6,0.4", WEIGHTS,
                                                     metavar="W1,W2", default_text="equal")
    style_strength: float = setting(1.0, "how much style, 0–1 or 0%–100% (Gram targets blended with the photo's; "
                                    "try 0.5–0.6)", CONTROL, metavar="S", kind="fraction")
    preserve_colors: Optional[str] = setting(None, "keep the photo's colours: luminance-only transfer, or recolour the "
                                             "style to the photo's colour histogram", CONTROL, choices=COLOR_MODES,
                                             default_text="off")
    contrast: float = setting(0.0, "boost the photo's contrast first: 0.25 = +25% (PIL ImageEnhance; 0 = off)", CONTROL,
                              metavar="F")
    sharpness: float = setting(0.0, "sharpen the photo first: 0.1 = +10% (PIL ImageEnhance; 0 = off)", CONTROL,
                               metavar="F")
    progress: bool = setting(True, "show a progress bar", OUTPUT, flags=("--quiet", "-q"), kind="negate",
                             cli_help="no progress bar")

    def __post_init__(self):
        for name in ("content_layers", "style_layers", "style_layer_weights", "style_blend"):
            v = getattr(self, name)  # "conv1_1,conv2_1" or "0.6,0.4": comma-separated items, never letters
            if isinstance(v, str):
                items = tuple(x.strip() for x in v.split(",") if x.strip())
                if name in ("style_layer_weights", "style_blend"):
                    try:
                        items = tuple(float(x) for x in items)
                    except ValueError:
                        raise ValueError(f"{name} must be numbers (e.g. '0.6,0.4' or [0.6, 0.4]), got {v!r}") from None
                setattr(self, name, items)

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

        for name in ("steps", "content_weight", "style_weight", "tv_weight", "lr_decay", "lr_decay_every",
                     "lbfgs_history", "style_scale", "style_strength", "seed"):
            if getattr(self, name) is None:
                raise ValueError(f"{name} must be set (got None)")
        positive("size", integer=True)
        if self.size is not None and self.size < MIN_SIDE:
            raise ValueError(f"size must be at least {MIN_SIDE} pixels (VGG-19 halves each side four times), got {self.size}")
        positive("steps", integer=True)
        for name in ("content_weight", "style_weight", "tv_weight"):
            positive(name, allow_zero=True)
            if getattr(self, name) > MAX_WEIGHT:
                raise ValueError(f"{name} {getattr(self, name):g} is too large for float32 arithmetic (at most {MAX_WEIGHT:g})")
        if not (self.content_weight or self.style_weight or self.tv_weight):
            raise ValueError("content_weight, style_weight and tv_weight are all 0: there is nothing to optimize")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < 2 ** 63:
            raise ValueError(f"seed must be a whole number from 0 to 2**63 - 1, got {self.seed!r}")
        self.seed = int(self.seed)  # a numpy integer too (it must go into JSON manifests)
        positive("lr")
        positive("lr_decay")
        positive("lr_decay_every", integer=True)
        positive("lbfgs_history", integer=True)
        positive("style_scale")
        if not (isinstance(self.style_strength, (int, float)) and 0.0 <= self.style_strength <= 1.0):
            raise ValueError(f"style_strength must be between 0 and 1 (0–100 %), got {self.style_strength!r}")
        check_enhancement("contrast", self.contrast)
        check_enhancement("sharpness", self.sharpness)
        if self.preserve_colors not in (None, *COLOR_MODES):
            raise ValueError(f"preserve_colors must be None, 'luminance' or 'histogram', got {self.preserve_colors!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        check_pooling(self.pooling)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("content_layers", "style_layers", "style_layer_weights", "style_blend"):
            v = getattr(self, name)
            if not isinstance(v, (list, tuple)) and not (v is None and name in ("style_layer_weights", "style_blend")):
                raise ValueError(f"{name} must be a list (or a comma-separated string), got {type(v).__name__}")
            if name.startswith("style_") and name != "style_layers" and v is not None and any(
                    isinstance(w, bool) or not isinstance(w, (int, float)) for w in v):
                raise ValueError(f"{name} must be numbers, got {list(v)}")
        check_layers(self.content_layers, "content layer")
        check_layers(self.style_layers, "style layer")
        if not self.content_layers and self.content_weight > 0:
            raise ValueError("content_layers is empty: give at least one layer (e.g. conv4_2) or set content_weight=0")
        if not self.style_layers and self.style_weight > 0:
            raise ValueError("style_layers is empty: give at least one layer or set style_weight=0")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(f"style_layer_weights has {len(self.style_layer_weights)} values for {len(self.style_layers)} style layers")
            if any(w < 0 or not math.isfinite(w) for w in self.style_layer_weights):
                raise ValueError(f"style_layer_weights must be non-negative, got {list(self.style_layer_weights)}")
        if self.style_blend is not None and (any(w < 0 or not math.isfinite(w) for w in self.style_blend)
                                             or not 0 < sum(self.style_blend) < math.inf):
            raise ValueError(f"style_blend weights must be non-negative with a finite, positive sum, got {list(self.style_blend)}")
        return self

    @property
    def ratio(self) -> float:
        """α/β: content weight over style weight."""
        return self.content_weight / self.style_weight if self.style_weight else math.inf

    def layer_weights(self) -> dict[str, float]:
        """``{style layer: w_l}``: ``style_layer_weights``; else for the default layers
        :data:`~nstedu.losses.DEFAULT_STYLE_LAYER_WEIGHTS`, for any other choice 1/L each."""
        ws = self.style_layer_weights
        if not ws:
            ws = (L.DEFAULT_STYLE_LAYER_WEIGHTS if tuple(self.style_layers) == L.DEFAULT_STYLE_LAYERS
                  else [1.0 / len(self.style_layers)] * len(self.style_layers))
        return dict(zip(self.style_layers, map(float, ws)))

    def step_size(self) -> float:
        """``lr``, or the optimizer's default (:func:`default_lr`)."""
        return self.lr if self.lr is not None else default_lr(self.optimizer)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d
