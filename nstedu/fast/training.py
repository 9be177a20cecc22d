"""Training a fast style-transfer network (Johnson et al. 2016): photo crops, the perceptual loss (the engine's
:class:`~nstedu.objective.Objective`, averaged over a batch) and the training loop with resumable checkpoints
(``nstedu fast-train``). The network and inference are in :mod:`nstedu.fast.network`.

    from nstedu.fast import train_fast
    result = train_fast("great_wave", images="photos/", steps=2000, checkpoint="wave.pth")
    image = result.stylizer("photo.jpg")
"""
from __future__ import annotations

import math
import numbers
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import samples
from ..config import NETWORK, OPTIMIZATION, OUTPUT, WEIGHTS, TransferConfig, setting
from ..allocator import steady_allocator
from ..env import check_size_fits, estimate_memory_gb, resolve_device
from ..images import IMAGE_EXTENSIONS, ImageError, ImageLike, image_files, load_image, pil_to_tensor
from ..objective import TERMS, LossHistory, Objective, StyleTarget, style_grams, term_values
from ..outputs import check_file_output, partial_path
from ..samples import load_style
from ..transfer import check_hooks
from ..vgg import check_layers, get_vgg
from .network import FastStylizer, init_net, load_net, save_model
from .stability import SyntheticMotion, noise_term, stability_term


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
    if images is None:
        return [samples.path(n) for n in samples.names("content")]
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise ValueError(f"images '{folder}': not a folder (give a folder of photos, a list, or None for the samples)")
        found = image_files(folder, recursive=True)
        if not found:
            raise ValueError(f"images '{folder}': no image files found ({', '.join(IMAGE_EXTENSIONS)})")
        return found
    return list(images)


# ------------------------------------------------------------------------------------------------- loss
class PerceptualLoss(Objective):
    """``loss(output, content) -> (total, parts)``: the engine's :class:`~nstedu.objective.Objective`, averaged
    over a batch, with every term measured (even at weight 0).

    ``output``: the network's ``(B, 3, H, W)``; ``content``: the input photos ``(B, 3, H, W)`` in [0, 1];
    ``style_grams``: ``{layer: (1, C, C)}`` normalized Grams of the style image. Gatys et al.'s plain sums
    (``relative=False``): what the training weights below were calibrated with.
    """

    def __init__(self, vgg, style_grams: dict, content_layers: Sequence[str], content_weight: float,
                 style_weight: float, tv_weight: float):
        config = TransferConfig(content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                                content_layers=tuple(content_layers), style_layers=tuple(style_grams),
                                precision="fp32")  # training keeps its own arithmetic (not measured on a GPU yet)
        super().__init__(vgg, None, [StyleTarget(style_grams)], config, skip_unweighted=False, relative=False)

    def __call__(self, output: torch.Tensor, content: torch.Tensor):
        return super().__call__(output, content)


# ---------------------------------------------------------------------------------------------- config
@dataclass
class FastConfig:
    """Settings of one training run (α, β, γ mean what they mean in :class:`nstedu.TransferConfig`)."""

    size: int = setting(256, "side of the square training crops in pixels", OUTPUT, metavar="PX")
    style_size: Optional[int] = setting(None, "longest side of the style image for its Grams", OUTPUT, metavar="PX",
                                        default_text="--size")
    steps: int = setting(2000, "optimizer steps, one batch each (Johnson et al.: 40,000 on COCO)", OPTIMIZATION,
                         metavar="N")
    batch_size: int = setting(4, "crops per step (Johnson et al.: 4)", OPTIMIZATION, metavar="N")
    content_weight: float = setting(1.0, "α: weight of the content loss", WEIGHTS, metavar="α")
    style_weight: float = setting(1e2, "β: weight of the style loss; lower than the engine's 1e3 (see below)", WEIGHTS,
                                  metavar="β")
    tv_weight: float = setting(1e2, "γ: total-variation weight", WEIGHTS, metavar="γ")
    # the pre-ReLU layers and plain sums its weights were calibrated with (the engine moved to relu layers and
    # relative terms in issue 12)
    content_layers: Sequence[str] = setting(("conv4_2",), "VGG-19 content layers (Johnson et al.: relu2_2 "
                                            "of VGG-16)", NETWORK, metavar="L1,L2")
    style_layers: Sequence[str] = setting(("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), "VGG-19 style layers",
                                          NETWORK, metavar="L1,L2")
    lr: float = setting(1e-3, "Adam learning rate (3e-3 for short runs; 1e-2 diverged in our trials)", OPTIMIZATION,
                        metavar="X")
    width: int = setting(16, "channels of the first conv (paper: 32); 4·width in the residual blocks", NETWORK,
                         metavar="N")
    res_blocks: int = setting(5, "residual blocks (paper: 5)", NETWORK, metavar="N")
    checkpoint_every: int = setting(50, "save the checkpoint every this many steps (and at the end)", OUTPUT,
                                    metavar="N")
    seed: int = setting(0, "seeds the weights and the crops; same seed + settings → same model on CPU", OPTIMIZATION,
                        metavar="N")
    device: str = setting("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps", OPTIMIZATION)
    weights: str = setting("caffe", "VGG-19 weights for the loss: caffe, torchvision or a .pth file", NETWORK,
                           metavar="SRC")
    progress: bool = setting(True, "show a progress bar", OUTPUT, flags=("--quiet", "-q"), kind="negate",
                             cli_help="no progress bar")
    # temporal stability by training (nstedu.fast.stability; Gupta et al. 2017): fine-tune a model on synthetic motion
    init_model: Optional[str] = setting(None, "start from this model (file or shipped name, e.g. starry_night_cpu): "
                                        "fine-tuning; its width and residual blocks are used", NETWORK, metavar="MODEL")
    stability_weight: float = setting(0.0, "λ_stab: weight of the stability term (0 = off); each crop is paired with "
                                      "a randomly moved copy", WEIGHTS, metavar="λ")
    noise_weight: float = setting(0.0, "weight of Gupta et al.'s noise term mean (f(x+n) − f(x))² (0 = off)",
                                  WEIGHTS, metavar="λ")
    motion_shift: float = setting(4.0, "synthetic motion: largest shift in px (whole px when rotation and zoom are 0)",
                                  OPTIMIZATION, metavar="PX")
    motion_rotation: float = setting(0.0, "synthetic motion: largest rotation in degrees", OPTIMIZATION, metavar="DEG")
    motion_scale: float = setting(0.0, "synthetic motion: largest zoom, relative (0.03 = 3 %)", OPTIMIZATION,
                                  metavar="X")
    motion_noise: float = setting(0.02, "synthetic motion: std of the Gaussian noise added to the moved copy, "
                                  "[0, 1] units", OPTIMIZATION, metavar="σ")

    # Why β is lower than the engine's: L-BFGS starts *from the photo* and stops near it, so it needs a strong
    # style term to move at all; the network starts from noise and finds the texture first (≈ blobs of the
    # painting's colours), the layout later. With β = 1e2 it needs ~2000 steps at 256 px before faces and
    # objects come back; for a few hundred CPU steps use β ≈ 10–30 (see nstedu/models/README.md).

    def validate(self) -> "FastConfig":
        for name in ("size", "steps", "batch_size", "width", "checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("content_weight", "style_weight", "tv_weight", "lr", "stability_weight", "noise_weight",
                     "motion_shift", "motion_noise", "motion_rotation", "motion_scale"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < 2 ** 63:
            raise ValueError(f"seed must be a whole number from 0 to 2**63 - 1, got {self.seed!r}")
        check_layers(self.content_layers, "content layer")
        check_layers(self.style_layers, "style layer")
        return self


@dataclass
class FastTraining:
    """What :func:`train_fast` returns: the trained ``stylizer``, the loss ``history`` (lists per term, one
    entry per step: step, total, content, style, tv, time), the wall ``seconds`` of this call and why it stopped."""

    stylizer: FastStylizer
    history: LossHistory
    seconds: float
    stop_reason: str  # "finished" or "interrupted"
    checkpoint: Optional[Path] = None


# --------------------------------------------------------------------------------------------- training
def _stable_loss(net, loss_fn, x, motion, gen, cfg: FastConfig):
    """One batch with the stability terms (:mod:`nstedu.fast.stability`): ``x`` and its moved (and/or noisy)
    copies go through the network and the perceptual loss together; ``parts["stability"]``: the unweighted term."""
    inputs, pair = [x], None
    if motion is not None:
        pair = motion(x, gen)
        inputs.append(pair.moved)
    if cfg.noise_weight > 0:
        inputs.append((x + cfg.motion_noise * torch.randn(x.shape, generator=gen).to(x.device)).clamp(0, 1))
    batch = torch.cat(inputs)
    y = net(batch).chunk(len(inputs))
    total, parts = loss_fn(torch.cat(y), batch)
    stab = stability_term(y[0], y[1], pair) if pair is not None else torch.zeros((), device=x.device)
    total = total + cfg.stability_weight * stab
    if cfg.noise_weight > 0:
        total = total + cfg.noise_weight * noise_term(y[0], y[-1])
    return total, dict(parts, total=total, stability=stab.detach())


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
    unknown = set(overrides) - {f.name for f in fields(FastConfig)}
    if unknown:
        raise TypeError(f"unknown setting(s) {sorted(unknown)}; see nstedu.fast.FastConfig")
    cfg = replace(config or FastConfig(), **overrides).validate()
    start_net = None
    if cfg.init_model is not None:  # fine-tuning: the network's shape is the model's
        start_net, start_obj = load_net(cfg.init_model)
        cfg = replace(cfg, width=start_net.width, res_blocks=start_net.res_blocks)
    device = resolve_device(cfg.device)
    check_hooks(callback, 1, None)
    need = cfg.batch_size * estimate_memory_gb(cfg.size, cfg.size, 0)  # before anything of that size is allocated
    check_size_fits(f"training on {cfg.batch_size} crops of {cfg.size}×{cfg.size}", need, device, "--size", cfg.size)
    net = (start_net if start_net is not None else init_net(cfg.width, cfg.res_blocks, cfg.seed)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    motion = (SyntheticMotion(cfg.motion_shift, cfg.motion_rotation, cfg.motion_scale, cfg.motion_noise)
              if cfg.stability_weight > 0 else None)
    extra = ("stability",) if motion is not None or cfg.noise_weight > 0 else ()
    history = LossHistory(extra=extra)
    meta = {"style": _label(style), "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}}
    if start_net is not None:
        meta["init_meta"] = start_obj.get("meta", {})
    train_keys = ("size", "style_size", "batch_size", "content_weight", "style_weight", "tv_weight", "content_layers",
                  "style_layers", "lr", "width", "res_blocks", "seed", "weights", "init_model", "stability_weight",
                  "noise_weight", "motion_shift", "motion_noise", "motion_rotation", "motion_scale")
    start, done_before = 0, 0.0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None:
        check_file_output(checkpoint, f"checkpoint '{checkpoint}'", inputs={"style image": style})
    resumed = checkpoint is not None and resume and checkpoint.is_file()
    # a finished checkpoint there that is not continued is replaced only when this training finishes
    target = partial_path(checkpoint) if checkpoint is not None and os.path.lexists(checkpoint) and not resumed else checkpoint
    if resumed:
        net_old, obj = load_net(checkpoint)
        old = obj.get("meta", {}).get("config", {})
        diff = [k for k in train_keys if k in old and old[k] != meta["config"][k]]
        if diff or "optimizer" not in obj:
            why = f"different {', '.join(diff)}" if diff else "it has no optimizer state (an exported model)"
            raise ValueError(f"checkpoint '{checkpoint}' cannot be resumed: {why}; use resume=False or another path")
        net.load_state_dict(net_old.state_dict())
        opt.load_state_dict(obj["optimizer"])
        gen.set_state(obj["rng"])
        history, start = LossHistory(obj["history"], extra=extra), int(obj["step"])
        done_before = history["time"][-1] if history["time"] else 0.0

    vgg = get_vgg(cfg.weights, device)
    style_img = load_style(style, cfg.style_size or cfg.size)
    with torch.no_grad():
        grams = style_grams(vgg, pil_to_tensor(style_img, device), cfg.style_layers)
    loss_fn = PerceptualLoss(vgg, grams, cfg.content_layers, cfg.content_weight, cfg.style_weight, cfg.tv_weight)
    crops = PhotoCrops(training_photos(images), cfg.size, gen)

    def save(step, path=None):
        if checkpoint is not None:
            meta["steps_trained"], meta["seconds"] = step, history["time"][-1] if history["time"] else 0.0
            save_model(net, path or target, meta, optimizer=opt.state_dict(), step=step, history=dict(history),
                       rng=gen.get_state())

    bar = tqdm(total=cfg.steps, initial=min(start, cfg.steps), desc="train fast", leave=False) if cfg.progress else None
    t0, stop_reason, step = time.perf_counter(), "finished", start
    net.train()
    need = cfg.batch_size * estimate_memory_gb(cfg.size, cfg.size, 0)
    with steady_allocator(device, need, cfg.size ** 2):  # CPU: each step's buffers reused, not faulted in again
        try:
            for step in range(start + 1, cfg.steps + 1):
                x = crops(cfg.batch_size).to(device)
                if not extra:
                    total, parts = loss_fn(net(x), x)
                else:  # the perceptual loss of x and of its moved copy, + the stability (and noise) terms
                    total, parts = _stable_loss(net, loss_fn, x, motion, gen, cfg)
                values = term_values(parts)  # one device->host transfer for the four terms
                if not math.isfinite(values[0]):
                    raise FloatingPointError(f"loss became {values[0]} at step {step}: lower lr or the loss weights")
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                history.append(step, values, done_before + time.perf_counter() - t0,
                               **({"stability": float(parts["stability"])} if extra else {}))
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
    if stop_reason == "finished" and target != checkpoint:
        save(step, checkpoint)
        target.unlink(missing_ok=True)
        target = checkpoint
    else:
        save(step)
    net.eval()
    return FastTraining(FastStylizer(net, dict(meta, steps_trained=step), device), history,
                        time.perf_counter() - t0, stop_reason, target)


def export_model(checkpoint, path) -> Path:
    """Copy a training checkpoint without its optimizer state and history (about ⅓ of the size) to ``path``
    (never over the checkpoint itself)."""
    check_file_output(path, f"export '{path}'", inputs={"checkpoint": str(checkpoint)})
    net, obj = load_net(checkpoint)
    meta = dict(obj.get("meta", {}))
    hist = obj.get("history") or {}
    if hist.get("total"):
        meta["loss_first"], meta["loss_last"] = hist["total"][0], hist["total"][-1]
    return save_model(net, path, meta)
