"""Scene cuts: where a video's temporal state must start again.

At a hard cut the previous frame explains nothing of the next one, so carrying the previous *stylized* frame across
it paints the old shot's layout and palette into the new one (a ghost that fades over several frames in fast mode
and persists in optimization mode, which starts from the warped previous result). :func:`nstedu.video.stylize_video`
therefore stylizes the first frame of each shot as a first frame. A pair of consecutive input frames is a cut when

* the optical flow cannot explain most of the new frame: the share of pixels failing the reliability mask
  (forward-backward consistency, motion boundaries, colour constancy; :func:`nstedu.flow.consistency_mask`) is
  above :data:`UNRELIABLE`, **and** the colours changed: the total-variation distance of the two frames' RGB
  histograms (8 bins per channel, 0 = the same colours, 1 = none in common) is above :data:`HISTOGRAM`;
* or the flow explains almost nothing at all (share above :data:`UNRELIABLE_ALONE`), whatever the colours.

Measured on real footage, 320 px wide: OpenCV's sample videos ``Megamind.avi`` (a 270-frame animated trailer with
four hard cuts) and ``vtest.avi`` (795 frames of street CCTV) from Debian's ``opencv-doc`` package (not shipped;
``benchmarks/bench_video.py --real`` checks the shipped clip with a cut). Inside a shot at most 19 % of the pixels
fail the mask (99th percentile 14 %) and the histogram distance stays below 0.02, while the four hard cuts of the
trailer fail 92–99 % of the pixels. Their histogram distances are only 0.14–0.44: three
are shot/reverse-shot cuts in the same room and light, so colour alone would miss them; each threshold sits well
between the two groups. (Where the flow loses more than 80 % of a frame inside a shot, say a whip pan, restarting is
right too: nothing reliable is left to carry.)

``cuts`` (``--cuts``): ``"auto"`` (detect), ``"none"`` (never restart), or the frame indices that start a new shot
(``[120, 233]`` or ``"120,233"``; frame 0 always starts one).
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

import torch

#: Cut when more than this share of the new frame's pixels fail the reliability mask and the colours changed (…)
UNRELIABLE = 0.5
#: (…) by more than this histogram distance, or when more than :data:`UNRELIABLE_ALONE` fail whatever the colours.
HISTOGRAM = 0.08
UNRELIABLE_ALONE = 0.8
BINS = 8


def colour_histogram(x: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """The joint RGB histogram of a frame ``(1, 3, H, W)`` in [0, 1]: ``bins``³ shares that sum to 1 (float64)."""
    q = (x[0].clamp(0, 1) * (bins - 1e-6)).long().reshape(3, -1)
    idx = (q[0] * bins + q[1]) * bins + q[2]
    return torch.bincount(idx, minlength=bins ** 3).double() / idx.numel()


def histogram_distance(a: torch.Tensor, b: torch.Tensor, bins: int = BINS) -> float:
    """Total-variation distance of the joint RGB histograms of two frames ``(1, 3, H, W)`` in [0, 1]: half the sum of
    absolute differences of the normalized histograms (``bins`` per channel); 0 = same colours, 1 = disjoint.
    Either frame may be given as its :func:`colour_histogram` instead."""
    def hist(x):
        return x if x.dim() == 1 else colour_histogram(x, bins)
    return float(0.5 * (hist(a) - hist(b)).abs().sum())


def cut_scores(prev: torch.Tensor, cur: torch.Tensor, mask: torch.Tensor) -> dict:
    """``{"unreliable": share of pixels failing ``mask`` (1 = reliable), "histogram": histogram_distance}``
    (``prev``/``cur``: frames or their :func:`colour_histogram`)."""
    return {"unreliable": float(1.0 - mask.float().mean()), "histogram": histogram_distance(prev, cur)}


def is_cut(scores: dict) -> bool:
    """The rule of the module docstring on :func:`cut_scores`' values."""
    u, h = scores["unreliable"], scores["histogram"]
    return (u > UNRELIABLE and h > HISTOGRAM) or u > UNRELIABLE_ALONE


def parse_cuts(cuts: Union[str, Iterable[int], None]) -> Union[str, frozenset]:
    """``"auto"``, ``"none"`` or a frozenset of frame indices from ``cuts`` (a str such as ``"12,40"`` or ints).
    Raises ValueError (one line) for anything else."""
    if cuts is None:
        return "none"
    if isinstance(cuts, str):
        text = cuts.strip().lower()
        if text in ("auto", "none"):
            return text
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            raise ValueError(f"cuts must be 'auto', 'none' or frame numbers such as 120,233; got {cuts!r}")
        return frozenset(int(p) for p in parts)
    frames = list(cuts)
    if not all(isinstance(f, int) and not isinstance(f, bool) and f >= 0 for f in frames):
        raise ValueError(f"cuts must be non-negative frame numbers, got {cuts!r}")
    return frozenset(frames)


class ShotBoundaries:
    """Decides frame by frame whether frame ``i`` starts a new shot, and keeps what it found.

    ``ShotBoundaries("auto")(i, prev, cur, mask)`` → bool; ``found`` lists ``(i, scores)`` of every cut
    (``scores`` None for cuts given by number; a resumed video run hands in the list it saved)."""

    def __init__(self, cuts: Union[str, Iterable[int], None] = "auto"):
        self.spec = parse_cuts(cuts)
        self.found: list = []
        self._last = None   # (frame, its colour histogram): each frame's histogram is computed once, not twice

    def __call__(self, i: int, prev: Optional[torch.Tensor], cur: torch.Tensor,
                 mask: Optional[torch.Tensor]) -> bool:
        if i == 0 or prev is None:
            return False   # the first frame (of the clip or of a resumed run's state) needs no decision
        if self.spec == "none" or (self.spec == "auto" and mask is None):
            return False   # (no mask: no flow was computed, as for independent frames; nothing carried to restart)
        if isinstance(self.spec, frozenset):
            cut, scores = i in self.spec, None
        else:
            before = self._last[1] if self._last is not None and self._last[0] is prev else prev
            self._last = (cur, colour_histogram(cur))
            scores = cut_scores(before, self._last[1], mask)
            cut = is_cut(scores)
        if cut:
            self.found.append((i, scores))
        return cut

    def describe(self) -> str:
        """One line for the run's notes: where the shots start."""
        if not self.found:
            return "scene cuts: none found" if self.spec == "auto" else ""
        frames = ", ".join(str(i) for i, _ in self.found)
        how = "detected" if self.spec == "auto" else "given"
        return f"scene cuts ({how}): a new shot starts at frame {frames}; each is stylized as a first frame"
