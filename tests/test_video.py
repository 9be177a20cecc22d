"""Video (issue 17): optical flow, warping, masks and the warping error against hand-computed values; the video
I/O's checks on bad input; both stylization modes against independent references (the engine and the fast
network run frame by frame); Ctrl-C, crash and resume. Tiny clips (64 × 40, a few frames) keep it fast."""
import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from nstedu import flow as FL

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from nstedu import clips, videoio as V  # noqa: E402
from nstedu.fast import resolve_model  # noqa: E402
from nstedu.video import TemporalObjective, stylize_video  # noqa: E402

W, H = 64, 40


def frames_of(path):
    """Decoded frames of a video as float tensors (1, 3, H, W), and their times in seconds."""
    out, times = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out.append(torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255)
            times.append(float(f.pts * f.time_base))
    return out, times


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return clips.make_synthetic_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=8, width=W, height=H, fps=12)


# ------------------------------------------------------------------------------------------------ flow
def test_warp_integer_and_half_pixel_shift_match_hand_values():
    img = torch.rand(1, 3, 10, 12, generator=torch.Generator().manual_seed(1))
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0], flow[:, 1] = 2.0, 1.0          # sample 2 px right, 1 px down
    out = FL.warp(img, flow)
    assert torch.allclose(out[..., :9, :10], img[..., 1:, 2:], atol=1e-6)
    flow[:, 0], flow[:, 1] = 0.5, 0.0
    out = FL.warp(img, flow)
    assert torch.allclose(out[..., :, :11], 0.5 * (img[..., :, :11] + img[..., :, 1:]), atol=1e-6)
    assert FL.inside(torch.full((1, 2, 10, 12), 2.0)).sum() == 8 * 10   # columns 10, 11 and rows 8, 9 leave


def test_consistency_mask_marks_disagreeing_flows_only():
    fwd = torch.zeros(1, 2, 8, 8)
    fwd[:, 0] = -1.0
    bwd = torch.zeros(1, 2, 8, 8)
    bwd[:, 0] = 1.0                         # consistent: t-1 → t moves left by 1, t → t-1 right by 1
    m = FL.consistency_mask(fwd, bwd)
    assert m[..., :, :7].eq(1).all() and m[..., :, 7].eq(0).all()   # last column samples outside
    # forward flow disagrees: |f + b|² = 4 > 0.01·(1 + 1) + 0.5 → occluded everywhere
    assert FL.consistency_mask(bwd.clone(), bwd).sum() == 0
    # a step in the backward flow is a motion boundary: |∇b|² = 1 > 0.01·|b|² + 0.002
    step = torch.zeros(1, 2, 8, 8)
    step[..., 4:] = 1.0
    mb = FL.consistency_mask(-step, step)
    assert mb[0, 0, :, 3].eq(0).all() and mb[0, 0, :, 1].eq(1).all()


def test_warping_error_hand_values():
    prev = torch.rand(1, 3, 6, 9, generator=torch.Generator().manual_seed(2))
    zero = torch.zeros(1, 2, 6, 9)
    assert FL.warping_error(prev, prev, zero) == pytest.approx(0.0, abs=1e-12)   # up to float32 rounding
    flow = torch.zeros(1, 2, 6, 9)
    flow[:, 0] = 1.0                                  # frame t = prev moved 1 px left, plus 0.1 in red
    frame = torch.zeros_like(prev)
    frame[..., :8] = prev[..., 1:]
    frame[:, 0] += 0.1
    # on the 8 columns inside: squared error 0.01 in one of three channels → 0.01 / 3
    assert FL.warping_error(frame, prev, flow) == pytest.approx(0.01 / 3, rel=1e-5)


def test_dis_flow_recovers_a_known_translation():
    rng = np.random.default_rng(0)
    tex = (rng.random((60, 80)) * 255).astype(np.uint8)
    import cv2

    tex = cv2.GaussianBlur(tex, (0, 0), 1.5)
    a, b = tex[10:50, 10:70], tex[8:48, 13:73]        # b = a moved 3 px left and 2 px down
    f = FL.estimate_flow(a, b)[0, :, 8:-8, 8:-8]
    assert float(f[0].median()) == pytest.approx(-3.0, abs=0.25)
    assert float(f[1].median()) == pytest.approx(2.0, abs=0.25)


def test_temporal_objective_adds_ruders_term():
    warped = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 1, 4, 5)
    mask[..., :2, :] = 1
    x = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(4), requires_grad=True)
    base = lambda y: (y.sum() * 0, {"total": y.sum() * 0, "content": y.sum() * 0})  # noqa: E731
    total, parts = TemporalObjective(base, warped, mask, 2.0)(x)
    by_hand = sum(float((x.detach()[0, c, i, j] - warped[0, c, i, j]) ** 2) for c in range(3) for i in range(2) for j in range(5))
    assert float(parts["temporal"].detach()) == pytest.approx(by_hand * 255 ** 2 / 60, rel=1e-5)
    total.backward()
    assert float(total.detach()) == pytest.approx(2 * float(parts["temporal"].detach()), rel=1e-6)
    assert x.grad[..., 2:, :].eq(0).all() and x.grad[..., :2, :].ne(0).any()


# ------------------------------------------------------------------------------------------- video I/O
def test_synthetic_clip_moves_and_round_trips(clip):
    info = V.probe(clip)
    assert (info.width, info.height, info.fps, info.frames, info.audio_codec) == (W, H, Fraction(12), 8, "aac")
    assert not info.variable_rate
    made = list(clips.synthetic_frames(8, W, H))
    assert all(np.array_equal(x, y) for x, y in zip(made, clips.synthetic_frames(8, W, H)))   # deterministic
    assert all(np.abs(made[i].astype(int) - made[i + 1]).mean() > 1 for i in range(7))      # every frame moves
    decoded, _ = frames_of(clip)
    assert len(decoded) == 8 and float((decoded[3][0].permute(1, 2, 0) * 255 - torch.from_numpy(made[3].copy()).float()).abs().mean()) < 8


def _zero_frame_avi(path):
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=12)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        out.start_encoding()
    return path


@pytest.mark.parametrize("kind, message", [
    ("text", "not a video file"), ("image", "still image"), ("zero", "no frames"), ("codec", "unsupported video codec"),
    ("missing", "no such file"), ("empty", "empty"), ("audio-only", "no video stream")])
def test_bad_inputs_get_one_line_errors(tmp_path, kind, message):
    from nstedu import samples

    p = tmp_path / f"in_{kind}.avi"
    if kind == "text":
        p.write_text("hello\n" * 50)
    elif kind == "image":
        p = samples.path("chelsea")
    elif kind == "zero":
        _zero_frame_avi(p)
    elif kind == "codec":   # a real MPEG-4 AVI whose codec tag no decoder knows
        clips.write_video(p, clips.synthetic_frames(3, W, H), 12, codec="mpeg4")
        data = p.read_bytes()
        assert data.count(b"FMP4") >= 1
        p.write_bytes(data.replace(b"FMP4", b"QQ99"))
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "audio-only":
        p = tmp_path / "audio.mp4"
        with av.open(str(p), "w") as out:
            s = out.add_stream("aac", rate=44100)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, 0
            out.mux(s.encode(frame))
            out.mux(s.encode())
    with pytest.raises(V.VideoError, match=message) as e:
        stylize_video(p, tmp_path / "out.mp4", fast="starry_night_cpu", progress=False)
    assert "\n" not in str(e.value) and (str(p) in str(e.value))
    assert not (tmp_path / "out.mp4").exists()


def test_variable_frame_rate_keeps_every_timestamp(tmp_path):
    src = clips.write_video(tmp_path / "vfr.mp4", clips.synthetic_frames(6, W, H), fps=30, pts=[0, 1, 2, 4, 5, 9])
    assert V.probe(src).variable_rate
    r = stylize_video(src, tmp_path / "out.mp4", fast="starry_night_cpu", progress=False)
    assert any("variable frame rate" in n for n in r.notes)
    _, times = frames_of(tmp_path / "out.mp4")
    assert times == pytest.approx([p / 30 for p in (0, 1, 2, 4, 5, 9)], abs=1e-3)


def test_too_large_for_memory_names_the_size_that_fits(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(V, "available_memory", lambda: 2_000_000)   # 2 MB
    with pytest.raises(V.VideoError, match=r"pass --size (\d+)") as e:
        stylize_video(clip, tmp_path / "o.mp4", fast="starry_night_cpu", progress=False)
    side = int(str(e.value).rsplit("--size ", 1)[1].split()[0])
    bpp = 30.0 * 16 + 200.0                                     # starry_night_cpu: width 16
    fits = lambda s: s * round(s * H / W) * bpp <= 0.8 * 2_000_000  # noqa: E731
    assert fits(side) and not fits(side + 4)
    monkeypatch.setattr(V, "available_memory", lambda: 2_000_000)
    r = stylize_video(clip, tmp_path / "o.mp4", fast="starry_night_cpu", size=side, max_frames=2, progress=False)
    assert r.frames == 2


def test_missing_model_style_and_unwritable_output_fail_before_any_work(clip, tmp_path):
    from nstedu.images import ImageError
    from nstedu.vgg import WeightsError

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(V.VideoError, match="is a file, not a folder"):   # output is checked first, even before the input
        stylize_video(tmp_path / "missing.mp4", blocker / "out.mp4", fast="starry_night_cpu")
    with pytest.raises(V.VideoError, match="unknown video extension"):
        stylize_video(clip, tmp_path / "out.gif", fast="starry_night_cpu")
    with pytest.raises(WeightsError, match="no_such_model"):             # then the model, before the input
        stylize_video(tmp_path / "missing.mp4", tmp_path / "o.mp4", fast="no_such_model")
    with pytest.raises(ImageError, match="no_such_style.jpg"):
        stylize_video(tmp_path / "missing.mp4", tmp_path / "o.mp4", style="no_such_style.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_mpeg4_fallback_when_no_h264(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(V, "ENCODERS", ("no_such_encoder", "mpeg4"))
    r = stylize_video(clip, tmp_path / "o.mp4", fast="starry_night_cpu", max_frames=3, progress=False)
    assert any("writing mpeg4" in n for n in r.notes)
    assert V.probe(tmp_path / "o.mp4").codec == "mpeg4" and V.probe(tmp_path / "o.mp4").frames == 3


# ------------------------------------------------------------------------------------------------ modes
def test_fast_mode_matches_the_network_and_cuts_the_warping_error(clip, tmp_path):
    from nstedu.fast import FastStylizer

    net = FastStylizer.load("starry_night_cpu", "cpu")
    got = {}
    ind = stylize_video(clip, tmp_path / "ind.mp4", fast="starry_night_cpu", independent=True, measure=True,
                        tuned=False, progress=False, on_frame=lambda i, x, y: got.setdefault(("ind", i), (x, y)))
    tmp = stylize_video(clip, tmp_path / "tmp.mp4", fast="starry_night_cpu", measure=True, tuned=False,
                        progress=False, on_frame=lambda i, x, y: got.setdefault(("tmp", i), (x, y)))
    # no blend given: the one the model's file names, read here without nstedu
    b = torch.load(resolve_model("starry_night_cpu"), weights_only=True)["meta"]["video_blend"]
    assert b == 0.65 and "blending 0.65 of the warped previous output" in " ".join(tmp.notes)
    for i in range(8):   # independent frames are exactly the network's output
        x, y = got[("ind", i)]
        assert torch.equal(y, net.stylize_tensor(x))
    # frame 1 of the temporal run, by hand: y + b·c·(warp(o_0, f_{1→0}) − y), the warp bicubic and clamped
    (x0, o0), (x1, o1) = got[("tmp", 0)], got[("tmp", 1)]
    est = FL.FlowEstimator()
    bwd = est(x1, x0)
    c = FL.consistency_mask(est(x0, x1), bwd, frame=x1, prev=x0)
    y1 = net.stylize_tensor(x1)
    assert torch.allclose(o1, (y1 + b * c * (FL.warp(o0, bwd, "bicubic").clamp(0, 1) - y1)).clamp(0, 1), atol=1e-6)
    assert ind.warping_error > 0 and tmp.warping_error <= 0.5 * ind.warping_error
    assert len(tmp.warping_errors) == 7


def test_the_blend_is_the_callers_else_the_models_own_else_the_default(tmp_path):
    from nstedu.fast import FastStylizer, init_net, save_model
    from nstedu.vgg import WeightsError
    from nstedu.video_frames import BLEND, FastFrames

    assert BLEND == 0.5
    assert FastFrames("starry_night_cpu", device="cpu").blend == 0.65       # its file says so
    assert FastFrames("starry_night_cpu", 0.2, device="cpu").blend == 0.2   # the caller's wins
    assert FastFrames("starry_night_cpu", 0.0, device="cpu").blend == 0.0
    assert FastFrames("starry_night", device="cpu").blend == 0.8            # its file says so (detail kept)
    tuned = torch.load(resolve_model("starry_night_cpu_video"), weights_only=True)["meta"]["video_blend"]
    assert FastFrames("starry_night_cpu", device="cpu", tuned=True).blend == tuned   # the tuned model's own file
    net = init_net(4, 0)
    assert FastFrames(save_model(net, tmp_path / "plain.pth", {}), device="cpu").blend == 0.5   # its file: nothing
    assert FastFrames(save_model(net, tmp_path / "own.pth", {"video_blend": 0.3}), device="cpu").blend == 0.3
    for bad in (1.0, -0.1, "0.5", True):
        path = save_model(net, tmp_path / "bad.pth", {"video_blend": bad})
        with pytest.raises(WeightsError) as e:
            FastFrames(path, device="cpu")
        assert str(path) in str(e.value) and "video_blend" in str(e.value) and "\n" not in str(e.value)
    assert FastStylizer.load(path).meta["video_blend"] is True   # the file itself still loads for photos


def test_audio_is_copied_packet_for_packet(clip, tmp_path):
    stylize_video(clip, tmp_path / "o.mp4", fast="starry_night_cpu", progress=False)
    def audio_packets(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(audio=0) if p.size]
    src, out = audio_packets(clip), audio_packets(tmp_path / "o.mp4")
    assert len(out) >= len(src) - 2 and out[:10] == src[:10]


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
def test_optimization_mode_first_frame_is_the_engine_result_and_flicker_drops(clip, tmp_path):
    from nstedu import run_style_transfer

    got = {}
    kw = dict(style="starry_night", size=W, steps=20, max_frames=3, measure=True, progress=False)
    ind = stylize_video(clip, tmp_path / "ind.mp4", independent=True, **kw,
                        on_frame=lambda i, x, y: got.setdefault(("ind", i), (x, y)))
    tmp = stylize_video(clip, tmp_path / "tmp.mp4", **kw, on_frame=lambda i, x, y: got.setdefault(("tmp", i), (x, y)))
    x0, y0 = got[("ind", 0)]
    ref = run_style_transfer(x0, "starry_night", size=W, steps=20, progress=False, device="cpu")
    assert torch.allclose(y0, ref.tensor, atol=1e-6)          # same engine, same settings, same pixels
    assert torch.equal(got[("tmp", 0)][1], y0)                 # the first frame has nothing to be consistent with
    assert tmp.warping_error < 0.5 * ind.warping_error
    assert V.probe(tmp_path / "tmp.mp4").frames == 3


# ----------------------------------------------------------------------------------- interrupts, resume
def test_ctrl_c_leaves_a_playable_file_and_resume_finishes_identically(clip, tmp_path):
    full = []
    stylize_video(clip, tmp_path / "full.mp4", fast="starry_night_cpu", progress=False,
                  on_frame=lambda i, x, y: full.append(y))
    seen = []

    def interrupt_at_4(i, x, y):
        seen.append(y)
        if i == 4:
            raise KeyboardInterrupt

    out = tmp_path / "out.mp4"
    r = stylize_video(clip, out, fast="starry_night_cpu", progress=False, segment_seconds=0.25, on_frame=interrupt_at_4)
    assert (r.stop_reason, r.frames) == ("interrupted", 5) and "--resume" in r.notes[-1]
    assert V.probe(out).frames == 5 and len(frames_of(out)[0]) == 5          # playable: five frames decode
    progress = json.loads((tmp_path / "out.mp4.parts" / "progress.json").read_text())
    assert progress["done"] == 5 and sum(s[2] for s in progress["segments"]) == 5
    r = stylize_video(clip, out, fast="starry_night_cpu", progress=False, resume=True,
                      segment_seconds=0.25, on_frame=lambda i, x, y: seen.append(y))
    assert (r.stop_reason, r.frames) == ("finished", 8) and not (tmp_path / "out.mp4.parts").exists()
    assert len(seen) == 8 and all(torch.equal(a, b) for a, b in zip(seen, full))   # continued, not restarted
    decoded, times = frames_of(out)
    assert len(decoded) == 8 and times == pytest.approx([i / 12 for i in range(8)], abs=1e-3)


def test_crash_keeps_the_frames_done_and_resume_refuses_other_settings(clip, tmp_path):
    def crash_at_2(i, x, y):
        if i == 2:
            raise RuntimeError("disk on fire")

    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="disk on fire"):
        stylize_video(clip, out, fast="starry_night_cpu", progress=False, on_frame=crash_at_2)
    assert V.probe(out).frames == 3
    with pytest.raises(V.VideoError, match="other settings"):
        stylize_video(clip, out, fast="starry_night_cpu", blend=0.3, progress=False, resume=True)
    r = stylize_video(clip, out, fast="starry_night_cpu", progress=False, resume=True, max_frames=6)
    assert r.frames == 6 and V.probe(out).frames == 6


def test_cli_video(clip, tmp_path, capsys):
    from nstedu.cli import main

    assert main(["video", str(clip), "--fast", "starry_night_cpu", "-o", str(tmp_path / "c.mp4"), "--max-frames", "3",
                 "--size", "32", "-q"]) == 0
    info = V.probe(tmp_path / "c.mp4")
    assert (info.frames, max(info.width, info.height)) == (3, 32)
    assert "3/3 frames" in capsys.readouterr().out
    assert main(["video", str(tmp_path / "nope.mp4"), "--fast", "starry_night_cpu", "-o", str(tmp_path / "d.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nstedu video: error: video") and "no such file" in err and "\n" not in err


def test_bench_style_distance_matches_its_definition(vgg):
    import sys
    from pathlib import Path

    from nstedu import samples
    from nstedu.images import pil_to_tensor

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_video

    dist = bench_video.StyleDistance("starry_night", 32)
    painting = pil_to_tensor(samples.load("starry_night", 32))
    assert dist(painting) == pytest.approx(0.0, abs=1e-9)
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(5))
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    with torch.no_grad():
        fx, fp = vgg(x, layers), vgg(painting, layers)
    by_def = []
    for k in layers:   # G = F·Fᵀ/(C·H·W) by einsum, relative squared distance
        g = torch.einsum("chw,dhw->cd", fx[k][0], fx[k][0]) / fx[k][0].numel()
        a = torch.einsum("chw,dhw->cd", fp[k][0], fp[k][0]) / fp[k][0].numel()
        by_def.append(float(((g - a) ** 2).sum() / (a ** 2).sum()))
    assert dist(x) == pytest.approx(sum(by_def) / 5, rel=1e-4)
