r"""An *independent* warping error for bench_video: the flicker of a stylized clip, measured with tools the engine
does not use (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018, §5.1):

.. math:: E_{warp} = \frac{1}{|P|} \sum_{t \in P} \frac{\sum_p M_t(p)\, \| O_t(p) - \hat O_{t-1}(p) \|^2}{3 \sum_p M_t(p)},
          \qquad \hat O_{t-1}(p) = O_{t-1}(p + b_t(p))

* ``O_t``: the stylized frames, pixels in [0, 1] (``3`` = channels: a mean over values, as :mod:`nstedu.flow` does);
* ``b_t = f_{t→t-1}``, ``f_t = f_{t-1→t}``: **Farnebäck** flow (OpenCV ``calcOpticalFlowFarneback``, parameters
  in :data:`FARNEBACK`) on the *original* frames' luma — the engine uses DIS by default and its own
  :func:`nstedu.flow.warp` / :func:`nstedu.flow.consistency_mask`; here the warp is ``cv2.remap`` and the mask is
  written afresh, so the engine is not graded with its own answer key;
* ``M_t``: the forward-backward check of Sundaram et al. (2010), :math:`|f_t(p + b_t(p)) + b_t(p)|^2 \le
  0.01\,(|f_t(p + b_t(p))|^2 + |b_t(p)|^2) + 0.5` (1 = visible in both frames), and ``p + b_t(p)`` inside the image;
* ``P``: the consecutive pairs ``(t-1, t)``, less every ``t`` in ``cuts`` (the first frame after a scene cut: no
  flow links two shots, so such a pair measures the cut, not flicker).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

#: Farnebäck's parameters (pyramid scale, levels, window, iterations, polynomial size and sigma, flags): 4 levels
#: and a 21-px window follow a few pixels of motion per frame at 320×240 (OpenCV's sample uses 3 and 15).
FARNEBACK = dict(pyr_scale=0.5, levels=4, winsize=21, iterations=5, poly_n=7, poly_sigma=1.5, flags=0)


@dataclass
class WarpingError:
    """``mean`` over the pairs scored; ``pairs``: {t: error of the pair (t-1, t)}; ``coverage``: mean fraction of
    pixels the mask kept; ``skipped``: the pairs left out (cuts)."""

    mean: float
    pairs: dict = field(default_factory=dict)
    coverage: float = 0.0
    skipped: list = field(default_factory=list)


def as_float(frame) -> np.ndarray:
    """``H × W × 3`` uint8 (0–255) or float array in [0, 1], or a torch tensor ``(1, 3, H, W)`` in [0, 1] →
    ``H × W × 3`` float32 in [0, 1]."""
    if hasattr(frame, "detach"):  # a torch tensor from stylize_video's on_frame
        t = frame.detach().float().cpu()
        frame = (t[0] if t.dim() == 4 else t).permute(1, 2, 0).numpy()
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    return np.clip(frame.astype(np.float32), 0.0, 1.0)


def luma(frame) -> np.ndarray:
    """``H × W`` uint8 luma of a frame (any form :func:`as_float` takes)."""
    return cv2.cvtColor(np.round(as_float(frame) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def farneback(a, b) -> np.ndarray:
    """Flow ``f_{a→b}``, ``H × W × 2`` float32 in pixels (x, y): pixel ``p`` of ``a`` is at ``p + f(p)`` in ``b``."""
    return cv2.calcOpticalFlowFarneback(luma(a), luma(b), None, **FARNEBACK)


def backward_warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``out(p) = image(p + flow(p))`` (bilinear, ``cv2.remap``) and the boolean ``H × W`` mask of the ``p``
    whose ``p + flow(p)`` lies inside the image."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return out, inside


def visible_mask(fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    """Boolean ``H × W`` mask in frame ``t`` from ``fwd`` = f_{t-1→t} and ``bwd`` = f_{t→t-1}: the
    forward-backward check (Sundaram et al. 2010) and the backward flow staying inside the image."""
    fwd_at_t, inside = backward_warp(fwd, bwd)
    mismatch = ((fwd_at_t + bwd) ** 2).sum(-1)
    return (mismatch <= 0.01 * ((fwd_at_t ** 2).sum(-1) + (bwd ** 2).sum(-1)) + 0.5) & inside


def pair_error(original_prev, original, stylized_prev, stylized) -> tuple[float, float]:
    """Warping error of one pair and the fraction of pixels scored. Originals give the flow; stylized frames
    (same size) are compared. Any form :func:`as_float` takes."""
    o_prev, o = as_float(stylized_prev), as_float(stylized)
    if o_prev.shape != o.shape or luma(original).shape != o.shape[:2]:
        raise ValueError(f"frames differ in size: originals {luma(original).shape[::-1]}, stylized "
                         f"{o_prev.shape[1::-1]} and {o.shape[1::-1]}: resize the originals (read_frames(size=...))")
    bwd, fwd = farneback(original, original_prev), farneback(original_prev, original)
    mask = visible_mask(fwd, bwd)
    warped, _ = backward_warp(o_prev, bwd)
    n = int(mask.sum())
    if n == 0:
        return 0.0, 0.0
    return float(((o - warped) ** 2).sum(-1)[mask].sum() / (3 * n)), n / mask.size


def warping_error(originals: Sequence, stylized: Sequence, cuts: Iterable[int] = ()) -> WarpingError:
    """:math:`E_{warp}` of the stylized clip ``stylized`` whose input frames were ``originals`` (equal counts and
    sizes; arrays or tensors as :func:`as_float` takes), leaving out each pair ``(t-1, t)`` with ``t`` in ``cuts``."""
    if len(originals) != len(stylized):
        raise ValueError(f"{len(originals)} original frames but {len(stylized)} stylized ones")
    cuts = set(cuts)
    pairs, covered, skipped = {}, [], []
    for t in range(1, len(stylized)):
        if t in cuts:
            skipped.append(t)
            continue
        pairs[t], cover = pair_error(originals[t - 1], originals[t], stylized[t - 1], stylized[t])
        covered.append(cover)
    mean = sum(pairs.values()) / len(pairs) if pairs else float("nan")
    return WarpingError(mean, pairs, sum(covered) / len(covered) if covered else 0.0, skipped)


def change_ratio(originals: Sequence, stylized: Sequence, cuts: Iterable[int] = ()) -> float:
    r"""Flow-free flicker: :math:`\overline{|O_t - O_{t-1}|} \,/\, \overline{|I_t - I_{t-1}|}`, the mean absolute
    frame-to-frame change of the stylized clip over that of its input (same pairs, ``cuts`` left out; pixels in
    [0, 1], sizes equal). Lower = steadier. Compare runs on the same clip only: a stylization with more texture than
    the footage changes more under the same motion, so 1 is no target (a still output scores 0)."""
    cuts = set(cuts)
    ts = [t for t in range(1, len(stylized)) if t not in cuts]
    ours = sum(float(np.abs(as_float(stylized[t]) - as_float(stylized[t - 1])).mean()) for t in ts)
    theirs = sum(float(np.abs(as_float(originals[t]) - as_float(originals[t - 1])).mean()) for t in ts)
    return ours / theirs if theirs > 0 else float("nan")


#: :func:`still_flicker`: a pixel is still when no pixel within ``STILL_RADIUS`` of it changed by ``STILL_LEVELS``
#: or more (of 255) in any channel between the two input frames.
STILL_RADIUS, STILL_LEVELS = 4, 3


def still_pixels(original_prev, original) -> np.ndarray:
    """Boolean ``H × W`` mask of the still pixels of a pair of input frames (:data:`STILL_RADIUS`, :data:`STILL_LEVELS`)."""
    a, b = (np.round(as_float(f) * 255).astype(np.int16) for f in (original_prev, original))
    change = np.abs(b - a).max(-1).astype(np.uint8)
    k = 2 * STILL_RADIUS + 1
    return cv2.dilate(change, np.ones((k, k), np.uint8)) < STILL_LEVELS


def still_flicker(originals: Sequence, stylized: Sequence, cuts: Iterable[int] = ()) -> tuple[float, float]:
    r"""Flicker where the true motion is known, without any flow estimate: on footage from a fixed camera a pixel
    whose neighbourhood did not change between two input frames (:func:`still_pixels`) did not move, so there the
    warping error with the *true* flow is the mean squared frame-to-frame change :math:`\|O_t - O_{t-1}\|^2 / 3`.
    Returns (that mean over the still pixels of all pairs, the mean fraction of pixels that were still); ``nan``
    when no pixel was still (a moving camera). The pairs of ``cuts`` are left out."""
    cuts, total, count, shares = set(cuts), 0.0, 0, []
    for t in range(1, len(stylized)):
        if t in cuts:
            continue
        still = still_pixels(originals[t - 1], originals[t])
        shares.append(float(still.mean()))
        diff = ((as_float(stylized[t]) - as_float(stylized[t - 1])) ** 2).sum(-1)
        total, count = total + float(diff[still].sum()) / 3, count + int(still.sum())
    return (total / count if count else float("nan")), (float(np.mean(shares)) if shares else 0.0)


def read_frames(path, size: Optional[tuple[int, int]] = None, max_frames: Optional[int] = None) -> list[np.ndarray]:
    """The frames of a video file as ``H × W × 3`` uint8 arrays (PyAV), resized to ``size`` = (width, height) with
    area averaging when given."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            if size is not None and rgb.shape[1::-1] != tuple(size):
                rgb = cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_AREA)
            frames.append(rgb)
            if max_frames is not None and len(frames) >= max_frames:
                break
    return frames
