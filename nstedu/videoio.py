"""Video files in and out with PyAV (FFmpeg): probe and check an input, stream its frames, encode segments,
and join them with the source's audio.

    info = probe("clip.mp4")                      # VideoInfo: size, fps, frame count, audio, variable rate…
    for i, frame in read_frames("clip.mp4"): …    # av.VideoFrame one at a time: never the whole clip in memory
    arr = to_rgb(frame, 640, 360)                 # H × W × 3 uint8

Output video is H.264 (``libx264``, in PyAV's wheels) without B-frames, so every packet's decode order is its
display order and segments join by copying packets; if a build lacks ``libx264`` we fall back to MPEG-4 Part 2
(``mpeg4``) and say so. Audio is copied packet by packet (no re-encoding) when the output container can hold its
codec, otherwise dropped with a note (``.mkv`` holds any codec). Every frame keeps its timestamp, so a variable
frame rate stays variable and the audio stays in sync. PyAV is an optional dependency (``nstedu[video]``).
"""
from __future__ import annotations

import heapq
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from .env import memory_gb

#: Output containers by extension (the name FFmpeg knows them by).
OUTPUT_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
#: Encoders to try, best first; the first one this PyAV build has is used.
ENCODERS = ("libx264", "mpeg4")
STILL_IMAGE_FORMATS = {"image2", "gif_pipe"}


class VideoError(ValueError):
    """A clear, one-line problem with a video file (names the file and the problem)."""


def _av():
    try:
        import av  # optional dependency: only video needs it
    except ImportError:
        raise ImportError("video needs PyAV: pip install \"nstedu[video]\" (or av)") from None
    return av


# ------------------------------------------------------------------------------------------------ checks
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
    """What :func:`probe` found: frame size, average frame rate, an estimate of the frame count, duration in
    seconds, codec names, whether the frame rate varies, and the video stream's time base."""

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
    """Open ``path``, decode its first frame and read the timestamps of up to ``check_packets`` video packets.

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
        tb = stream.time_base or Fraction(1, 1000)
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        duration = float(stream.duration * tb) if stream.duration else (container.duration or 0) / 1e6
    frames = int(stream.frames) or max(1, round(duration * float(fps)))
    return VideoInfo(str(p), width, height, Fraction(fps), frames, duration, codec, audio,
                     _variable_rate(p, check_packets), Fraction(tb))


def _variable_rate(path: Path, n: int) -> bool:
    """True when the gaps between the first ``n`` video timestamps differ by more than 10 % (or one tick)."""
    av = _av()
    pts = []
    with av.open(str(path)) as c:
        for pkt in c.demux(video=0):
            if pkt.pts is not None:
                pts.append(pkt.pts)
            if len(pts) >= n:
                break
    gaps = np.diff(np.sort(np.asarray(pts, dtype=np.int64)))
    gaps = gaps[gaps > 0]
    return bool(gaps.size >= 2 and gaps.max() - gaps.min() > max(1, 0.1 * np.median(gaps)))


def working_size(width: int, height: int, size: Optional[int] = None) -> tuple[int, int]:
    """The frame size we stylize at: longest side ``size`` (default: the source's), aspect kept, both even
    (4:2:0 video needs even sides); at least 16 × 16."""
    scale = 1.0 if size is None else size / max(width, height)
    return tuple(max(16, 2 * round(v * scale / 2)) for v in (width, height))


def available_memory() -> Optional[int]:
    """Bytes of memory available to new allocations (:func:`nstedu.env.memory_gb` of the CPU: ``MemAvailable``)."""
    gb = memory_gb(torch.device("cpu"))
    return None if gb is None else int(gb * 1e9)


def check_memory(label: str, width: int, height: int, bytes_per_pixel: float, what: str,
                 available: Optional[int] = None) -> None:
    """Refuse (``VideoError``) a frame size whose working memory (``bytes_per_pixel`` × pixels) exceeds 80 % of
    the available memory, naming the longest side that fits."""
    available = available_memory() if available is None else available
    if available is None:
        return
    budget = 0.8 * available
    need = width * height * bytes_per_pixel
    if need <= budget:
        return
    long_fits = int((budget / bytes_per_pixel * max(width, height) / min(width, height)) ** 0.5) // 2 * 2
    raise VideoError(f"{label}: {width}×{height} frames need about {need / 2**30:.1f} GiB for {what} but only "
                     f"{available / 2**30:.1f} GiB is available; pass --size {long_fits} (or smaller)")


# ------------------------------------------------------------------------------------------------ decode
def read_frames(path) -> Iterator[tuple[int, "object"]]:
    """Yield ``(index, av.VideoFrame)`` one at a time, in display order; the file is closed at the end."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames, i = container.decode(stream), 0
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except av.error.FFmpegError as e:
                raise VideoError(f"video '{path}': cannot decode frame {i + 1} "
                                 f"({getattr(e, 'strerror', None) or e}); is the file truncated?") from None
            yield i, frame
            i += 1


def to_rgb(frame, width: int, height: int) -> np.ndarray:
    """An ``av.VideoFrame`` → ``height × width × 3`` uint8 RGB (FFmpeg's area-averaging resize when smaller)."""
    return frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()


# ------------------------------------------------------------------------------------------------ encode
def pick_encoder(available: Optional[Sequence[str]] = None) -> tuple[str, str]:
    """``(codec name, note)``: the first of :data:`ENCODERS` this build has; the note says when it fell back."""
    available = set(_av().codecs_available if available is None else available)
    for name in ENCODERS:
        if name in available:
            note = "" if name == ENCODERS[0] else f"note: this PyAV build has no {ENCODERS[0]}; writing {name} video instead"
            return name, note
    raise VideoError(f"no video encoder available (tried {', '.join(ENCODERS)}); reinstall PyAV: pip install av")


class SegmentWriter:
    """Encode RGB frames into one video file, written under a temporary name and renamed on :meth:`close`."""

    def __init__(self, path, width: int, height: int, time_base: Fraction, fps: Fraction, codec: str, crf: int = 18):
        av = _av()
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        self.container = av.open(str(self.tmp), "w", format=OUTPUT_FORMATS[self.path.suffix.lower()])
        self.stream = self.container.add_stream(codec, rate=fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.codec_context.time_base = time_base
        opts = {"bf": "0"}  # no B-frames: packets in display order, so segments join by copying
        if codec == "libx264":
            opts.update(crf=str(crf), preset="veryfast")
        else:
            self.stream.codec_context.bit_rate = int(width * height * float(fps) * 0.5)
        self.stream.options = opts
        self.time_base, self.frames = time_base, 0

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Append one ``H × W × 3`` uint8 frame shown at ``pts`` (in ``time_base`` units, from the segment start)."""
        av = _av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = int(pts), self.time_base
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder, finalize the file and move it into place."""
        self.container.mux(self.stream.encode())
        self.container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.container.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def join(segments: Sequence[tuple[Path, int]], out_path, time_base: Fraction, audio_source=None,
         start_time: float = 0.0, end_time: Optional[float] = None) -> str:
    """Write ``out_path`` (atomically) from ``segments`` = [(file, offset in ``time_base`` units)], copying the
    packets, plus the audio of ``audio_source`` between ``start_time`` and ``end_time`` seconds (source clock),
    interleaved by time. Returns a note ("" or why the audio was dropped)."""
    av = _av()
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.stem}.part{out_path.suffix}")
    note = ""
    with av.open(str(segments[0][0])) as first:
        out = av.open(str(tmp), "w", format=OUTPUT_FORMATS[out_path.suffix.lower()])
        vout = out.add_stream_from_template(first.streams.video[0])
        vout.time_base = time_base
    try:
        src, aout = None, None
        if audio_source is not None:
            src = av.open(str(audio_source))
            if src.streams.audio:
                ain = src.streams.audio[0]
                if ain.codec_context.name in out.supported_codecs:
                    aout = out.add_stream_from_template(ain)
                else:
                    note = (f"note: the {out_path.suffix} container cannot hold the source's "
                            f"{ain.codec_context.name} audio; audio dropped (use .mkv to keep it)")

        def video_packets():
            for path, offset in segments:
                with av.open(str(path)) as seg:
                    for pkt in seg.demux(video=0):
                        if pkt.pts is None:
                            continue
                        pts = int(round(pkt.pts * pkt.time_base / time_base)) + offset
                        pkt.pts = pkt.dts = pts
                        pkt.time_base, pkt.stream = time_base, vout
                        yield float(pts * time_base), 0, pkt

        def audio_packets():
            ain = src.streams.audio[0]
            shift = int(round(start_time / ain.time_base))
            for pkt in src.demux(ain):
                if pkt.pts is None or pkt.dts is None:
                    continue
                t = float(pkt.pts * ain.time_base)
                if t + float((pkt.duration or 0) * ain.time_base) < start_time:  # keeps the codec's priming packet
                    continue
                if end_time is not None and t >= end_time:
                    break
                pkt.pts, pkt.dts = pkt.pts - shift, pkt.dts - shift
                pkt.stream = aout
                yield t - start_time, 1, pkt

        streams = [video_packets()] + ([audio_packets()] if aout is not None else [])
        for _, _, pkt in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            out.mux(pkt)
        out.close()
        os.replace(tmp, out_path)
    except BaseException:
        out.close()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if src is not None:
            src.close()
    return note
