"""The still-scene test of the video mode's flow (:func:`nstedu.flow.settle`). On real footage from a fixed camera
(the cup shot of ``nstedu/data/real_cut.mp4``: a hand tilting a black cup before a white wall) DIS makes up motion
on the blank wall; where the frames did not change, the flow is set to no motion. References: a loop over the
window, hand-made flows, and the frames themselves (where a fixed camera's frames did not change, the true motion is
zero, so the flicker there is measured without any flow estimate)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nstedu import flow as FL

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from nstedu import clips  # noqa: E402
from nstedu.video import stylize_video  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _warping import still_flicker, still_pixels  # noqa: E402  (the benchmark's flow-free measure)

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def tensor(rgb):
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def cup_shot():
    """The cup shot of the shipped clip with a cut: 20 frames of 320×240, uint8."""
    path, cut = clips.real_clip_with_cut()
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][:cut]


@pytest.mark.parametrize("window", [3, 5])
def test_window_error_matches_a_loop(window):
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, 6, 8, generator=g), torch.rand(1, 3, 6, 8, generator=g)
    got = FL._window_error(a, b, window)
    d = (a - b).abs().mean(1)[0]
    r = window // 2
    for y in range(6):
        for x in range(8):
            ys = [min(max(y + i, 0), 5) for i in range(-r, r + 1)]            # edges repeated
            xs = [min(max(x + j, 0), 7) for j in range(-r, r + 1)]
            want = sum(float(d[yy, xx]) for yy in ys for xx in xs) / window ** 2
            assert float(got[0, 0, y, x]) == pytest.approx(want, abs=1e-6)


def test_settle_keeps_the_motion_the_frames_show_and_drops_what_they_do_not():
    """A textured square moves 3 px to the right over a plain grey frame. The flow given is right on the square and
    made up (0.8, −0.6) px on the plain part: settled, the square keeps its motion exactly and the plain part far
    from it has none. A textured frame that did not change at all loses a made-up motion everywhere."""
    g = torch.Generator().manual_seed(1)
    texture = torch.rand(1, 3, 12, 12, generator=g)
    prev, cur = torch.full((1, 3, 48, 64), 0.5), torch.full((1, 3, 48, 64), 0.5)
    prev[..., 18:30, 20:32] = texture
    cur[..., 18:30, 23:35] = texture
    flow = torch.zeros(1, 2, 48, 64)
    flow[:, 0], flow[:, 1] = 0.8, -0.6
    flow[:, 0, 18:30, 23:35], flow[:, 1, 18:30, 23:35] = -3.0, 0.0       # f_{t→t-1}: back 3 px on the square
    settled = FL.settle(flow, cur, prev)
    assert torch.equal(settled[..., 20:28, 25:33], flow[..., 20:28, 25:33])
    far = torch.ones(48, 64, dtype=torch.bool)
    far[8:40, 13:45] = False                                            # ≥ 8 px (the window's half) from the square
    assert settled[0, :, far].abs().max() == 0
    still = torch.rand(1, 3, 48, 64, generator=g)
    assert FL.settle(torch.full((1, 2, 48, 64), 0.7), still, still.clone()).abs().max() == 0


@pytest.mark.parametrize("t", [9, 15])
def test_the_wall_holds_still_and_the_cup_keeps_moving(cup_shot, t):
    """Real footage: without the test DIS moves the still wall by a median of more than half a pixel and the mask
    lets go of a third of it or more; with it, at least 90 % of the still pixels have no motion, 85 % are held, and the
    cup (pixels that changed by more than 0.1) keeps its motion of several pixels (on ≥ 90 % of them: the rest are
    wall the cup has just uncovered, which no motion explains and the mask lets go of)."""
    cur, prev = tensor(cup_shot[t]), tensor(cup_shot[t - 1])
    still = torch.from_numpy(still_pixels(cup_shot[t], cup_shot[t - 1]))
    moving = torch.from_numpy(np.abs(cup_shot[t].astype(int) - cup_shot[t - 1].astype(int)).max(-1) > 25)
    assert still.float().mean() > 0.2 and moving.float().mean() > 0.02
    got = {}
    for settle in (False, True):
        bwd, _, mask = FL.PairFlow(FL.FlowEstimator(), still=settle)(cur, prev)
        got[settle] = bwd[0].pow(2).sum(0).sqrt(), mask[0, 0]
    (raw, raw_mask), (mag, mask) = got[False], got[True]
    assert raw[still].median() > 0.5 and raw_mask[still].mean() < 0.67   # the problem
    assert (mag[still] == 0).float().mean() >= 0.9 and mask[still].mean() >= max(0.85, raw_mask[still].mean() + 0.25)
    kept = mag[moving] == raw[moving]
    assert raw[moving].median() > 2 and kept.float().mean() >= 0.9 and mask[moving][~kept].sum() == 0


@pytest.mark.slow
def test_fast_mode_stops_the_still_wall_flickering(cup_shot, tmp_path, monkeypatch):
    """The flicker of the still wall (mean squared frame-to-frame change of the output on the still pixels: the
    warping error with the true flow, zero) falls by ≥ 60 % against independent frames with the still-scene test,
    and by less than half of that without it (blending only: the still hold, tests/test_video_hold.py, off)."""
    clip = clips.write_video(tmp_path / "cup.mp4", cup_shot[:12], fps=30)

    def flicker(**kw):
        outs = []
        stylize_video(clip, tmp_path / "out.mp4", fast="starry_night_cpu", progress=False,
                      on_frame=lambda i, frame, out: outs.append(out[0].permute(1, 2, 0).numpy()), **kw)
        return still_flicker(cup_shot[:len(outs)], outs)[0]

    independent, held = flicker(independent=True), flicker(hold=False)
    monkeypatch.setattr(FL, "settle", lambda flow, a, b: flow)
    unsettled = flicker(hold=False)
    assert held <= 0.4 * independent
    assert unsettled > independent * 0.7
