"""What stylizes one frame of a video, in each mode (used by :func:`nstedu.video.stylize_video`, which reads,
writes and resumes): the fast network with blending, and the optimization with Ruder et al.'s temporal loss
(:class:`TemporalObjective`). Each is called as ``stylizer(frame, warped, mask)`` with ``warped``/``mask`` ``None``
on the first frame of a shot."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Optional

import torch

from .config import TransferConfig
from .env import resolve_device
from .fast import FastStylizer
from .objective import Objective, prepare_style_targets
from .samples import load_style
from .transfer import initial_image, optimize
from .vgg import get_vgg

#: λ_temp: the engine's terms are relative errors (α·content + β·style ≈ 100 near the end of a run) and the temporal
#: term is a per-pixel mean in 0–255 units (≈ 1–100), so λ = 1 makes it count. Measured (6 frames, 96 px, 30 steps,
#: Starry Night): λ = 1 cut the warping error by 99 % at +2 % style distance; λ = 10 cost +28 % in style distance.
TEMPORAL_WEIGHT = 1.0
#: b: how much of the warped previous output the fast mode keeps on reliable pixels (0 = none, independent frames);
#: 0.6 cut flicker more but cost 11 % in style distance on the benchmark clip (zooms shrink the carried strokes).
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


class FastFrames:
    """Fast mode: ``y = network(frame)``; with a previous output, reliable pixels blend towards it by ``blend``.
    The previous output is warped bicubically: it is carried from frame to frame, and bilinear resampling would
    blur the strokes a little more at every step."""

    warp_mode = "bicubic"

    def __init__(self, model, blend: float = BLEND, device="auto"):
        if not 0.0 <= blend < 1.0:
            raise ValueError(f"blend must be in [0, 1), got {blend!r}")
        self.stylizer, self.blend = FastStylizer.load(model, device), blend
        self.width = self.stylizer.net.width

    def bytes_per_pixel(self) -> float:  # measured: ~30·width B/px for the network's activations, + flow buffers
        return 30.0 * self.width + 200.0

    def __call__(self, frame: torch.Tensor, warped: Optional[torch.Tensor], mask: Optional[torch.Tensor]) -> torch.Tensor:
        y = self.stylizer.stylize_tensor(frame)
        if warped is None:
            return y
        return y + self.blend * mask * (warped - y)


def optimized_bytes_per_pixel(optimizer: str = "lbfgs", lbfgs_history: int = 100) -> float:
    """Working memory per pixel of the optimization mode: VGG-19 forward + backward ≈ 2 kB/px (NOTES), L-BFGS 2
    vectors per history entry (Adam: its moments), flow buffers."""
    return 2000.0 + (24.0 * lbfgs_history if optimizer == "lbfgs" else 40.0) + 200.0


class OptimizedFrames:
    """Optimization mode: Gatys et al. per frame; with a previous output, start from it (warped) and add the
    :class:`TemporalObjective`."""

    warp_mode = "bilinear"

    def __init__(self, style, size: int, temporal_weight: float = TEMPORAL_WEIGHT, config=None, device="auto", **settings):
        if temporal_weight < 0 or not math.isfinite(temporal_weight):
            raise ValueError(f"temporal_weight must be a non-negative number, got {temporal_weight!r}")
        self.cfg = replace(config or TransferConfig(), size=size, progress=False, device=str(device), **settings).validate()
        self.device = resolve_device(device)
        self.temporal_weight = temporal_weight
        self.vgg = get_vgg(self.cfg.weights, self.device, self.cfg.pooling)
        self.targets = prepare_style_targets(style, self.vgg, self.cfg, size, self.device)
        first = style[0] if isinstance(style, (list, tuple)) else style
        self.style_image = load_style(first, size) if self.cfg.init == "style" else None

    def bytes_per_pixel(self) -> float:
        return optimized_bytes_per_pixel(self.cfg.optimizer, self.cfg.lbfgs_history)

    def __call__(self, frame: torch.Tensor, warped: Optional[torch.Tensor], mask: Optional[torch.Tensor]) -> torch.Tensor:
        content = frame.to(self.device)
        objective = Objective(self.vgg, content, self.targets, self.cfg)
        if warped is None:
            x0 = initial_image(self.cfg.init, content, self.style_image, self.cfg.seed)
        else:
            x0 = warped.to(self.device)
            objective = TemporalObjective(objective, x0, mask.to(self.device), self.temporal_weight)
        result = optimize(objective, x0, self.cfg, device=self.device)
        if result.stop_reason == "interrupted":  # the engine caught Ctrl-C: this frame is unfinished
            raise KeyboardInterrupt
        return result.tensor
