"""The optimization: make an image whose VGG-19 features match the content photo and whose Gram matrices
match the painting (Gatys, Ecker & Bethge, 2015). We optimize the *pixels*; the network stays frozen.

    result = run_style_transfer("photo.jpg", "starry_night", steps=300)   # -> StyleTransferResult
    image = stylize("photo.jpg", "starry_night")                           # -> PIL.Image

The pipeline, one module per step: the photo and the paintings are loaded (:mod:`nstedu.samples`), artistic
control prepares them (:mod:`nstedu.control`), the style targets and the objective ``α·content + β·style + γ·tv``
are built (:mod:`nstedu.objective`), and here the pixels are optimized. Every evaluation: clamp the pixels into
[0, 1], one VGG-19 forward to the deepest layer needed, the loss, one backward to the pixels. L-BFGS (strong-Wolfe
line search; default) or Adam (learning rate ×0.96 every 100 steps) takes the step. The lowest-loss image seen
so far is kept, so a stop, an interrupt or a numerical blow-up still returns the best result.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import time
import warnings
from dataclasses import dataclass, fields, replace
from typing import Callable, Optional, Sequence, Union

import torch
from PIL import Image
from tqdm.auto import tqdm

from . import control, optimizers
from .config import INITS, OPTIMIZERS, TransferConfig  # noqa: F401 (OPTIMIZERS, INITS: re-exported)
from .env import (check_memory, default_device, default_size,  # noqa: F401 (default_device: re-exported)
                  estimate_memory_gb, explain_out_of_memory, matmul_precision, resolve_device)
from .allocator import steady_allocator
from .images import ImageLike, check_min_side, load_image, pil_to_tensor, resize_longest, save_image, tensor_to_pil
from .objective import (TERMS, LossHistory, Objective, StyleTarget, blend_targets, grams_of,  # noqa: F401
                        prepare_style_targets, style_grams, term_tensor)
from .samples import load_content, load_style
from .vgg import get_vgg

# Re-exported for ``from nstedu.transfer import …`` (their homes: config, objective, samples, env):
__all__ = ["run_style_transfer", "stylize", "optimize", "initial_image", "StepInfo", "StyleTransferResult",
           "TransferConfig", "OPTIMIZERS", "INITS", "TERMS", "LossHistory", "Objective", "StyleTarget", "grams_of",
           "style_grams", "blend_targets", "prepare_style_targets", "load_style", "load_content", "resolve_device",
           "default_device", "default_size"]


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
    """The outcome: the best ``image`` (PIL), its ``tensor`` on the CPU, the loss ``history``
    (:class:`~nstedu.objective.LossHistory`: lists per term, one entry per evaluation), why it stopped, and the
    settings used."""

    image: Image.Image
    tensor: torch.Tensor
    history: LossHistory
    stop_reason: str              # "finished", "converged", "stopped", "interrupted", "non-finite"
    best_step: int
    best_loss: float
    seconds: float
    config: TransferConfig
    device: str
    message: str = ""

    def save(self, path) -> None:
        save_image(self.image, path)

    def final_losses(self) -> dict:
        """The loss terms of the returned (best) image."""
        return self.history.at(self.best_step)


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


def check_hooks(callback, callback_every, should_stop) -> None:
    """One ``TypeError``/``ValueError`` naming the argument for a callback that cannot be called, or a bad period."""
    for name, hook in (("callback", callback), ("should_stop", should_stop)):
        if hook is not None and not callable(hook):
            raise TypeError(f"{name} must be a function (or None); got {type(hook).__name__}")
    if isinstance(callback_every, bool) or not isinstance(callback_every, numbers.Integral) or callback_every <= 0:
        raise ValueError(f"callback_every must be a positive whole number, got {callback_every!r}")


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
    ``mask`` (path, image, array or :class:`nstedu.masks.Mask`; white = style) restricts the style to a region
    (and, by default, pastes the photo back where the mask is black).
    ``style_strength``, ``preserve_colors``, ``contrast`` and ``sharpness`` are applied by :mod:`nstedu.control`;
    with ``preserve_colors="luminance"`` the losses are those of the luminance image that was optimized.
    """
    unknown = set(overrides) - {f.name for f in fields(TransferConfig)}
    if unknown:
        raise TypeError(f"unknown setting(s) {sorted(unknown)}; see nstedu.TransferConfig")
    cfg = replace(config or TransferConfig(), **overrides).validate()
    check_hooks(callback, callback_every, should_stop)
    device = resolve_device(cfg.device)
    size = cfg.size or default_size(device)
    photo = load_content(content)  # its size is checked before anything of the result's size is allocated
    w, h = check_min_side(photo.size, size, f"content image '{content}'" if isinstance(content, str) else "content image")
    history = cfg.lbfgs_history if cfg.optimizer == "lbfgs" else 0
    check_memory(w, h, history, device, size, multiscale_history=3, style_scale=cfg.style_scale)
    with explain_out_of_memory(w, h, history, device, size, suggest_multiscale=init_image is None):
        return _run(photo, style, cfg, device, size, style_targets, init_image, mask, callback, callback_every,
                    should_stop)


def _run(photo, style, cfg, device, size, style_targets, init_image, mask, callback, callback_every, should_stop):
    """:func:`run_style_transfer` once its inputs are checked; a frame of its own, so that after an out-of-memory
    error its tensors can be released (``explain_out_of_memory`` clears it) before the free memory is measured."""
    photo = resize_longest(photo, size)
    vgg = get_vgg(cfg.weights, device, cfg.pooling)
    inputs = control.prepare(photo, style, vgg, cfg, size, device, style_targets=style_targets, mask=mask)

    first_style = None
    if cfg.init == "style" and init_image is None:
        s0 = style[0] if isinstance(style, (list, tuple)) else style
        if s0 is None:
            raise ValueError("init='style' needs a style image")
        first_style = load_style(s0, size)
    objective = Objective(vgg, inputs.content, inputs.targets, cfg)
    h, w = inputs.content.shape[-2:]
    if init_image is not None:
        x0 = pil_to_tensor(load_image(init_image, name="init image").resize((w, h), Image.BICUBIC), device)
    else:
        x0 = initial_image(cfg.init, inputs.content, first_style, cfg.seed)
    result = optimize(objective, inputs.start(x0), cfg, callback=callback, callback_every=callback_every,
                      should_stop=should_stop, device=device)
    if inputs.changes_result:  # the photo's chroma and/or the photo itself outside the mask
        x = inputs.finish(result.tensor)
        result.tensor, result.image = x, tensor_to_pil(x)
    return result


def optimize(objective: Callable, x0: torch.Tensor, cfg: TransferConfig, *, callback=None, callback_every: int = 10,
             should_stop=None, device=None, read_every: Optional[int] = None) -> StyleTransferResult:
    """Minimize ``objective`` over the pixels of ``x0`` with ``cfg``'s optimizer, keeping pixels in [0, 1].

    ``objective(x) -> (total, {term: value})`` with the :data:`~nstedu.objective.TERMS` as keys. The losses are
    read back to the host every ``read_every`` evaluations (and at every callback and the last step): default 1,
    10 for Adam on CUDA, where each read-back stalls the GPU; L-BFGS reads them inside its own step anyway. The
    history, the best image and the NaN guard come out the same either way."""
    x = x0.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
    if read_every is None or cfg.optimizer == "lbfgs":  # L-BFGS's convergence test needs the count at once
        read_every = 10 if x.device.type == "cuda" and cfg.optimizer == "adam" else 1
    pending: list = []  # evaluations not yet read back: (terms on the device, the image, seconds)
    lr = cfg.step_size()
    history = LossHistory()
    state = {"evals": 0, "best": math.inf, "best_x": x0.detach().clone().clamp_(0, 1), "best_step": 0,
             "good_x": x0.detach().clone().clamp_(0, 1)}
    project = cfg.optimizer == "lbfgs"
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc="stylize", leave=False) if cfg.progress else None

    def read_back():
        """Record the pending evaluations in order (one device->host transfer for all of them: the loss terms and a
        finiteness probe of the gradient); a non-finite one raises _NonFinite and the ones after it are dropped."""
        if not pending:
            return
        rows = torch.stack([p[0] for p in pending]).tolist()
        done = [(terms, image, seconds) for terms, (_, image, seconds) in zip(rows, pending)]
        done[-1] = (*done[-1][:2], time.perf_counter() - t0)  # the last one is surely finished now
        pending.clear()
        for terms, image, seconds in done:
            value = terms[0]
            if not math.isfinite(value):
                raise _NonFinite(f"loss became {value} at step {state['evals'] + 1}")
            if not math.isfinite(terms[-1]):
                raise _NonFinite(f"gradient became non-finite at step {state['evals'] + 1}")
            state["evals"] += 1
            n = state["evals"]
            history.append(n, terms, seconds)
            state["good_x"] = image
            if value < state["best"]:
                state["best"], state["best_x"], state["best_step"] = value, image, n
            if bar is not None:
                bar.update(1)
                if n % 10 == 0 or n == 1:
                    bar.set_postfix(loss=f"{value:.3g}")
            if callback is not None and (n % callback_every == 0 or n == cfg.steps):
                callback(StepInfo(n, history.last(), image, state["best"], seconds))

    def closure():
        if state["evals"] + len(pending) >= cfg.steps:
            raise _Stop("finished")
        if should_stop is not None and should_stop():
            read_back()
            raise _Stop("stopped")
        with torch.no_grad():
            x.clamp_(0, 1)
        opt.zero_grad(set_to_none=True)
        total, parts = objective(x)
        total.backward()
        if project and x.grad is not None:  # projected gradient: a pixel at 0 or 1 is not pushed further out, where
            with torch.no_grad():  # the clamp would undo the move (without this, L-BFGS's curvature pairs see steps
                g = x.grad         # that change nothing and its directions blow up: issue 12; Adam's per-pixel
                g.masked_fill_(((x <= 0) & (g > 0)) | ((x >= 1) & (g < 0)), 0.0)  # steps need no projection)
        probe = x.grad.sum() if x.grad is not None else total.new_zeros(())
        pending.append((term_tensor(parts, probe), x.detach().clone(), time.perf_counter() - t0))
        n = state["evals"] + len(pending)
        if len(pending) >= read_every or n >= cfg.steps or (callback is not None and n % callback_every == 0):
            read_back()
        return total

    def make_optimizer(lr):
        if cfg.optimizer == "lbfgs":
            return optimizers.LBFGS([x], lr=lr, max_iter=cfg.steps, max_eval=cfg.steps * 2, history_size=cfg.lbfgs_history,
                                     tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
        return optimizers.Adam([x], lr=lr)

    opt = make_optimizer(lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_decay_every, cfg.lr_decay) if cfg.optimizer == "adam" else None
    stop_reason, message, retries = "finished", "", 0
    scope = contextlib.ExitStack()  # closed when the loop ends, however it ends
    scope.enter_context(matmul_precision(getattr(objective, "precision", None)))  # TF32 on CUDA as the plan says
    need = estimate_memory_gb(*x.shape[-2:][::-1], cfg.lbfgs_history if project else 0)  # CPU: buffers reused,
    scope.enter_context(steady_allocator(x.device, need, x.shape[-2] * x.shape[-1]))  # not faulted in again
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
        try:
            read_back()  # evaluations finished before the interrupt still count
        except _NonFinite:
            pass
    finally:
        scope.close()
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
