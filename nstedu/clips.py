"""Short test clips: synthetic ones made in code from the bundled photos (a camera pan, a zoom and a moving
object), and two short *real* clips shipped with the package.

    from nstedu.clips import make_synthetic_clip, synthetic_frames, real_clip, real_clip_with_cut
    make_synthetic_clip("clip.mp4", frames=48, width=160, height=96)   # with a 440 Hz tone as its audio
    for frame in synthetic_frames(12, 64, 40): ...                      # H × W × 3 uint8 arrays, one at a time
    real_clip()                    # Path of a 32-frame 320×240 real clip (hand-held camera, moving box)
    path, cut = real_clip_with_cut()   # 40 real frames, two shots: frame ``cut`` (20) is the first after the cut

The synthetic clips (used by the tests, notebook 09 and ``benchmarks/bench_video.py``) have known, repeatable
motion, nothing is downloaded, and every frame is made only when asked for (a 60 s clip never sits in memory).
Synthetic motion also flatters flicker measures: real footage has motion blur, noise, lighting
changes, hands and scene cuts, so ``benchmarks/bench_video.py --real`` measures on the real clips too. The real
clips are frames of OpenCV's tutorial videos (Apache-2.0 AND BSD-3-Clause; ``nstedu/data/SOURCES.md``; rebuilt by
``tools/make_real_clips.py``).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from . import samples
from .samples import _data_dir
from .videoio import _av, pick_encoder


#: index of the first frame after the hard cut in :func:`real_clip_with_cut` (frames 0–19: a cup, 20–39: a box)
REAL_CUT_FRAME = 20


def real_clip() -> Path:
    """A real 32-frame clip, 320×240 H.264 at 30 frames/s, no audio: a hand-held camera filming a hand that tilts a
    printed box (camera motion, object motion, occlusion by the hand). Path inside the installed package."""
    return _data_dir() / "real_box.mp4"


def real_clip_with_cut() -> tuple[Path, int]:
    """A real 40-frame clip with one hard cut, 320×240 H.264 at 30 frames/s: ``(path, first frame after the cut)``.
    Frames 0–19: a hand tilting a black cup before a white wall; frames 20–39: the box of :func:`real_clip` (a
    later part of the same footage). A temporal method should start afresh at the cut, and a flicker measure should
    leave the pair (19, 20) out."""
    return _data_dir() / "real_cut.mp4", REAL_CUT_FRAME


def synthetic_frames(frames: int = 48, width: int = 160, height: int = 96, photo: str = "chelsea",
                     thing: str = "coffee") -> Iterator[np.ndarray]:
    """A test clip made in code from bundled photos, one ``height × width × 3`` uint8 frame at a time.

    A 48-frame cycle, repeated: the camera pans right across ``photo`` (frames 0–15), zooms in (16–31), then pans
    back while zooming out (32–47), about 1.6 % of the width per frame; a disc cut from ``thing`` crosses the
    frame on its own path once per cycle (so there are occlusions and disocclusions)."""
    big = samples.load(photo, 2 * max(width, height)).convert("RGB")
    disc_d = max(8, height // 3)
    disc = samples.load(thing, disc_d * 2).convert("RGB").resize((disc_d, disc_d), Image.LANCZOS)
    alpha = Image.new("L", (disc_d, disc_d), 0)
    ImageDraw.Draw(alpha).ellipse((0, 0, disc_d - 1, disc_d - 1), fill=255)
    bw, bh = big.size
    for i in range(frames):
        u = i % 48
        pan = min(u, 16) / 16 if u < 32 else 1 - (u - 32) / 16            # 0 → 1, hold, 1 → 0
        zoom = 0.0 if u < 16 else ((u - 16) / 16 if u < 32 else 1 - (u - 32) / 16)
        cw = min(0.8 * bw, 0.95 * bh * width / height) * (1 - 0.25 * zoom)  # a smaller window = zoomed in
        ch = cw * height / width
        cx, cy = bw * (0.4 + 0.2 * pan), bh / 2
        view = big.resize((width, height), Image.BICUBIC, box=(cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2))
        x = round(-disc_d + u / 47 * (width + disc_d))
        y = round(height * (0.6 - 0.3 * u / 47) - disc_d / 2)
        view.paste(disc, (x, y), alpha)
        yield np.asarray(view, dtype=np.uint8)


def write_video(path, frames, fps: float = 24, audio_hz: Optional[float] = None, codec: Optional[str] = None,
                pts: Optional[Sequence[int]] = None) -> Path:
    """Write ``frames`` (iterable of ``H × W × 3`` uint8) to ``path`` at ``fps`` (or at timestamps ``pts`` in
    units of 1/``fps``), optionally with a mono sine tone of ``audio_hz`` Hz (AAC at 44.1 kHz; Opus at 48 kHz in
    ``.webm``, which cannot hold AAC). The container is the extension's (.mp4, .mov, .mkv, .webm, .avi…), the codec
    :func:`nstedu.videoio.pick_encoder`'s for it. For tests and examples."""
    av = _av()
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec or pick_encoder(suffix=path.suffix)[0], rate=rate)
        vs.pix_fmt = "yuv420p"
        vs.options = {} if vs.codec_context.name.startswith("libvpx") else {"bf": "0"}
        vs.codec_context.time_base = 1 / rate
        opus = "aac" not in out.supported_codecs
        sr = 48000 if opus else 44100
        aus = out.add_stream("libopus" if opus else "aac", rate=sr, layout="mono") if audio_hz else None
        n = 0
        for n, rgb in enumerate(frames):
            if n == 0:
                vs.height, vs.width = rgb.shape[:2]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = (pts[n] if pts is not None else n), 1 / rate
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        if aus is not None:
            seconds = ((pts[n] if pts is not None else n) + 1) / float(rate)
            t = np.arange(int(seconds * sr)) / sr
            samples = (0.3 * np.sin(2 * np.pi * audio_hz * t)).astype(np.float32)[None]
            for k in range(0, samples.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(samples[:, k:k + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = sr, k
                out.mux(aus.encode(frame))
            out.mux(aus.encode())
    return path


def make_synthetic_clip(path, frames: int = 48, width: int = 160, height: int = 96, fps: float = 24,
                        audio: bool = True, **kwargs) -> Path:
    """Write :func:`synthetic_frames` to ``path`` (with a 440 Hz tone when ``audio``); returns the path."""
    return write_video(path, synthetic_frames(frames, width, height, **kwargs), fps, 440.0 if audio else None)
