import os
import signal

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("NSTEDU_OFFLINE", "1")


# A shell that starts a command in the background without job control (`(make test &)`) leaves SIGINT ignored, and
# nohup SIGHUP; every process started from here would inherit that, and nstedu rightly leaves an ignored signal
# ignored: the Ctrl-C tests would hang and the SIGHUP test fail. The tests run as if started from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(scope="session")
def vgg():
    from nstedu.vgg import get_vgg

    return get_vgg("caffe", "cpu", "max")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def small_pair():
    """A small content photo and style painting as PIL images (64 px)."""
    from nstedu import samples

    return samples.load("chelsea", 64), samples.load("starry_night", 64)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny video frames: on a shared 2-core machine one thread runs them several times faster than two
    (``pytestmark = pytest.mark.usefixtures("one_torch_thread")`` in a module)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def file_flag_checked(tmp_path):
    """``check(key, bad, dest, flag)`` for a per-model flag of fast video mode (``meta[key]``: video_hold,
    video_detail, video_tuned): a file whose ``key`` is ``bad`` is refused by a one-line error naming the file and the
    key, and ``nstedu video`` parses no switch / ``--FLAG`` / ``--no-FLAG`` into ``args.DEST`` as None / True /
    False."""
    import argparse

    from nstedu.cli_video import add_arguments
    from nstedu.fast.network import TransformerNet, save_model
    from nstedu.vgg import WeightsError
    from nstedu.video_frames import FastFrames

    def check(key, bad, dest, flag):
        with pytest.raises(WeightsError) as e:
            FastFrames(save_model(TransformerNet(width=4, res_blocks=1), tmp_path / "bad.pth", {key: bad}), device="cpu")
        assert "bad.pth" in str(e.value) and key in str(e.value) and "\n" not in str(e.value)
        p = argparse.ArgumentParser()
        add_arguments(p)
        assert [getattr(p.parse_args(["c.mp4", *a]), dest) for a in ([], [f"--{flag}"], [f"--no-{flag}"])] == \
            [None, True, False]
    return check


@pytest.fixture
def measured_video(tmp_path):
    """``run(fast=MODEL, **kw)`` → (warping error, style distance, VideoResult) of fast mode on the first 16 frames
    of the shipped hand-held real clip, scored as the benchmark scores it: the independent warping error (Farnebäck
    flow on the input frames, not the engine's DIS; ``benchmarks/_warping.py``) and the mean style distance to the
    painting (``nstedu.metrics``) of every other frame."""
    import sys
    from pathlib import Path

    pytest.importorskip("av")
    pytest.importorskip("cv2")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _warping import read_frames, warping_error
    from bench_video import StyleDistance

    from nstedu import clips
    from nstedu.video import stylize_video

    clip, style_distance = clips.real_clip(), StyleDistance("starry_night", 320)

    def run(**kw):
        outs, styles = [], []

        def keep(i, frame, out):
            outs.append((out[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy())
            if i % 2 == 0:
                styles.append(style_distance(out))
        r = stylize_video(clip, tmp_path / "measured.mp4", max_frames=16, progress=False, on_frame=keep, **kw)
        originals = read_frames(clip, (outs[0].shape[1], outs[0].shape[0]), len(outs))
        return warping_error(originals, outs).mean, sum(styles) / len(styles), r
    return run


@pytest.fixture
def interrupted_and_resumed(tmp_path):
    """``run(clip, at, check=None, **kw)`` → (frames of an uninterrupted ``stylize_video(clip, …, **kw)``, frames of
    the same run interrupted by Ctrl-C after frame ``at`` and then resumed; the resumed run's result); ``check(out)``
    is called between the two halves (e.g. to try a resume with other settings)."""
    from nstedu.video import stylize_video

    def run(clip, at, check=None, **kw):
        full, seen = [], []
        stylize_video(clip, tmp_path / "full.mp4", **kw, on_frame=lambda i, x, y: full.append(y))

        def interrupt(i, x, y):
            seen.append(y)
            if i == at:
                raise KeyboardInterrupt
        out = tmp_path / "out.mp4"
        assert stylize_video(clip, out, **kw, on_frame=interrupt).stop_reason == "interrupted"
        if check is not None:
            check(out)
        r = stylize_video(clip, out, **kw, resume=True, on_frame=lambda i, x, y: seen.append(y))
        return full, seen, r
    return run
