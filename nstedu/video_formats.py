"""Video containers and what a video file holds: the output formats nstedu writes, the checks made before any work,
and :func:`probe` (size, frame rate, frame count, audio) of an input.

    check_output("out.webm")                      # known extension, folder writable: before any work
    info = probe("clip.mkv")                      # VideoInfo: size, fps, frame count, audio, variable rate…

Output containers (:data:`OUTPUT_FORMATS`): ``.mp4`` and ``.mov`` (H.264 video, audio copied when it is AAC, MP3,
Opus…), ``.mkv`` (H.264, any audio copied) and ``.webm`` (VP9 video, Opus or Vorbis audio copied); audio the
container cannot hold is re-encoded to its :data:`AUDIO_CODECS` codec (:mod:`nstedu.videoio` writes them).

**Frame rate and frame count.** MP4 and MOV store every frame's duration in the header, so the frame count and the
average rate are read, not guessed. Matroska (``.mkv``, ``.webm``) stores neither: its timestamps are in
milliseconds, and a track's rate is only its optional ``DefaultDuration``, which the muxer writes from the rate it is
given. So for a file without a frame count :func:`probe` counts the video packets (a demux, no decoding) and takes
the duration from their timestamps; a declared rate more than 2 % off frames/duration is replaced by the measured
one (nstedu before issue 25 declared 1/time base, e.g. 12288 fps, in its ``.mkv`` outputs).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np

#: Output containers by extension (the name FFmpeg knows them by).
OUTPUT_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
#: The audio codec each container gets when it cannot hold the source's (then the audio is re-encoded).
AUDIO_CODECS = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus"}
STILL_IMAGE_FORMATS = {"image2", "gif_pipe"}
#: How far (relative) a declared frame rate may be from frames/duration before the measured one is used.
RATE_TOLERANCE = 0.02


class VideoError(ValueError):
    """A clear, one-line problem with a video file (names the file and the problem)."""


def _av():
    try:
        import av  # optional dependency: only video needs it
    except ImportError:
        raise ImportError("video needs PyAV: pip install \"nstedu[video]\" (or av)") from None
    return av


def check_output(path) -> Path:
    """Check before any work that ``path`` can be written as a video: known extension, its folder creatable and
    writable (a test file is created and removed). Raises :class:`VideoError` naming the path."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise VideoError(f"output '{path}': unknown video extension '{path.suffix}' (use {', '.join(OUTPUT_FORMATS)})")
    if path.is_dir():
        raise VideoError(f"output '{path}': is a directory; give a file name such as {path / 'out.mp4'}")
    blocker = next((q for q in path.parents if q.exists() and not q.is_dir()), None)
    if blocker is not None:
        raise VideoError(f"output '{path}': '{blocker}' is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe_file = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".check", dir=path.parent)
        os.close(fd)
        os.unlink(probe_file)
    except OSError as e:
        raise VideoError(f"output '{path}': cannot write there ({e.strerror or e})") from None
    return path


@dataclass
class VideoInfo:
    """What :func:`probe` found: frame size, average frame rate, the frame count (read from the header, or counted
    when the container has none), duration in seconds, codec names, whether the frame rate varies, and the video
    stream's time base."""

    path: str
    width: int
    height: int
    fps: Fraction
    frames: int
    duration: float
    codec: str
    audio_codec: Optional[str]
    variable_rate: bool
    time_base: Fraction


def probe(path, check_packets: int = 300) -> VideoInfo:
    """Open ``path``, decode its first frame and read the timestamps of its video packets (the first
    ``check_packets`` when the header has the frame count, all of them when it has not, as in Matroska).

    Raises :class:`VideoError` (one line, naming the file) for a missing file, something that is not a video
    (text, a still image), no video stream, a codec this FFmpeg build cannot decode, and a video without frames."""
    av = _av()
    label = f"video '{path}'"
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{label}: no such file")
    if p.is_dir():
        raise VideoError(f"{label}: is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoError(f"{label}: file is empty (0 bytes)")
    try:
        container = av.open(str(p))
    except av.error.EOFError:
        raise VideoError(f"{label}: has no frames (the file ends before the first one)") from None
    except av.error.FFmpegError as e:
        raise VideoError(f"{label}: not a video file (FFmpeg: {getattr(e, 'strerror', None) or e})") from None
    with container:
        if container.format.name in STILL_IMAGE_FORMATS or container.format.name.endswith("_pipe"):
            raise VideoError(f"{label}: is a still image ({container.format.name}), not a video; use `nstedu stylize`")
        if not container.streams.video:
            raise VideoError(f"{label}: has no video stream" + (" (audio only)" if container.streams.audio else ""))
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise VideoError(f"{label}: unsupported video codec (this FFmpeg build has no decoder for it); "
                             "convert it first, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`")
        codec = stream.codec_context.name
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as e:
            raise VideoError(f"{label}: cannot decode its {codec} video ({getattr(e, 'strerror', None) or e})") from None
        if first is None:
            raise VideoError(f"{label}: has a video stream ({codec}) but no frames")
        width, height = first.width, first.height
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        tb = Fraction(stream.time_base or Fraction(1, 1000))
        fps = Fraction(stream.average_rate or stream.guessed_rate or Fraction(25))
        duration = float(stream.duration * tb) if stream.duration else (container.duration or 0) / 1e6
        frames = int(stream.frames)
    count, starts, end, variable = _scan_packets(p, None if frames else check_packets)
    if not frames:  # no frame count in the header (Matroska, raw streams): the packets counted are the frames
        frames = count or max(1, round(duration * float(fps)))
        if len(starts) >= 2 and starts[-1] > starts[0]:
            if end > starts[-1]:   # the last packet has a duration: frames / (first start to last end)
                duration = float((end - starts[0]) * tb)
                measured = len(starts) / duration
            else:                  # from the gaps between frames
                measured = (len(starts) - 1) / float((starts[-1] - starts[0]) * tb)
                duration = frames / measured
            if abs(float(fps) / measured - 1) > RATE_TOLERANCE:
                fps = Fraction(measured).limit_denominator(1001)
    return VideoInfo(str(p), width, height, fps, frames, duration, codec, audio, variable, tb)


def _scan_packets(path: Path, limit: Optional[int]) -> tuple[int, list, int, bool]:
    """``(video packets, their timestamps sorted, the end of the last one, variable rate)`` from the first ``limit``
    video packets (all when ``None``). The rate is variable when the gaps between the first 300 timestamps differ by
    more than 10 % (or one tick)."""
    av = _av()
    pts, end, count = [], 0, 0
    with av.open(str(path)) as c:
        for pkt in c.demux(video=0):
            if not pkt.size:   # the demuxer's final empty packet
                continue
            count += 1
            if pkt.pts is not None:
                pts.append(pkt.pts)
                end = max(end, pkt.pts + (pkt.duration or 0))
            if limit is not None and count >= limit:
                break
    pts.sort()
    gaps = np.diff(np.asarray(pts[:300], dtype=np.int64))
    gaps = gaps[gaps > 0]
    return count, pts, end, bool(gaps.size >= 2 and gaps.max() - gaps.min() > max(1, 0.1 * np.median(gaps)))
