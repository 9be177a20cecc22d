"""bench_video's independent warping error (benchmarks/_warping.py: Farnebäck flow, cv2.remap, a forward-backward
mask) on hand-made clips whose answer is known: every frame is a window moved by a whole number of pixels over a
larger random image, so the true flow is that shift everywhere."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _warping as WE  # noqa: E402

H, W, SHIFT = 72, 96, (3, 2)   # the camera moves 3 px right and 2 px down per frame


def window(big, t):
    """Frame t of a camera panning over ``big``: frame_t(p) = big(p + t·SHIFT), so the backward flow is SHIFT."""
    x, y = 4 + t * SHIFT[0], 4 + t * SHIFT[1]
    return big[y:y + H, x:x + W]


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.random((H + 20, W + 20, 3)).astype(np.float32), (0, 0), 2.0)
    texture = (texture - texture.min()) / (texture.max() - texture.min())    # smooth: Farnebäck can follow it
    painting = rng.random((H + 20, W + 20, 3)).astype(np.float32)            # U(0, 1) per value: a "stylization"
    return texture, painting, rng


def test_a_stylization_that_moves_with_the_scene_scores_zero_and_an_unrelated_one_one_sixth(scene):
    texture, painting, rng = scene
    originals = [window(texture, t) for t in range(3)]
    moving = WE.warping_error(originals, [window(painting, t) for t in range(3)])
    assert sorted(moving.pairs) == [1, 2] and moving.mean < 2e-3
    # a new U(0, 1) image every frame: E[(a − b)²] = 1/6 for independent a, b ~ U(0, 1)
    flicker = WE.warping_error(originals, [rng.random((H, W, 3)).astype(np.float32) for _ in range(3)])
    assert abs(flicker.mean - 1 / 6) < 0.015
    # the flow really is the shift (backward flow f_{t→t-1} = +SHIFT inside the frame)
    b = WE.farneback(originals[1], originals[0])[10:-10, 10:-10]
    assert np.allclose(b.mean((0, 1)), SHIFT, atol=0.05)


def test_the_pair_across_a_cut_is_left_out(scene):
    texture, painting, rng = scene
    other = np.ascontiguousarray(texture[::-1, ::-1])                         # shot 2: another view
    originals = [window(texture, 0), window(texture, 1), window(other, 2), window(other, 3)]
    shot2 = rng.random((H, W, 3)).astype(np.float32)
    stylized = [window(painting, 0), window(painting, 1), shot2,
                np.roll(shot2, (-SHIFT[1], -SHIFT[0]), axis=(0, 1))]           # shot 2 moves with its scene too
    with_cut = WE.warping_error(originals, stylized, cuts=[2])
    assert with_cut.skipped == [2] and sorted(with_cut.pairs) == [1, 3]
    assert with_cut.mean < 2e-3
    across = WE.warping_error(originals, stylized)                           # the cut pair counted: ~1/6 on it
    assert across.pairs[2] > 0.1 and across.mean > 30 * with_cut.mean


def test_pixels_that_left_the_frame_are_masked_and_sizes_must_match(scene):
    texture, _, _ = scene
    a, b = window(texture, 0), window(texture, 1)
    mask = WE.visible_mask(WE.farneback(a, b), WE.farneback(b, a))
    assert not mask[:, -SHIFT[0]:].any() and not mask[-SHIFT[1]:, :].any()   # p + SHIFT falls outside frame 0
    assert mask[8:-8, 8:-8].mean() > 0.95                                     # the rest is visible in both
    with pytest.raises(ValueError, match="differ in size"):
        WE.pair_error(a, b, a[:40, :40], b[:40, :40])


def test_tensors_uint8_and_float_frames_give_the_same_score(scene):
    texture, painting, _ = scene
    originals = [window(texture, t) for t in range(2)]
    as_u8 = [np.round(window(painting, t) * 255).astype(np.uint8) for t in range(2)]
    as_tensor = [torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 for x in as_u8]
    u8, ten = WE.warping_error(originals, as_u8), WE.warping_error(originals, as_tensor)
    assert ten.mean == pytest.approx(u8.mean, rel=1e-4, abs=1e-7)
    with pytest.raises(ValueError, match="2 original frames but 1"):
        WE.warping_error(originals, as_u8[:1])


def test_change_ratio_is_the_outputs_frame_change_over_the_inputs(scene):
    texture, painting, rng = scene
    originals = [window(texture, t) for t in range(3)]
    assert WE.change_ratio(originals, originals) == pytest.approx(1.0)
    assert WE.change_ratio(originals, [originals[0]] * 3) == 0.0                  # a still picture does not change
    doubled = [0.5 + 2 * (x - 0.5) for x in originals]                               # twice the contrast, clipped
    assert 1.5 < WE.change_ratio(originals, doubled) <= 2.0
    jump = originals[:2] + [rng.random((H, W, 3)).astype(np.float32)]               # a cut before frame 2
    assert WE.change_ratio(originals, jump) > 1.5 and WE.change_ratio(originals, jump, cuts=[2]) == pytest.approx(1.0)


def test_the_real_footage_report_leaves_the_cut_out_and_judges_against_the_targets():
    from types import SimpleNamespace

    import _video_real as R

    run = SimpleNamespace(warping_errors=[0.1, 0.9, 0.3], frames=4, warping_error=13 / 30)
    assert R.own_error(run, cuts=[2]) == pytest.approx(0.2)                 # pairs (0,1) and (2,3); (1,2) is the cut
    assert R.own_error(SimpleNamespace(warping_errors=[0.1, 0.3], frames=4, warping_error=0.2), [2]) == 0.2  # skipped
    row = dict(frames=8, size=(128, 96), first=30.0, after=5.0, fps=0.2, found=[])
    rows = {"independent": dict(row, ind=WE.WarpingError(0.010, coverage=0.9), own=0.008, change=3.0, style=0.100),
            "temporal": dict(row, ind=WE.WarpingError(0.0015, coverage=0.9), own=0.0004, change=1.5, style=0.108)}
    text = R.table("t", rows, 0.80, seconds_target=6)
    assert "**85 % lower** (own measure: 95 % lower)" in text and "+8.0% → target (≥ 80 % lower" in text
    assert "met. The independent mask kept 90 % of the pixels. Cuts the engine detected (cuts=\"auto\"): none." in text
    assert "5.0 s per frame after the first → target (≤ 6 s) met" in text
    rows["temporal"]["style"] = 0.115                                       # +15 % style distance: not met
    assert "+15.0% → target (≥ 80 % lower at a style distance ≤ +10 %) NOT met" in R.table("t", rows, 0.80)


def test_still_flicker_counts_only_pixels_whose_whole_neighbourhood_did_not_change():
    """A fixed camera: a 4×4 block of the input changes between frames 0 and 1, nothing else. The still pixels are
    those farther than 4 px from the block (Chebyshev distance); the stylized clip changes by 0.3 in one channel on
    a still pixel and by 0.5 everywhere on the block: only the still pixel's change counts, 0.3² / 3 spread over the
    still pixels. A cut pair is left out; a moving camera (no still pixel) gives nan."""
    originals = [np.full((20, 24, 3), 100, np.uint8) for _ in range(3)]
    originals[1][8:12, 10:14] = 140
    originals[2] = originals[1].copy()
    still = WE.still_pixels(originals[0], originals[1])
    expect = np.ones((20, 24), bool)
    expect[4:16, 6:18] = False                               # the block grown by 4 px each way
    assert np.array_equal(still, expect)
    assert WE.still_pixels(originals[1], originals[2]).all()
    out = [np.zeros((20, 24, 3), np.float32) for _ in range(3)]
    out[1] = out[0].copy()
    out[1][0, 0, 1] = 0.3
    out[1][8:12, 10:14] = 0.5
    out[2] = out[1].copy()
    flicker, share = WE.still_flicker(originals, out)
    n = expect.sum()
    assert flicker == pytest.approx(0.09 / 3 / (n + 20 * 24))   # pairs (0,1) and (1,2): one change over all their still pixels
    assert share == pytest.approx((n / (20 * 24) + 1) / 2)
    assert WE.still_flicker(originals, out, cuts=[1]) == (0.0, 1.0)
    moving = [np.random.default_rng(t).integers(0, 255, (20, 24, 3), dtype=np.uint8) for t in range(2)]
    f, s = WE.still_flicker(moving, out[:2])
    assert np.isnan(f) and s == 0.0
