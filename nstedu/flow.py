r"""Optical flow between video frames, warping, occlusion masks and the warping error.

Why video needs this: stylizing each frame on its own puts the brush strokes somewhere new in every frame, so
the result flickers. Ruder, Dosovitskiy & Brox ("Artistic style transfer for videos", GCPR 2016) tie each
stylized frame to the previous one *moved along with the scene*: optical flow says where every pixel went,
:func:`warp` moves the previous stylized frame there, and a mask drops the pixels the flow cannot explain
(occlusions, disocclusions, motion boundaries). The same ingredients measure flicker (Lai et al., "Learning
Blind Video Temporal Consistency", ECCV 2018): the **warping error** of a stylized clip ``O`` is

.. math:: E_{warp} = \frac{1}{T-1} \sum_{t \ge 1} \frac{\sum_p M_t(p)\, \| O_t(p) - \hat O_{t-1}(p) \|^2}{3 \sum_p M_t(p)},
          \qquad \hat O_{t-1} = \mathrm{warp}(O_{t-1}, f_{t \to t-1})

with pixels in [0, 1], the flow and the mask ``M_t`` computed on the *input* frames.

Conventions (all tensors on any device):

* a frame is a float tensor ``(1, 3, H, W)`` in [0, 1] (or an ``H × W × 3`` uint8 array for :func:`estimate_flow`);
* a flow field ``f_{a→b}`` is a float tensor ``(1, 2, H, W)`` in pixels, channel 0 = x (right), 1 = y (down):
  pixel ``p`` of frame ``a`` is found at ``p + f(p)`` in frame ``b``;
* :func:`warp` samples *backwards*: ``warp(b, f_{a→b})(p) = b(p + f(p))`` — frame ``b`` seen from ``a``'s pixels.
  So the previous frame aligned with frame ``t`` is ``warp(prev, f_{t→t-1})`` (the *backward* flow).

Flow comes from OpenCV (DIS, Kroeger et al. 2016, or Farnebäck 2003; no weights to download). OpenCV is an
optional dependency (``pip install "nstedu[video]"``): it is imported only inside :func:`estimate_flow`, so the
pure-torch parts (:func:`warp`, :func:`consistency_mask`, :func:`warping_error`) work without it.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

METHODS = ("dis", "farneback")
DIS_PRESETS = ("ultrafast", "fast", "medium")


def _cv2():
    try:
        import cv2  # optional dependency: only optical flow needs it
    except ImportError:
        raise ImportError("optical flow needs OpenCV: pip install \"nstedu[video]\" (or opencv-python-headless)") from None
    return cv2


def _gray(frame) -> np.ndarray:
    """A frame (tensor ``(1, 3, H, W)`` in [0, 1], or ``H × W × 3`` / ``H × W`` uint8 array) → ``H × W`` uint8."""
    if isinstance(frame, torch.Tensor):
        t = frame.detach()
        t = t[0] if t.dim() == 4 else t
        frame = (t.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    frame = np.asarray(frame)
    if frame.ndim == 3:
        r, g, b = (frame[..., i].astype(np.float32) for i in range(3))
        frame = np.clip(0.299 * r + 0.587 * g + 0.114 * b + 0.5, 0, 255).astype(np.uint8)  # ITU-R BT.601 luma
    if frame.dtype != np.uint8:
        raise ValueError(f"frames for optical flow must be uint8 arrays or tensors in [0, 1], got {frame.dtype}")
    return np.ascontiguousarray(frame)


class FlowEstimator:
    """Dense optical flow with OpenCV: ``FlowEstimator("dis")(a, b)`` → ``f_{a→b}`` ``(1, 2, H, W)`` in pixels.

    ``method``: ``"dis"`` (Dense Inverse Search; fast, the default) or ``"farneback"``; ``preset``: DIS's
    ``"ultrafast"``, ``"fast"`` or ``"medium"`` (≈ 2 / 3 / 14 ms for 640×360 on one CPU core here).
    The estimator is reused frame after frame (OpenCV's DIS object is built once)."""

    def __init__(self, method: str = "dis", preset: str = "medium"):
        if method not in METHODS:
            raise ValueError(f"flow method must be one of {METHODS}, got {method!r}")
        if preset not in DIS_PRESETS:
            raise ValueError(f"flow preset must be one of {DIS_PRESETS}, got {preset!r}")
        self.method, self.preset = method, preset
        self._dis = None

    def __call__(self, a, b) -> torch.Tensor:
        cv2 = _cv2()
        ga, gb = _gray(a), _gray(b)
        if ga.shape != gb.shape:
            raise ValueError(f"frames differ in size: {ga.shape[::-1]} and {gb.shape[::-1]}")
        if self.method == "dis":
            if self._dis is None:
                self._dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{self.preset.upper()}"))
            flow = self._dis.calc(ga, gb, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1).unsqueeze(0).float()


def estimate_flow(a, b, method: str = "dis", preset: str = "medium") -> torch.Tensor:
    """``f_{a→b}`` ``(1, 2, H, W)`` in pixels between two frames (see :class:`FlowEstimator`)."""
    return FlowEstimator(method, preset)(a, b)


def _grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling positions ``p + f(p)`` as grid_sample's normalized ``(1, H, W, 2)`` grid (align_corners=True)."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    return torch.stack((2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1), dim=-1)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward warping: ``out(p) = image(p + flow(p))``, edges repeated outside the image.

    ``image`` ``(B, C, H, W)``; ``flow`` ``(B, 2, H, W)`` in pixels (x, y). ``warp(b, f_{a→b})`` shows frame
    ``b`` in frame ``a``'s coordinates; positions that fall outside ``b`` are marked by :func:`inside`.
    ``mode``: ``"bilinear"`` (default) or ``"bicubic"`` (sharper when a frame is warped again and again; may
    overshoot [0, 1] slightly: clamp the result)."""
    if image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape[-2:])} and flow {tuple(flow.shape[-2:])} differ in size")
    grid = _grid(flow.to(image.dtype))
    return F.grid_sample(image, grid.expand(image.shape[0], -1, -1, -1), mode=mode, padding_mode="border",
                         align_corners=True)


def inside(flow: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` float mask: 1 where ``p + flow(p)`` lies inside the image, 0 where it leaves it."""
    _, _, h, w = flow.shape
    g = _grid(flow)
    ok = (g[..., 0].abs() <= 1) & (g[..., 1].abs() <= 1)
    return ok.unsqueeze(1).to(flow.dtype)


#: Colour constancy: a pixel whose colour differs by more than this (mean |Δ| over R, G, B, pixels in [0, 1]) from
#: the previous *input* frame warped into it is not explained by the flow (see :func:`consistency_mask`).
COLOUR_TOLERANCE = 0.1


def consistency_mask(flow_fwd: torch.Tensor, flow_bwd: torch.Tensor, motion_boundaries: bool = True,
                     frame: Optional[torch.Tensor] = None, prev: Optional[torch.Tensor] = None,
                     colour_tolerance: float = COLOUR_TOLERANCE) -> torch.Tensor:
    r"""Where frame ``t`` can be predicted from frame ``t-1``: ``(1, 1, H, W)`` float, 1 = reliable, 0 = not.

    ``flow_fwd`` = :math:`f_{t-1→t}`, ``flow_bwd`` = :math:`b = f_{t→t-1}`. Ruder et al.'s tests, in frame ``t``:

    * **disocclusion** (forward and backward flow disagree), with :math:`\tilde f = \mathrm{warp}(f, b)`:
      :math:`|\tilde f + b|^2 > 0.01\,(|\tilde f|^2 + |b|^2) + 0.5`;
    * **motion boundary**: :math:`|\nabla b_x|^2 + |\nabla b_y|^2 > 0.01\,|b|^2 + 0.002`;
    * the backward flow leaves the image;

    and, when the input frames ``frame`` (``t``) and ``prev`` (``t-1``) are given, the flow's own confidence:

    * **colour constancy**: :math:`\mathrm{mean}_c |I_t - \mathrm{warp}(I_{t-1}, b)| >` ``colour_tolerance``.
      A small object moving fast (a butterfly over a slow background) is smoothed away by the flow: both consistency
      tests pass where it was and where it went, but the warped previous frame shows the wrong colours there. Those
      pixels, grown by one pixel (the object's anti-aliased edge), are let go: the temporal term does not hold them.
    """
    fwd_at_t = warp(flow_fwd, flow_bwd)
    b2 = flow_bwd.pow(2).sum(1, keepdim=True)
    occluded = (fwd_at_t + flow_bwd).pow(2).sum(1, keepdim=True) > 0.01 * (fwd_at_t.pow(2).sum(1, keepdim=True) + b2) + 0.5
    bad = occluded
    if motion_boundaries:
        dx = F.pad(flow_bwd[..., :, 1:] - flow_bwd[..., :, :-1], (0, 1, 0, 0))
        dy = F.pad(flow_bwd[..., 1:, :] - flow_bwd[..., :-1, :], (0, 0, 0, 1))
        bad = bad | ((dx.pow(2) + dy.pow(2)).sum(1, keepdim=True) > 0.01 * b2 + 0.002)
    if frame is not None and prev is not None:
        seen = warp(prev.to(flow_bwd), flow_bwd)
        wrong = (frame.to(flow_bwd) - seen).abs().mean(1, keepdim=True) > colour_tolerance
        bad = bad | (F.max_pool2d(wrong.float(), 3, stride=1, padding=1) > 0)
    return (~bad).to(flow_bwd.dtype) * inside(flow_bwd)


#: The still-scene test (:func:`settle`): window side in pixels (of the frames the flow is computed on) and the margin,
#: mean |Δ| over R, G, B in [0, 1], by which the estimated flow must explain the window better than no motion does:
#: one grey level of 8-bit video (a fractional warp also smooths the camera's noise, which lowers its error a little;
#: on the still wall of the cup footage half a level let 4-10 % of the wall keep a made-up motion).
STILL_WINDOW = 15
STILL_MARGIN = 1 / 255


def _window_error(a: torch.Tensor, b: torch.Tensor, window: int) -> torch.Tensor:
    """Mean |a − b| over R, G, B and a ``window × window`` neighbourhood of each pixel (edges repeated),
    ``(B, 1, H, W)``; the window's mean is taken along rows, then along columns."""
    r = window // 2
    diff = F.pad((a - b).abs().mean(1, keepdim=True), (r, r, r, r), mode="replicate")
    return F.avg_pool2d(F.avg_pool2d(diff, (1, window), stride=1), (window, 1), stride=1)


def settle(flow: torch.Tensor, a: torch.Tensor, b: torch.Tensor, window: int = STILL_WINDOW,
           margin: float = STILL_MARGIN) -> torch.Tensor:
    """``f_{a→b}`` set to zero wherever *no motion* explains frame ``a`` as well as the flow does: where the mean
    |a − b| over a ``window``-pixel neighbourhood is at most ``margin`` above the mean |a − warp(b, flow)| there.

    Why: DIS fills a region without texture (a white wall behind a moving hand) with about a pixel of made-up motion
    (on the held-out cup footage a median of 0.7 px where Farnebäck finds 0.001 px). Carried along it, the strokes
    of a still wall swim from frame to frame, and the consistency tests let go of a fifth of the wall, whose strokes
    then flicker as the network redraws them. Where the frames themselves did not change, no motion is the simpler
    explanation. The window is wide (15 px at the flow's 320 px) so that a plain object that does move (a black cup)
    still shows its motion at its edges and highlights: with 5 px its inside was held still while it moved."""
    a, b = a.to(flow), b.to(flow)
    e = _window_error(torch.cat((a, a)), torch.cat((warp(b, flow), b)), window)   # both in one pass
    e_flow, e_still = e[:len(a)], e[len(a):]
    return flow * (e_still > e_flow + margin).to(flow.dtype)


def unchanged(a: torch.Tensor, b: torch.Tensor, window: int = STILL_WINDOW, margin: float = STILL_MARGIN,
              pixel: float = 8 / 255) -> torch.Tensor:
    """Where frame ``a`` shows what ``b`` showed at the same place: ``(B, 1, H, W)`` float, 1 where the mean |a − b|
    over a ``window``-pixel neighbourhood is at most ``margin`` *and* no pixel of the 3 × 3 around it changed by more
    than ``pixel`` (the window's mean alone would miss a small object: a 2 × 2 one at 10 % contrast moves a 15-px
    window's mean by 0.2 grey levels). What the fast video mode holds (:class:`nstedu.video_frames.FastFrames`)."""
    b = b.to(a)
    near = _window_error(a, b, window) <= margin
    big = (a - b).abs().amax(1, keepdim=True) > pixel
    return (near & ~(F.max_pool2d(big.to(a.dtype), 3, stride=1, padding=1) > 0)).to(a.dtype)


#: Longest side at which the video mode computes optical flow and the reliability mask (:class:`PairFlow`): larger
#: frames are shrunk for the flow, which is then upsampled. Flow fields are smooth, so little is lost; at 640×360 the
#: two DIS calls and the mask cost about a quarter as much.
FLOW_SIDE = 320


def shrunk_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    """``(h, w)`` scaled to a longest side of ``max_side`` (at least 8 px each)."""
    k = max_side / max(h, w)
    return max(8, round(h * k)), max(8, round(w * k))


def shrink(frame: torch.Tensor, size) -> torch.Tensor:
    """``frame`` resized to ``size`` = (h, w), antialiased, in [0, 1]."""
    return F.interpolate(frame, size=size, mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)


def grow_mask(mask: torch.Tensor, size) -> torch.Tensor:
    """A 0/1 mask computed on a shrunk copy, upsampled to ``size`` = (h, w): 1 only where every shrunk pixel that
    contributes (bilinearly) was 1."""
    return (F.interpolate(mask, size=size, mode="bilinear", align_corners=False) > 0.999).to(mask.dtype)


class PairFlow:
    """``PairFlow(estimator)(cur, prev)`` → ``(f_{t→t-1}, f_{t-1→t}, mask)`` at the frames' size, computed on
    copies shrunk to a longest side of ``max_side`` (None = full size) and upsampled: flows bilinearly (and scaled),
    the :func:`consistency_mask` bilinearly and kept only where every contributing pixel was reliable. The shrunk
    copy of each frame is made once (the previous call's ``cur`` is this call's ``prev``). ``still``: both flows
    go through :func:`settle` (no motion where the frames did not change) before the mask is computed."""

    def __init__(self, estimator: "FlowEstimator", max_side: Optional[int] = FLOW_SIDE, still: bool = True):
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 16):
            raise ValueError(f"flow size must be a whole number of pixels ≥ 16 or None, got {max_side!r}")
        self.estimator, self.max_side, self.still, self._last = estimator, max_side, still, None

    def _flows(self, a: torch.Tensor, b: torch.Tensor):
        """``(f_{a→b}, f_{b→a}, mask in a)`` at the size of ``a`` and ``b``."""
        bwd, fwd = self.estimator(a, b), self.estimator(b, a)
        if self.still:
            bwd, fwd = settle(bwd, a, b), settle(fwd, b, a)
        return bwd, fwd, consistency_mask(fwd, bwd, frame=a, prev=b)

    def _small(self, frame: torch.Tensor, size) -> torch.Tensor:
        if self._last is not None and self._last[0] is frame:
            return self._last[1]
        return shrink(frame, size)

    def __call__(self, cur: torch.Tensor, prev: torch.Tensor):
        h, w = cur.shape[-2:]
        if self.max_side is None or max(h, w) <= self.max_side:
            return self._flows(cur, prev)
        size = shrunk_size(h, w, self.max_side)
        a, b = self._small(cur, size), self._small(prev, size)
        self._last = (cur, a)
        bwd, fwd, mask = self._flows(a, b)
        scale = torch.tensor([w / size[1], h / size[0]]).view(1, 2, 1, 1)

        def up(f):
            return F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False) * scale
        return up(bwd), up(fwd), grow_mask(mask, (h, w)) * inside(up(bwd))


def warping_error(frame: torch.Tensor, prev: torch.Tensor, flow_bwd: torch.Tensor,
                  mask: Optional[torch.Tensor] = None) -> float:
    r"""Mean squared difference between ``frame`` and ``prev`` warped into it, over the pixels of ``mask``.

    :math:`\sum_p M(p)\,\|O_t(p) - \mathrm{warp}(O_{t-1}, b)(p)\|^2 / (3 \sum_p M(p))` for frames
    ``(1, 3, H, W)`` in [0, 1] and ``flow_bwd`` = :math:`b = f_{t→t-1}` computed on the *input* frames;
    ``mask`` ``(1, 1, H, W)`` (default: :func:`inside`, i.e. every pixel the flow keeps in the image). The mean over
    a clip's consecutive pairs is the clip's warping error (lower = less flicker; 0 = perfectly consistent)."""
    frame, prev = frame.float(), prev.float()
    mask = inside(flow_bwd) if mask is None else mask
    mask = mask.to(frame.device, frame.dtype)
    diff = (frame - warp(prev, flow_bwd.to(frame.device))).pow(2).sum(1, keepdim=True) * mask
    n = float(mask.sum()) * frame.shape[1]
    return float(diff.sum()) / n if n > 0 else 0.0


def flow_to_rgb(flow: torch.Tensor, max_magnitude: Optional[float] = None) -> torch.Tensor:
    """A picture of a flow field, ``(1, 3, H, W)`` in [0, 1]: hue = direction, saturation = speed (the Middlebury
    colour wheel idea); ``max_magnitude`` pixels is full saturation (default: the largest in the field)."""
    from matplotlib.colors import hsv_to_rgb  # heavy: only this picture needs matplotlib

    fx, fy = flow[0, 0].cpu(), flow[0, 1].cpu()
    mag = torch.sqrt(fx ** 2 + fy ** 2)
    top = max_magnitude or max(float(mag.max()), 1e-6)
    hue = (torch.atan2(-fy, -fx) / (2 * torch.pi) + 0.5).numpy()
    sat = (mag / top).clamp(0, 1).numpy()
    rgb = hsv_to_rgb(np.stack([hue, sat, np.ones_like(hue)], axis=-1))
    return torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
