"""What stylizes one frame of a video, in each mode (used by :func:`nstedu.video.stylize_video`, which reads,
writes and resumes): the fast network with blending, and the optimization with Ruder et al.'s temporal loss
(:class:`TemporalObjective`). Each is called as ``stylizer(frame, warped, mask, previous)`` with ``warped``/``mask``
``None`` on the first frame of a shot (``previous``: the previous output, unwarped)."""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Optional

import torch

from . import flow as FL
from . import video_blend as VB
from .config import TransferConfig
from .env import resolve_device
from .fast import FastStylizer, available_models, resolve_model
from .fast.network import read_model_file
from .objective import Objective, prepare_style_targets
from .samples import load_style
from .transfer import initial_image, optimize
from .vgg import WeightsError, get_vgg

#: λ_temp: the engine's terms are relative errors (α·content + β·style ≈ 100 near the end of a run) and the temporal
#: term is a per-pixel mean in 0–255 units (≈ 1–100), so λ = 1 makes it count. Measured (6 frames, 96 px, 30 steps,
#: Starry Night): λ = 1 cut the warping error by 99 % at +2 % style distance; λ = 10 cost +28 % in style distance.
TEMPORAL_WEIGHT = 1.0
#: b: how much of the warped previous output the fast mode keeps on reliable pixels (0 = none, independent frames),
#: unless the model's file names its own (``meta["video_blend"]``, :func:`default_blend`). More blending cuts more
#: flicker and costs style: the carried strokes are resampled and averaged. Measured on real clips
#: (``benchmarks/RESULTS.md``): starry_night loses 7–15 % style distance at 0.5; starry_night_cpu's coarser strokes
#: lose 1–8 % at 0.65, which its file names.
BLEND = 0.5


class TemporalObjective:
    r"""``objective(x) + weight · (1/D) Σ mask ⊙ (x − warped)²`` with pixels in 0–255 units (:math:`D` = 3·H·W).

    Wraps any engine objective (``x -> (total, parts)``); adds ``parts["temporal"]`` and updates ``parts["total"]``.
    ``warped`` ``(1, 3, H, W)`` in [0, 1] is the previous stylized frame warped into this one, ``mask``
    ``(1, 1, H, W)`` is 1 where the flow is reliable."""

    def __init__(self, objective: Callable, warped: torch.Tensor, mask: torch.Tensor, weight: float):
        self.objective, self.warped, self.mask, self.weight = objective, warped.detach(), mask.detach(), float(weight)

    def __call__(self, x: torch.Tensor):
        total, parts = self.objective(x)
        temporal = ((x - self.warped).pow(2) * self.mask).sum() * (255.0 ** 2 / x.numel())
        total = total + self.weight * temporal
        return total, dict(parts, temporal=temporal, total=total)


def default_blend(meta: dict, model) -> float:
    """The blend the file of ``model`` asks for in its ``meta`` (``meta["video_blend"]``), else :data:`BLEND`; a
    value outside [0, 1) is a one-line error naming the file."""
    b = meta.get("video_blend", BLEND)
    if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 <= b < 1.0:
        raise WeightsError(f"'{resolve_model(model)}': its video_blend must be a number in [0, 1), got {b!r}")
    return float(b)


def _flag(meta: dict, model, key: str, default: bool) -> bool:
    """``meta[key]`` of the file of ``model`` (``default`` when it does not say); not true or false: a one-line
    error naming the file."""
    v = meta.get(key, default)
    if not isinstance(v, bool):
        raise WeightsError(f"'{resolve_model(model)}': its {key} must be true or false, got {v!r}")
    return v


def default_hold(meta: dict, model) -> bool:
    """Whether the file of ``model`` asks for the still hold (``meta["video_hold"]``, :meth:`FastFrames.held`); off
    when it does not say. Measured (``nstedu/models/README.md``): neutral in style for starry_night_cpu, whose file
    asks for it, but +2 points of style distance for starry_night on the hand-held clip (the held pixels keep a
    blended value, and its finer strokes lose more by it)."""
    return _flag(meta, model, "video_hold", False)


def default_detail(meta: dict, model) -> bool:
    """Whether fast mode restores the strokes' detail after blending (:func:`nstedu.video_blend.keep_detail`) for
    ``model``: as its file asks (``meta["video_detail"]``), on when it does not say."""
    return _flag(meta, model, "video_detail", True)


def default_tuned(meta: dict, model) -> bool:
    """Whether the file of ``model`` asks fast video mode to use its video-tuned version (``meta["video_tuned"]``,
    :func:`video_model`); off when it does not say. Both shipped models ask for it: ``starry_night_cpu_video`` and
    ``starry_night_video`` (trained for stability with a stronger style term) flicker less on every real clip
    measured, at no more style distance (``nstedu/models/README.md``)."""
    return _flag(meta, model, "video_tuned", False)


def video_model(model):
    """The video-tuned version of a shipped model (``"starry_night_cpu"`` → ``"starry_night_cpu_video"``, fine-tuned
    for stability by :mod:`nstedu.fast.stability`) when one is shipped; otherwise ``model`` itself (files as given)."""
    if isinstance(model, str) and not model.endswith("_video") and model in (names := available_models()) \
            and f"{model}_video" in names:
        return f"{model}_video"
    return model


class FastFrames:
    """Fast mode: ``y = network(frame)``; with a previous output, reliable pixels blend towards it by ``blend``.
    The previous output is warped bicubically: it is carried from frame to frame, and bilinear resampling would
    blur the strokes a little more at every step. ``tuned``: use the video-tuned version of a shipped model
    (:func:`video_model`) when there is one (None: as the model's file asks, :func:`default_tuned`). :meth:`prepare` starts the network on a frame in a worker thread, so
    that it runs while the caller computes the optical flow (torch and OpenCV release the GIL)."""

    warp_mode = "bicubic"
    overlap = True   # run the network in a worker thread while the flow is computed (False: one after the other)

    def __init__(self, model, blend: Optional[float] = None, device="auto", tuned: Optional[bool] = None,
                 independent: bool = False, hold: Optional[bool] = None, detail: Optional[bool] = None):
        if blend is not None and not 0.0 <= blend < 1.0:
            raise ValueError(f"blend must be in [0, 1), got {blend!r}")
        if tuned is None:
            tuned = default_tuned(read_model_file(model)["meta"], model)
        self.requested, self.model = model, (video_model(model) if tuned else model)
        self.stylizer, self.independent = FastStylizer.load(self.model, device), independent
        self.blend = default_blend(self.stylizer.meta, self.model) if blend is None else blend
        # hold the pixels whose input has not changed (:meth:`held`); None: as the model's file asks
        self.hold = default_hold(self.stylizer.meta, self.model) if hold is None else bool(hold)
        # restore the strokes' detail after blending (nstedu.video_blend); None: as the model's file asks
        self.detail = default_detail(self.stylizer.meta, self.model) if detail is None else bool(detail)
        self.width = self.stylizer.net.width
        self._pool = self._pending = self._anchor = None

    def bytes_per_pixel(self) -> float:  # measured: ~30·width B/px for the network's activations, + flow buffers
        return 30.0 * self.width + 200.0

    def prepare(self, frame: torch.Tensor) -> None:
        """Start ``network(frame)`` in the background; the next call with this ``frame`` picks it up."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="nstedu-network")
        threads = torch.get_num_threads()   # a new thread starts with OpenMP's default, not the caller's setting

        def run():
            torch.set_num_threads(threads)
            return self.stylizer.stylize_tensor(frame)
        self._pending = (frame, self._pool.submit(run))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = self._pending = None

    def __call__(self, frame: torch.Tensor, warped: Optional[torch.Tensor], mask: Optional[torch.Tensor],
                 previous: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``previous``: the previous output as it was (held pixels keep it; None: the warped one)."""
        pending, self._pending = self._pending, None
        y = pending[1].result() if pending is not None and pending[0] is frame else self.stylizer.stylize_tensor(frame)
        if warped is None or self.blend == 0:
            self._anchor = frame
            return y
        out = VB.blend(y, warped, mask, self.blend)
        if self.detail:
            out = VB.keep_detail(y, out, self.blend, mask)
        if self.hold and self._anchor is not None and self._anchor.shape == frame.shape:
            held = self.held(frame) * mask > 0
            out = torch.where(held, warped if previous is None else previous.to(out), out)
            self._anchor = torch.where(held, self._anchor, frame)
        else:
            self._anchor = frame
        return out

    def held(self, frame: torch.Tensor) -> torch.Tensor:
        """The still hold: 1 where ``frame`` shows what the input showed when the output there was last drawn (the
        *anchor*, :func:`nstedu.flow.unchanged`: a 15-px window at the flow's 320 px, scaled with the frame). There
        the previous output is kept as it was, not blended: blending averages the network's redrawn strokes, which
        blurs them and leaves a slow drift; holding keeps one frame's strokes. Kept unwarped: the input did not
        change at that place, so neither does the output (no resampling along a sub-pixel camera drift). The anchor
        is compared, not the previous frame, so a slow change (a fade or a drift of less than a grey level a frame)
        adds up and lets the pixel be drawn again."""
        h, w = frame.shape[-2:]
        if max(h, w) <= FL.FLOW_SIDE:
            return FL.unchanged(frame, self._anchor, max(3, round(FL.STILL_WINDOW * max(h, w) / FL.FLOW_SIDE)) | 1)
        # larger frames: tested at the flow's size, like the flow's own mask (full size: 26 ms a frame at 640×360,
        # shrunk: 9 ms)
        size = FL.shrunk_size(h, w, FL.FLOW_SIDE)
        small = FL.unchanged(FL.shrink(frame, size), FL.shrink(self._anchor, size), FL.STILL_WINDOW)
        return FL.grow_mask(small, (h, w))

    def temporal_state(self) -> dict:
        """What the next frame needs besides the previous output (saved with a resume point)."""
        return {"anchor": self._anchor} if self._anchor is not None else {}

    def restore(self, state: dict) -> None:
        self._anchor = state.get("anchor")

    def summary(self) -> str:
        """Which model ran and whether its frames were blended (the run's notes)."""
        which = (f"{self.model} (the video-tuned version of {self.requested}: trained for stability)"
                 if self.model != self.requested else f"{self.model}")
        how = ("independent frames, no blending" if self.independent else
               "no blending (blend 0)" if self.blend == 0 else
               f"blending {self.blend:g} of the warped previous output on reliable pixels"
               + (", its strokes' detail kept" if self.detail else "")
               + (", holding those whose input has not changed" if self.hold else ""))
        return f"fast: model {which}; {how}"


def optimized_bytes_per_pixel(optimizer: str = "lbfgs", lbfgs_history: int = 100) -> float:
    """Working memory per pixel of the optimization mode: VGG-19 forward + backward ≈ 2 kB/px (NOTES), L-BFGS 2
    vectors per history entry (Adam: its moments), flow buffers."""
    return 2000.0 + (24.0 * lbfgs_history if optimizer == "lbfgs" else 40.0) + 200.0


#: Later frames of a shot stop when the best loss improved by less than this share over the last :data:`WINDOW`
#: evaluations (they start from the warped previous result, so most of the work is done); 0 = the full budget.
TOLERANCE = 0.01
WINDOW = 10


class Plateau:
    """``should_stop`` for :func:`nstedu.transfer.optimize`: true once the best loss improved by at most
    ``tolerance`` (relative) over the last ``window`` evaluations; ``record`` is the optimizer's callback."""

    def __init__(self, tolerance: float = TOLERANCE, window: int = WINDOW):
        if not 0 <= tolerance < 1 or window < 1:
            raise ValueError(f"tolerance must be in [0, 1) and window ≥ 1, got {tolerance!r}, {window!r}")
        self.tolerance, self.window, self.best = tolerance, window, []

    def record(self, info) -> None:
        self.best.append(float(info.best_loss))

    def __call__(self) -> bool:
        b = self.best
        return self.tolerance > 0 and len(b) > self.window and b[-self.window - 1] - b[-1] <= self.tolerance * abs(b[-1])


class OptimizedFrames:
    """Optimization mode: Gatys et al. per frame. The first frame of a shot starts as the engine does and gets the
    whole budget (``steps``); a later frame starts from the previous result, warped, adds the
    :class:`TemporalObjective`, and stops at a :class:`Plateau` of its loss (``tolerance``). ``evaluations`` and
    ``seconds`` keep each frame's count and time; ``first`` whether it began a shot."""

    warp_mode = "bilinear"

    def __init__(self, style, size: int, temporal_weight: float = TEMPORAL_WEIGHT, config=None, device="auto",
                 tolerance: float = TOLERANCE, **settings):
        if temporal_weight < 0 or not math.isfinite(temporal_weight):
            raise ValueError(f"temporal_weight must be a non-negative number, got {temporal_weight!r}")
        Plateau(tolerance)  # checks it
        self.cfg = replace(config or TransferConfig(), size=size, progress=False, device=str(device), **settings).validate()
        self.device = resolve_device(device)
        self.temporal_weight, self.tolerance = temporal_weight, tolerance
        self.vgg = get_vgg(self.cfg.weights, self.device, self.cfg.pooling)
        self.targets = prepare_style_targets(style, self.vgg, self.cfg, size, self.device)
        first = style[0] if isinstance(style, (list, tuple)) else style
        self.style_image = load_style(first, size) if self.cfg.init == "style" else None
        self.log: list = []     # per frame: (first of a shot?, evaluations, seconds)

    def bytes_per_pixel(self) -> float:
        return optimized_bytes_per_pixel(self.cfg.optimizer, self.cfg.lbfgs_history)

    def __call__(self, frame: torch.Tensor, warped: Optional[torch.Tensor], mask: Optional[torch.Tensor],
                 previous: Optional[torch.Tensor] = None) -> torch.Tensor:
        t0 = time.perf_counter()
        content = frame.to(self.device)
        objective = Objective(self.vgg, content, self.targets, self.cfg)
        plateau = None
        if warped is None:
            x0 = initial_image(self.cfg.init, content, self.style_image, self.cfg.seed)
        else:
            x0 = warped.to(self.device)
            objective = TemporalObjective(objective, x0, mask.to(self.device), self.temporal_weight)
            plateau = Plateau(self.tolerance)
        result = optimize(objective, x0, self.cfg, device=self.device, should_stop=plateau,
                          callback=plateau.record if plateau else None, callback_every=1)
        if result.stop_reason == "interrupted":  # the engine caught Ctrl-C: this frame is unfinished
            raise KeyboardInterrupt
        self.log.append((warped is None, len(result.history["step"]), time.perf_counter() - t0))
        return result.tensor

    def summary(self) -> str:
        """Seconds and evaluations per frame, for first frames of shots and for the others (the run's notes)."""
        parts = []
        for first, label in ((True, "first frames of shots"), (False, "other frames")):
            rows = [(n, s) for f, n, s in self.log if f == first]
            if rows:
                parts.append(f"{label}: {len(rows)}, {sum(s for _, s in rows) / len(rows):.1f} s and "
                             f"{sum(n for n, _ in rows) / len(rows):.0f} evaluations each")
        return "optimization: " + "; ".join(parts) if parts else ""
