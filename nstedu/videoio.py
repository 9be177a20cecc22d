"""Video files in and out with PyAV (FFmpeg): stream an input's frames, encode segments, and join them with the
source's audio. The containers, the checks and :func:`probe` are in :mod:`nstedu.video_formats` (imported here).

    info = probe("clip.mp4")                      # VideoInfo: size, fps, frame count, audio, variable rate…
    for i, frame in read_frames("clip.mp4"): …    # av.VideoFrame one at a time: never the whole clip in memory
    arr = to_rgb(frame, 640, 360)                 # H × W × 3 uint8

Output video is H.264 (``libx264``, in PyAV's wheels) without B-frames in ``.mp4``, ``.mov`` and ``.mkv``, VP9
(``libvpx-vp9``, constant quality) in ``.webm``; either way every packet's decode order is its display order, so
segments join by copying packets. A build without them falls back to MPEG-4 Part 2 (``mpeg4``) or VP8 (``libvpx``)
and says so. The segments are MP4 files (VP8, which MP4 cannot hold, goes in Matroska). When joining, the output
declares the source's frame rate (Matroska writes it as the track's default frame duration). Audio is copied packet
by packet when the output container can hold its codec (``.mkv`` holds any), otherwise re-encoded, cut to the
sample, to the container's codec (Opus in ``.webm``, AAC elsewhere) with a note. Every frame keeps its timestamp,
so a variable frame rate stays variable and the audio stays in sync. PyAV is an optional dependency
(``nstedu[video]``).
"""
from __future__ import annotations

import heapq
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from .env import memory_gb
from .video_formats import (AUDIO_CODECS, OUTPUT_FORMATS, STILL_IMAGE_FORMATS, VideoError, VideoInfo,  # noqa: F401
                            _av, check_output, probe)

#: Video encoders to try for each container, best first; the first one this PyAV build has is used.
ENCODERS = ("libx264", "mpeg4")
WEBM_ENCODERS = ("libvpx-vp9", "libvpx")


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
def pick_encoder(available: Optional[Sequence[str]] = None, suffix: str = ".mp4") -> tuple[str, str]:
    """``(codec name, note)``: the first encoder for the container of ``suffix`` (:data:`WEBM_ENCODERS` for
    ``.webm``, else :data:`ENCODERS`) this build has; the note says when it fell back."""
    available = set(_av().codecs_available if available is None else available)
    names = WEBM_ENCODERS if OUTPUT_FORMATS.get(suffix.lower()) == "webm" else ENCODERS
    for name in names:
        if name in available:
            note = "" if name == names[0] else f"note: this PyAV build has no {names[0]}; writing {name} video instead"
            return name, note
    raise VideoError(f"no video encoder available (tried {', '.join(names)}); reinstall PyAV: pip install av")


class SegmentWriter:
    """Encode RGB frames into one video file, written under a temporary name and renamed on :meth:`close` (in the
    container its extension names, or Matroska when that cannot hold ``codec``, as MP4 cannot hold VP8)."""

    def __init__(self, path, width: int, height: int, time_base: Fraction, fps: Fraction, codec: str, crf: int = 18):
        av = _av()
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        self.container = av.open(str(self.tmp), "w", format=OUTPUT_FORMATS[self.path.suffix.lower()])
        if codec not in self.container.supported_codecs:
            self.container.close()
            self.container = av.open(str(self.tmp), "w", format="matroska")
        self.stream = self.container.add_stream(codec, rate=fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.codec_context.time_base = time_base
        opts = {"bf": "0"}  # no B-frames: packets in display order, so segments join by copying
        if codec == "libx264":
            opts.update(crf=str(crf), preset="veryfast")
        elif codec.startswith("libvpx"):  # constant quality on libvpx's 0–63 scale; VP8/VP9 have no B-frames
            opts = {"crf": str(crf + 12), "deadline": "good", "cpu-used": "4", "row-mt": "1"}
            self.stream.codec_context.bit_rate = 0
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
         start_time: float = 0.0, end_time: Optional[float] = None, fps: Optional[Fraction] = None) -> str:
    """Write ``out_path`` (atomically) from ``segments`` = [(file, offset in ``time_base`` units)], copying the
    packets, plus the audio of ``audio_source`` between ``start_time`` and ``end_time`` seconds (source clock),
    interleaved by time. ``fps``: the frame rate the output declares (Matroska writes it as the track's
    ``DefaultDuration``; default: the first segment's average rate). Returns a note ("" or what became of the audio)."""
    av = _av()
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.stem}.part{out_path.suffix}")
    fmt, note = OUTPUT_FORMATS[out_path.suffix.lower()], ""
    with av.open(str(segments[0][0])) as first:
        out = av.open(str(tmp), "w", format=fmt)
        vout = out.add_stream_from_template(first.streams.video[0])
        vout.time_base = time_base
        rate = fps or first.streams.video[0].average_rate   # the template's: 1/time base (H.264, MPEG-4 headers)
        if rate:
            vout.codec_context.framerate = rate
    try:
        src, aout, recode = None, None, False
        if audio_source is not None:
            src = av.open(str(audio_source))
            if src.streams.audio:
                ain = src.streams.audio[0]
                if ain.codec_context.name in out.supported_codecs:
                    aout = out.add_stream_from_template(ain)
                else:
                    codec, recode = AUDIO_CODECS[fmt], True
                    aout = out.add_stream(codec, rate=48000 if "opus" in codec else ain.sample_rate,
                                          layout="mono" if ain.channels == 1 else "stereo")
                    note = (f"note: the {out_path.suffix} container cannot hold the source's {ain.codec_context.name} "
                            f"audio; re-encoded it to {aout.codec_context.name}")

        def video_packets():
            for path, offset in segments:
                with av.open(str(path)) as seg:
                    for pkt in seg.demux(video=0):
                        if pkt.pts is None:
                            continue
                        pts = int(round(pkt.pts * pkt.time_base / time_base)) + offset
                        pkt.duration = int(round((pkt.duration or 0) * pkt.time_base / time_base))
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

        audio = [] if aout is None else [_reencoded_audio(src, aout, start_time, end_time) if recode else audio_packets()]
        for _, _, pkt in heapq.merge(video_packets(), *audio, key=lambda item: (item[0], item[1])):
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


def _reencoded_audio(src, aout, start_time: float, end_time: Optional[float]):
    """The source's audio from ``start_time`` to ``end_time`` seconds, decoded, cut to the sample and encoded by
    ``aout`` (PyAV resamples to its rate and format): ``(seconds from start_time, 1, packet)`` in order."""
    av = _av()

    def encoded(frame):
        for pkt in aout.encode(frame):
            yield float(pkt.pts * pkt.time_base), 1, pkt

    for frame in src.decode(src.streams.audio[0]):
        if frame.pts is None:
            continue
        rate, t = frame.sample_rate, float(frame.pts * frame.time_base)
        if end_time is not None and t >= end_time:
            break
        a = max(0, round((start_time - t) * rate))
        b = frame.samples if end_time is None else min(frame.samples, round((end_time - t) * rate))
        if b <= a:
            continue
        if (a, b) != (0, frame.samples):   # planar samples are (channels, n); packed ones (1, n · channels)
            k = 1 if frame.format.is_planar else len(frame.layout.channels)
            cut = av.AudioFrame.from_ndarray(np.ascontiguousarray(frame.to_ndarray()[:, a * k:b * k]),
                                             format=frame.format.name, layout=frame.layout.name)
            cut.sample_rate, frame = rate, cut
        frame.pts, frame.time_base = round((t - start_time) * rate) + a, Fraction(1, rate)
        yield from encoded(frame)
    yield from encoded(None)
