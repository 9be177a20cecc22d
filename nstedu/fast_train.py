"""Training a fast style-transfer network (Johnson et al. 2016): photo crops, the perceptual loss (the engine's
objective on a batch), the training loop with resumable checkpoints, and ``nstedu fast-train``. The network and
inference are in :mod:`nstedu.fast`.

    from nstedu.fast_train import train_fast       # also importable from nstedu.fast
    result = train_fast("great_wave", images="photos/", steps=2000, checkpoint="wave.pth")
    image = result.stylizer("photo.jpg")
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from . import losses as L
from .fast import IMAGE_SUFFIXES, FastStylizer, init_net, load_net, save_model
from .images import ImageLike, load_image, pil_to_tensor
from .transfer import TERMS
from .vgg import check_layers, get_vgg


# ----------------------------------------------------------------------------------------- training data
class PhotoCrops:
    """Random square crops of photos, each resized to ``size`` px, randomly flipped: ``crops(batch)`` →
    ``(batch, 3, size, size)`` in [0, 1]. Crop sides are 50–100 % of the photo's short side (random scale).
    Photos are read lazily, capped at 2·size on the long side and kept in memory (up to ``cache`` of them)."""

    def __init__(self, sources: Sequence, size: int, generator: torch.Generator, cache: int = 512):
        if not sources:
            raise ValueError("no training photos given")
        self.sources, self.size, self.gen, self.cache_size = list(sources), size, generator, cache
        self.cache: dict[int, torch.Tensor] = {}
        self.bad: set[int] = set()

    def _photo(self, i: int) -> torch.Tensor:
        """Photo ``i`` as uint8 ``(1, 3, H, W)``; an unreadable file is skipped (with a warning) for the next one."""
        from .images import ImageError

        for j in [(i + k) % len(self.sources) for k in range(len(self.sources))]:
            if j in self.cache:
                return self.cache[j]
            if j in self.bad:
                continue
            try:
                t = (pil_to_tensor(load_image(self.sources[j], 2 * self.size)) * 255).round().to(torch.uint8)
            except ImageError as e:
                warnings.warn(f"skipping training image: {e}", RuntimeWarning, stacklevel=3)
                self.bad.add(j)
                continue
            if len(self.cache) >= self.cache_size:
                self.cache.pop(next(iter(self.cache)))
            self.cache[j] = t
            return t
        raise ValueError(f"none of the {len(self.sources)} training images could be read")

    def __call__(self, batch: int) -> torch.Tensor:
        out = []
        for _ in range(batch):
            r = torch.rand(5, generator=self.gen).tolist()
            photo = self._photo(int(r[0] * len(self.sources)) % len(self.sources))
            h, w = photo.shape[-2:]
            side = max(1, round(min(h, w) * (0.5 + 0.5 * r[1])))
            top, left = int(r[2] * (h - side + 1)), int(r[3] * (w - side + 1))
            crop = photo[..., top:top + side, left:left + side].float() / 255
            crop = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
            out.append(crop.flip(-1) if r[4] < 0.5 else crop)
        return torch.cat(out).clamp_(0, 1)


def training_photos(images=None) -> list:
    """``None`` → the bundled content photos; a folder → every image file in it (recursively); else a list."""
    from . import samples

    if images is None:
        return [samples.path(n) for n in samples.names("content")]
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise ValueError(f"images '{folder}': not a folder (give a folder of photos, a list, or None for the samples)")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise ValueError(f"images '{folder}': no image files found ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return found
    return list(images)


# ------------------------------------------------------------------------------------------------- loss
class PerceptualLoss:
    """``loss(output, content) -> (total, parts)``: the engine's objective, averaged over a batch.

    ``output``: the network's ``(B, 3, H, W)``; ``content``: the input photos ``(B, 3, H, W)`` in [0, 1];
    ``style_grams``: ``{layer: (1, C, C)}`` normalized Grams of the style image. Content and TV sums are
    size-scaled (:func:`nstedu.losses.size_scale`) exactly as in :class:`nstedu.transfer.Objective`.
    """

    def __init__(self, vgg, style_grams: dict, content_layers: Sequence[str], content_weight: float,
                 style_weight: float, tv_weight: float):
        self.vgg, self.style_grams, self.content_layers = vgg, style_grams, list(content_layers)
        self.weights = (content_weight, style_weight, tv_weight)
        self.layers = list(dict.fromkeys(self.content_layers + list(style_grams)))

    def __call__(self, output: torch.Tensor, content: torch.Tensor):
        alpha, beta, gamma = self.weights
        b, _, h, w = output.shape
        scale = L.size_scale(h, w)
        feats = self.vgg(output, self.layers)
        with torch.no_grad():
            targets = self.vgg(content, self.content_layers)
        c = sum(L.content_loss(feats[k], targets[k], scale) for k in self.content_layers) / b
        s = L.style_loss({k: feats[k] for k in self.style_grams}, self.style_grams) / b
        tv = L.tv_loss(output, scale) / b
        total = alpha * c + beta * s + gamma * tv
        return total, {"total": total, "content": c, "style": s, "tv": tv}


# ---------------------------------------------------------------------------------------------- config
@dataclass
class FastConfig:
    """Settings of one training run (α, β, γ mean what they mean in :class:`nstedu.TransferConfig`)."""

    size: int = 256                     # side of the square training crops in pixels
    style_size: Optional[int] = None    # longest side of the style image for its Grams; None: = size
    steps: int = 2000                   # optimizer steps, one batch each (Johnson et al.: 40,000 on COCO)
    batch_size: int = 4                 # crops per step (Johnson et al.: 4)
    content_weight: float = 1.0         # α
    style_weight: float = 1e2           # β; lower than the engine's 1e3, see the note below
    tv_weight: float = 1e2              # γ
    # the pre-ReLU layers and plain Gatys sums its weights were calibrated with (the engine's moved to relu layers
    # and relative terms, issue 12); Johnson et al. use relu2_2 (of VGG-16)
    content_layers: Sequence[str] = ("conv4_2",)
    style_layers: Sequence[str] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    lr: float = 1e-3                    # Adam learning rate (3e-3 for short runs; 1e-2 diverged in our trials)
    width: int = 16                     # channels of the first conv (paper: 32); 4·width in the residual blocks
    res_blocks: int = 5                 # residual blocks (paper: 5)
    checkpoint_every: int = 50          # save the checkpoint every this many steps (and at the end)
    seed: int = 0                       # seeds the weights and the crops; same seed + config → same model on CPU
    device: str = "auto"                # "auto" (cuda > mps > cpu), "cpu", "cuda", …
    weights: str = "caffe"              # VGG-19 weights for the loss (see nstedu.vgg.get_vgg)
    progress: bool = True               # tqdm progress bar

    # Why β is lower than the engine's: L-BFGS starts *from the photo* and stops near it, so it needs a strong
    # style term to move at all; the network starts from noise and finds the texture first (≈ blobs of the
    # painting's colours), the layout later. With β = 1e2 it needs ~2000 steps at 256 px before faces and
    # objects come back; for a few hundred CPU steps use β ≈ 10–30 (see nstedu/models/README.md).

    def validate(self) -> "FastConfig":
        for name in ("size", "steps", "batch_size", "width", "checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("content_weight", "style_weight", "tv_weight", "lr"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number, got {v!r}")
        check_layers(self.content_layers, "content layer")
        check_layers(self.style_layers, "style layer")
        return self


@dataclass
class FastTraining:
    """What :func:`train_fast` returns: the trained ``stylizer``, the loss ``history`` (lists per term, one
    entry per step: step, total, content, style, tv, time), the wall ``seconds`` of this call and why it stopped."""

    stylizer: "FastStylizer"
    history: dict
    seconds: float
    stop_reason: str  # "finished" or "interrupted"
    checkpoint: Optional[Path] = None


# --------------------------------------------------------------------------------------------- training
def _label(style) -> str:
    return str(style) if isinstance(style, (str, os.PathLike)) else f"<{type(style).__name__}>"


def train_fast(style: ImageLike, images=None, config: Optional[FastConfig] = None, *, checkpoint=None,
               resume: bool = True, callback=None, **overrides) -> FastTraining:
    """Train a :class:`TransformerNet` for ``style`` on random crops of ``images`` (``None``: the bundled photos;
    a folder; or a list of images). ``config`` and/or keyword ``overrides`` set any :class:`FastConfig` field.

    ``checkpoint``: a path saved every ``checkpoint_every`` steps and at the end (atomically; model config,
    weights, optimizer, step, history and the crop generator's state). With ``resume=True`` an existing
    checkpoint is continued up to ``steps`` (same settings required). ``callback(step, parts)`` runs after
    each step. Ctrl-C stops training, saves the checkpoint and returns what was learned so far.
    """
    from .transfer import load_style, resolve_device, style_grams

    unknown = set(overrides) - {f.name for f in fields(FastConfig)}
    if unknown:
        raise TypeError(f"unknown setting(s) {sorted(unknown)}; see nstedu.fast.FastConfig")
    cfg = replace(config or FastConfig(), **overrides).validate()
    device = resolve_device(cfg.device)
    net = init_net(cfg.width, cfg.res_blocks, cfg.seed).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = {k: [] for k in ("step", *TERMS, "time")}
    meta = {"style": _label(style), "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}}
    train_keys = ("size", "style_size", "batch_size", "content_weight", "style_weight", "tv_weight", "content_layers",
                  "style_layers", "lr", "width", "res_blocks", "seed", "weights")
    start, done_before = 0, 0.0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and resume and checkpoint.is_file():
        net_old, obj = load_net(checkpoint)
        old = obj.get("meta", {}).get("config", {})
        diff = [k for k in train_keys if k in old and old[k] != meta["config"][k]]
        if diff or "optimizer" not in obj:
            why = f"different {', '.join(diff)}" if diff else "it has no optimizer state (an exported model)"
            raise ValueError(f"checkpoint '{checkpoint}' cannot be resumed: {why}; use resume=False or another path")
        net.load_state_dict(net_old.state_dict())
        opt.load_state_dict(obj["optimizer"])
        gen.set_state(obj["rng"])
        history, start = obj["history"], int(obj["step"])
        done_before = history["time"][-1] if history["time"] else 0.0

    vgg = get_vgg(cfg.weights, device)
    style_img = load_style(style, cfg.style_size or cfg.size)
    with torch.no_grad():
        grams = style_grams(vgg, pil_to_tensor(style_img, device), cfg.style_layers)
    loss_fn = PerceptualLoss(vgg, grams, cfg.content_layers, cfg.content_weight, cfg.style_weight, cfg.tv_weight)
    crops = PhotoCrops(training_photos(images), cfg.size, gen)

    def save(step):
        if checkpoint is not None:
            meta["steps_trained"], meta["seconds"] = step, history["time"][-1] if history["time"] else 0.0
            save_model(net, checkpoint, meta, optimizer=opt.state_dict(), step=step, history=history, rng=gen.get_state())

    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, initial=min(start, cfg.steps), desc="train fast", leave=False)
    t0, stop_reason, step = time.perf_counter(), "finished", start
    net.train()
    try:
        for step in range(start + 1, cfg.steps + 1):
            x = crops(cfg.batch_size).to(device)
            total, parts = loss_fn(net(x), x)
            # one device->host transfer for the four terms (a term without layers is a plain 0)
            values = torch.stack([torch.as_tensor(parts[k]).detach().reshape(()).to(total) for k in TERMS]).tolist()
            if not math.isfinite(values[0]):
                raise FloatingPointError(f"loss became {values[0]} at step {step}: lower lr or the loss weights")
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            history["step"].append(step)
            history["time"].append(done_before + time.perf_counter() - t0)
            for k, v in zip(TERMS, values):
                history[k].append(v)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history['total'][-1]:.3g}", refresh=False)
            if callback is not None:
                callback(step, dict(zip(TERMS, values)))
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                save(step)
    except KeyboardInterrupt:
        stop_reason, step = "interrupted", history["step"][-1] if history["step"] else start
    finally:
        if bar is not None:
            bar.close()
    save(step)
    net.eval()
    return FastTraining(FastStylizer(net, dict(meta, steps_trained=step), device), history,
                        time.perf_counter() - t0, stop_reason, checkpoint)


def export_model(checkpoint, path) -> Path:
    """Copy a training checkpoint without its optimizer state and history (about ⅓ of the size) to ``path``."""
    net, obj = load_net(checkpoint)
    meta = dict(obj.get("meta", {}))
    hist = obj.get("history") or {}
    if hist.get("total"):
        meta["loss_first"], meta["loss_last"] = hist["total"][0], hist["total"][-1]
    return save_model(net, path, meta)


def _add_train_args(p) -> None:
    d = FastConfig()
    p.description = ("Train a fast style-transfer network for STYLE (Johnson et al. 2016). Examples:\n"
                     "  # CPU, the bundled photos: the recipe of the shipped starry_night model (~16 min, 2 cores)\n"
                     "  OMP_NUM_THREADS=1 nstedu fast-train starry_night --out starry.pth --size 128 --steps 500 \\\n"
                     "        --lr 3e-3 --style-weight 20\n"
                     "  # GPU, COCO (Johnson et al.'s setting)\n"
                     "  nstedu fast-train my_style.jpg --images coco/train2014 --out mine.pth --device cuda \\\n"
                     "        --size 256 --steps 40000 --width 32\n"
                     "  nstedu fast photo.jpg --model starry.pth -o out.png\n"
                     "Re-running the same command continues from --out (use --restart to start over).")
    p.add_argument("style", help="style image: a path or a sample name (e.g. starry_night)")
    p.add_argument("--images", default=None, metavar="DIR", help="folder of training photos (default: the bundled photos)")
    p.add_argument("--out", "-o", required=True, metavar="PTH", help="checkpoint to write and resume (.pth)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint at --out")
    p.add_argument("--export", default=None, metavar="PTH", help="also write an inference-only copy here (~⅓ the size)")
    for name, typ, meta, help_ in (("steps", int, "N", "optimizer steps"), ("size", int, "PX", "training crop side"),
                                   ("batch-size", int, "N", "crops per step"), ("width", int, "N", "network width (paper: 32)"),
                                   ("res-blocks", int, "N", "residual blocks"), ("lr", float, "X", "Adam learning rate"),
                                   ("content-weight", float, "α", "content weight"), ("style-weight", float, "β", "style weight"),
                                   ("tv-weight", float, "γ", "total-variation weight"),
                                   ("checkpoint-every", int, "N", "save every N steps"), ("seed", int, "N", "random seed")):
        key = name.replace("-", "_")
        p.add_argument(f"--{name}", type=typ, default=getattr(d, key), metavar=meta, help=f"{help_} (default {getattr(d, key)})")
    p.add_argument("--style-size", type=int, default=None, metavar="PX", help="style image's longest side (default: --size)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, …")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _run_train(args) -> int:
    keys = ("steps", "size", "batch_size", "width", "res_blocks", "lr", "content_weight", "style_weight", "tv_weight",
            "style_size", "checkpoint_every", "seed", "device")
    r = train_fast(args.style, args.images, checkpoint=args.out, resume=not args.restart, progress=not args.quiet,
                   **{k: getattr(args, k) for k in keys})
    h = r.history
    print(f"saved {args.out}: step {h['step'][-1] if h['step'] else 0}/{args.steps}, {r.stop_reason}, {r.seconds:.0f} s; "
          + (f"loss {h['total'][0]:.4g} → {h['total'][-1]:.4g}" if h["total"] else ""))
    if args.export:
        export_model(args.out, args.export)
        print(f"exported {args.export}")
    return 0


def _register() -> None:
    from .cli import COMMANDS

    COMMANDS["fast-train"] = ("train a fast style-transfer network for one style", _add_train_args, _run_train)


_register()
