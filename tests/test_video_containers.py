"""Video containers and signals (issue 25): every output container (.mp4, .mov, .mkv, .webm) keeps the frame count
and the frame rate, as nstedu's probe reads them and as PyAV counts them frame by frame, also when the output is
stylized again; an input in each container is probed right; SIGTERM, SIGHUP and a second Ctrl-C leave a playable
partial output that --resume finishes. Tiny clips (64 × 48, 12 frames) keep it fast."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest
import torch

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from nstedu import clips, videoio as V  # noqa: E402
from nstedu.video import stylize_video  # noqa: E402
from nstedu.video_signals import shielded, stop_signals  # noqa: E402

W, H, N = 64, 48, 12
CONTAINERS = [".mp4", ".mov", ".mkv", ".webm"]
RATES = [Fraction(24), Fraction(30000, 1001)]
AUDIO = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "opus"}   # .webm cannot hold AAC: re-encoded
REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def counted(path):
    """Independently of nstedu: (frames decoded by PyAV, their times in seconds, the rate the container declares,
    the audio codec)."""
    with av.open(str(path)) as c:
        declared = c.streams.video[0].average_rate
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    return len(times), times, declared, audio


def check_count_and_rate(path, frames, rate, audio):
    """nstedu's probe and PyAV's own count agree with ``frames`` and ``rate``; duration ≈ frames / rate."""
    info = V.probe(path)
    n, times, declared, audio_codec = counted(path)
    assert (n, info.frames) == (frames, frames), path
    assert info.fps == rate and declared == rate, path                                  # exact: 24 or 30000/1001
    assert (n - 1) / (times[-1] - times[0]) == pytest.approx(float(rate), rel=0.01)      # the frames' own timestamps
    assert info.duration == pytest.approx(frames / float(rate), abs=0.003)              # Matroska: millisecond ticks
    assert (audio_codec, info.audio_codec) == (audio, audio)


@pytest.fixture(scope="module", params=RATES, ids=["24", "29.97"])
def source(request, tmp_path_factory):
    rate = request.param
    return clips.write_video(tmp_path_factory.mktemp("src") / "src.mp4", clips.synthetic_frames(N, W, H), rate, 440.0), rate


# ------------------------------------------------------------------------------------------------ containers
@pytest.mark.parametrize("ext", CONTAINERS + [".avi"])
@pytest.mark.parametrize("rate", RATES, ids=["24", "29.97"])
def test_an_input_in_each_container_is_probed_right(tmp_path, ext, rate):
    path = clips.write_video(tmp_path / f"in{ext}", clips.synthetic_frames(N, W, H), rate,
                             None if ext == ".avi" else 440.0)
    check_count_and_rate(path, N, rate, AUDIO.get(ext))


@pytest.mark.parametrize("ext", CONTAINERS)
def test_each_output_container_keeps_frames_and_rate_and_again_when_restylized(source, tmp_path, ext):
    src, rate = source
    out, again = tmp_path / f"out{ext}", tmp_path / f"again{ext}"
    r = stylize_video(src, out, fast="starry_night_cpu", independent=True, progress=False)
    assert r.frames == N and any("re-encoded it to libopus" in n for n in r.notes) == (ext == ".webm")
    check_count_and_rate(out, N, rate, AUDIO[ext])
    stylize_video(out, again, fast="starry_night_cpu", independent=True, progress=False)
    check_count_and_rate(again, N, rate, AUDIO[ext])
    with av.open(str(again)) as c:   # the audio lasts as long as the video (± an audio frame or two)
        audio_seconds = sum(f.samples / f.sample_rate for f in c.decode(audio=0))
    assert audio_seconds == pytest.approx(N / float(rate), abs=0.05)   # AAC in .mkv: its 1024 priming samples too


def test_matroska_declaring_its_time_base_as_rate_is_measured(source, tmp_path):
    """The files nstedu wrote before issue 25: their track said 12288 fps (1/time base) for 24 fps video."""
    src, rate = source
    stylize_video(src, tmp_path / "ok.mp4", fast="starry_night_cpu", independent=True, progress=False)
    V.join([(tmp_path / "ok.mp4", 0)], tmp_path / "old.mkv", V.probe(src).time_base, fps=Fraction(12288))
    n, _, declared, _ = counted(tmp_path / "old.mkv")
    assert declared == 12288 and n == N                       # the wrong declaration is there …
    info = V.probe(tmp_path / "old.mkv")
    assert info.frames == N and float(info.fps) == pytest.approx(float(rate), rel=0.01)   # … and probe measures


def test_webm_falls_back_to_vp8(source, tmp_path, monkeypatch):
    src, rate = source
    monkeypatch.setattr(V, "WEBM_ENCODERS", ("no_such_encoder", "libvpx"))
    r = stylize_video(src, tmp_path / "o.webm", fast="starry_night_cpu", independent=True, max_frames=5, progress=False)
    assert any("writing libvpx" in n for n in r.notes)
    assert V.probe(tmp_path / "o.webm").codec == "vp8" and counted(tmp_path / "o.webm")[0] == 5


def test_mkv_copies_the_audio_packet_for_packet(source, tmp_path):
    src, _ = source
    stylize_video(src, tmp_path / "o.mkv", fast="starry_night_cpu", independent=True, progress=False)

    def audio_packets(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(audio=0) if p.size]
    assert audio_packets(tmp_path / "o.mkv") == audio_packets(src)


# ------------------------------------------------------------------------------------------------ signals
@pytest.fixture
def default_handlers():
    """The handlers a program gets from a terminal (pytest may run in the background, with SIGINT ignored)."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_stop_signals_and_shielded_in_process(default_handlers):
    with stop_signals() as received:
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):
            signal.raise_signal(signal.SIGINT)
        with shielded() as held:   # a second Ctrl-C during the clean-up: held, then dropped
            signal.raise_signal(signal.SIGINT)
        assert held == [signal.SIGINT] and received == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
    got = []
    signal.signal(signal.SIGHUP, lambda signum, frame: got.append(signum))   # the program's own handler …
    with stop_signals():
        assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL and got == []   # … is left alone
        with shielded() as held:   # SIGHUP's default would end pytest: here it is held, then raised again
            signal.raise_signal(signal.SIGHUP)
            signal.raise_signal(signal.SIGINT)
            assert held == [signal.SIGHUP, signal.SIGINT] and got == []
        assert got == [signal.SIGHUP]
    signal.signal(signal.SIGHUP, signal.SIG_IGN)   # `nohup`: SIGHUP stays ignored
    try:
        with stop_signals(), shielded():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    seen = []

    def elsewhere():   # another thread cannot set handlers (ValueError): nothing changes there
        with stop_signals(), shielded():
            seen.append(signal.getsignal(signal.SIGTERM))
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen == [signal.SIG_DFL]


FRAMES, FPS = 12, 12      # segments of 3 frames (0.25 s)
RUN = """
import signal, sys, time, torch
torch.set_num_threads(1)
signal.signal(signal.SIGINT, signal.default_int_handler)   # as from a terminal (pytest may run in the background)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
from nstedu import videoio as V
write, join = V.SegmentWriter.write, V.join
def slow_write(self, *a):                   # a pace slow enough to be stopped half-way
    time.sleep(0.1)
    return write(self, *a)
def slow_join(*a, **k):                     # the clean-up announces itself and lasts long enough for a second signal
    print("joining", file=sys.stderr, flush=True)
    time.sleep(0.5)
    return join(*a, **k)
V.SegmentWriter.write, V.join = slow_write, slow_join
"""
API = RUN + """
from nstedu.video import stylize_video
r = stylize_video(CLIP, OUT, fast="starry_night_cpu", progress=False, segment_seconds=0.25)
print("result", r.stop_reason, r.frames, flush=True)
"""
CLI = RUN + """
import functools
from nstedu import cli_video
from nstedu.cli import main
cli_video.stylize_video = functools.partial(cli_video.stylize_video, segment_seconds=0.25)
raise SystemExit(main(["video", CLIP, "--fast", "starry_night_cpu", "-o", OUT, "-q"]))
"""


@pytest.fixture(scope="module")
def signal_clip(tmp_path_factory):
    """A 12-frame clip, and the fast mode's frames of an uninterrupted run of it."""
    clip = clips.make_synthetic_clip(tmp_path_factory.mktemp("sig") / "clip.mp4", frames=FRAMES, width=W, height=H,
                                     fps=FPS)
    full = []
    stylize_video(clip, clip.with_name("full.mp4"), fast="starry_night_cpu", progress=False,
                  on_frame=lambda i, x, y: full.append(y))
    return clip, full


SLOW = pytest.mark.slow   # each case starts Python and torch (5–10 s on a busy 2-core machine): the mixed ones are slow


@pytest.mark.parametrize("how, signals, code", [
    pytest.param("api", ["SIGTERM"], -signal.SIGTERM, id="SIGTERM"),
    pytest.param("api", ["SIGHUP"], -signal.SIGHUP, id="SIGHUP", marks=SLOW),   # SIGTERM's handler
    pytest.param("api", ["SIGINT", "SIGINT"], 0, id="SIGINT-twice"),
    pytest.param("api", ["SIGTERM", "SIGINT"], -signal.SIGTERM, id="SIGTERM-then-SIGINT", marks=SLOW),
    pytest.param("api", ["SIGINT", "SIGTERM"], -signal.SIGTERM, id="SIGINT-then-SIGTERM", marks=SLOW),
    pytest.param("cli", ["SIGTERM", "SIGTERM"], 128 + signal.SIGTERM, id="cli-SIGTERM-twice", marks=SLOW)])
def test_a_signal_leaves_a_playable_partial_output_that_resume_finishes(signal_clip, tmp_path, how, signals, code):
    clip, full = signal_clip
    out = tmp_path / "out.mp4"
    program = (API if how == "api" else CLI).replace("CLIP", repr(str(clip))).replace("OUT", repr(str(out)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(program)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    progress = tmp_path / "out.mp4.parts" / "progress.json"
    deadline = time.monotonic() + 60
    while not progress.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(getattr(signal, signals[0]))
    if len(signals) > 1:   # the second one when the clean-up has begun
        assert any(line.strip() == "joining" for line in proc.stderr)
        proc.send_signal(getattr(signal, signals[1]))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    if len(signals) > 1:
        assert f"{signals[1]}: still saving the frames done" in stderr
    if how == "api" and code == 0:
        assert stdout.startswith("result interrupted")
    done = json.loads(progress.read_text())["done"]
    n, times, _, _ = counted(out)
    assert 3 <= done < FRAMES and n == done and V.probe(out).frames == done        # playable: every frame decodes
    assert times == pytest.approx([i / FPS for i in range(done)], abs=1e-3)
    seen = []
    r = stylize_video(clip, out, fast="starry_night_cpu", progress=False, resume=True, segment_seconds=0.25,
                      on_frame=lambda i, x, y: seen.append((i, y)))
    assert (r.stop_reason, r.frames) == ("finished", FRAMES) and seen[0][0] == done
    assert all(torch.equal(y, full[i]) for i, y in seen)          # continued from the saved state, bit for bit
    assert counted(out)[0] == FRAMES and V.probe(out).frames == FRAMES
