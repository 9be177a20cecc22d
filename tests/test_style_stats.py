"""The four style statistics (nstedu.style_stats, issue 26), each against an independent reference: closed forms
(mean/std of a constant map, the Wasserstein distance of two 1-D Gaussians), hand-written loops (projection, sort,
nearest patch), and autograd's gradcheck."""
import math
import statistics

import pytest
import torch

import nstedu
from nstedu import metrics
from nstedu import style_stats as S
from nstedu.config import TransferConfig
from nstedu.images import pil_to_tensor
from nstedu.objective import Objective, prepare_style_targets


def feats(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).relu()


# ------------------------------------------------------------------------------------------------ mean / std
def test_mean_std_of_a_constant_map_is_the_constant_and_zero():
    f = torch.full((1, 3, 5, 7), 2.5, dtype=torch.float64)
    ms = S.mean_std(f)
    assert ms.shape == (1, 3, 2)
    assert torch.allclose(ms[..., 0], torch.full((1, 3), 2.5, dtype=torch.float64))
    assert torch.allclose(ms[..., 1], torch.full((1, 3), math.sqrt(S._EPS), dtype=torch.float64))


def test_meanstd_loss_matches_a_loop():
    f, t = feats(1, 4, 3, 5), feats(1, 4, 6, 2, seed=1)
    expected = 0.0
    for c in range(4):
        a, b = f[0, c].flatten().tolist(), t[0, c].flatten().tolist()
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        sa = math.sqrt(sum((v - ma) ** 2 for v in a) / len(a) + S._EPS)
        sb = math.sqrt(sum((v - mb) ** 2 for v in b) / len(b) + S._EPS)
        expected += (ma - mb) ** 2 + (sa - sb) ** 2
    assert float(S.meanstd_loss(f, S.mean_std(t), scale=3.0)) == pytest.approx(3.0 * expected, rel=1e-10)


# ------------------------------------------------------------------------------------- sliced Wasserstein
def gaussian_features(mu, sigma, n, seed):
    """n samples of N(mu, sigma²) at exact quantiles, shuffled over the positions: (1, 1, 1, n)."""
    q = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    x = mu + sigma * math.sqrt(2) * torch.erfinv(2 * q - 1)
    return x[torch.randperm(n, generator=torch.Generator().manual_seed(seed))].view(1, 1, 1, n)


def test_swd_of_two_1d_gaussians_is_their_closed_form_w2():
    """W₂² between N(μ₁, σ₁²) and N(μ₂, σ₂²) is (μ₁ − μ₂)² + (σ₁ − σ₂)²; one channel, any unit direction."""
    a, b = gaussian_features(1.0, 2.0, 4000, 0), gaussian_features(-0.5, 0.7, 3000, 1)  # different sizes: resampled
    d = S.directions(1, 4, seed=3).double()
    assert torch.allclose(d.abs(), torch.ones_like(d))
    loss = S.sliced_wasserstein_loss(a, S.sorted_projections(b, d), d)
    assert float(loss) == pytest.approx(1.5 ** 2 + 1.3 ** 2, rel=1e-2)


def test_swd_matches_a_loop_over_directions():
    f, t = feats(1, 3, 4, 5), feats(1, 3, 5, 4, seed=1)  # same number of positions
    d = S.directions(3, 6, generator=torch.Generator().manual_seed(7)).double()
    expected = 0.0
    for p in range(6):
        pa = sorted(sum(float(d[c, p]) * float(f[0, c].flatten()[i]) for c in range(3)) for i in range(20))
        pb = sorted(sum(float(d[c, p]) * float(t[0, c].flatten()[i]) for c in range(3)) for i in range(20))
        expected += sum((x - y) ** 2 for x, y in zip(pa, pb))
    expected /= 6 * 20
    assert float(S.sliced_wasserstein_loss(f, S.sorted_projections(t, d), d)) == pytest.approx(expected, rel=1e-10)


def test_directions_are_unit_seeded_and_from_the_generator_given():
    d1 = S.directions(5, 9, generator=torch.Generator().manual_seed(4))
    d2 = S.directions(5, 9, seed=4)
    assert d1.shape == (5, 9) and torch.equal(d1, d2)
    assert torch.allclose(d1.norm(dim=0), torch.ones(9))
    assert not torch.equal(d1, S.directions(5, 9, seed=5))


def test_swd_is_zero_for_a_permutation_of_the_same_vectors():
    f = feats(1, 4, 6, 6)
    perm = f.flatten(2)[..., torch.randperm(36, generator=torch.Generator().manual_seed(2))].view(1, 4, 6, 6)
    d = S.directions(4, seed=0).double()
    assert float(S.sliced_wasserstein_loss(perm, S.sorted_projections(f, d), d)) < 1e-24


# ------------------------------------------------------------------------------------------------ patches
def test_mrf_nearest_neighbour_matches_a_loop_on_a_toy_pair():
    f, t = feats(1, 2, 5, 6), feats(1, 2, 6, 5, seed=1)
    theirs = S.target_patches(t)
    ours = S.patches(f)[0]
    expected = 0.0
    for i in range(ours.shape[0]):
        a = ours[i].tolist()
        best, best_j = -2.0, None
        for j in range(theirs.shape[1]):
            b = theirs[0, j].tolist()
            ncc = sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) + 1e-30)
            if ncc > best:
                best, best_j = ncc, j
        expected += sum((x - y) ** 2 for x, y in zip(a, theirs[0, best_j].tolist()))
    expected /= ours.shape[0]
    assert float(S.mrf_loss(f, theirs)) == pytest.approx(expected, rel=1e-10)
    assert float(S.mrf_loss(t, theirs)) == pytest.approx(0.0, abs=1e-20)  # every patch finds itself


def test_mrf_patches_are_3x3_windows_in_channel_major_order():
    f = torch.arange(2 * 4 * 5, dtype=torch.float64).view(1, 2, 4, 5)
    p = S.patches(f)
    assert p.shape == (1, 2 * 3, 18)
    assert p[0, 0].tolist() == f[0, :, 0:3, 0:3].flatten().tolist()
    assert p[0, 4].tolist() == f[0, :, 1:4, 1:4].flatten().tolist()  # row 1, column 1 of a 2 × 3 grid


def test_mrf_target_patches_stay_bounded(monkeypatch):
    monkeypatch.setattr(S, "MRF_MAX_TARGET_PATCHES", 10)
    assert S.target_patches(feats(1, 2, 12, 12)).shape[1] <= 10


# -------------------------------------------------------------------------------------------- gradients
def test_gradients_match_finite_differences():
    """(Features not rectified here: a tie in a sort — two all-zero positions — has no derivative.)"""
    f = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_(True)
    t = feats(1, 3, 5, 4, seed=1)
    d = S.directions(3, 5, seed=1).double()
    assert torch.autograd.gradcheck(lambda x: S.meanstd_loss(x, S.mean_std(t)), (f,))
    assert torch.autograd.gradcheck(lambda x: S.sliced_wasserstein_loss(x, S.sorted_projections(t, d), d), (f,))
    assert torch.autograd.gradcheck(lambda x: S.mrf_loss(x, S.target_patches(t)), (f,))


@pytest.mark.parametrize("stat", ["meanstd", "swd", "mrf"])
def test_the_target_gets_no_gradient(stat):
    f, t = feats(1, 3, 5, 5).requires_grad_(True), feats(1, 3, 5, 5, seed=1).requires_grad_(True)
    target = S.statistic_of(stat, t) if stat != "swd" else S.sorted_projections(t, S.directions(3).double())
    target = target.detach().requires_grad_(True)
    loss = S.style_loss(stat, {"l": f}, {"l": target}, {"l": 1.0}, {"l": S.directions(3).double()})
    loss.backward()
    assert f.grad is not None and float(f.grad.abs().sum()) > 0 and target.grad is None


# ---------------------------------------------------------------------------------- the relative terms
@pytest.mark.parametrize("stat", ["gram", "meanstd", "swd"])
def test_a_result_without_features_is_exactly_one_relative_unit_away(stat):
    """Features all zero: every relative error is 1 (≈ for meanstd, whose σ is √ε), so the style term is
    BALANCE × Σ w_l whatever the painting — the same scale as the Gram terms."""
    t = {"a": feats(1, 4, 6, 6), "b": feats(1, 8, 3, 3, seed=2)}
    targets = {k: S.statistic_of(stat, v) for k, v in t.items()}
    w = {"a": 0.3, "b": 0.7}
    scales = S.relative_weights(stat, targets, w)
    zero = {k: torch.zeros_like(v) for k, v in t.items()}
    if stat == "gram":
        value = nstedu.losses.style_loss(zero, targets, scales)
    else:
        value = S.style_loss(stat, zero, targets, scales, {k: S.directions(v.shape[1]).double() for k, v in t.items()})
    expected = 1.0
    if stat == "meanstd":  # σ of a zero map is √ε, not 0: per layer 1 − (2√ε Σσ − Cε) / ‖T‖²
        eps = S._EPS
        expected = sum(w[k] * (1 - (2 * eps ** 0.5 * float(v[..., 1].sum()) - v.shape[1] * eps) / float(v.pow(2).sum()))
                       for k, v in targets.items())
    assert float(value) == pytest.approx(S.BALANCE[stat] * expected, rel=1e-6)


def test_mrf_uses_li_and_wands_layers_at_the_default_style_layers(vgg):
    cfg = TransferConfig(size=64, style_loss="mrf")
    targets = prepare_style_targets("starry_night", vgg, cfg, 64, "cpu")
    assert set(targets[0].grams) == set(S.MRF_LAYERS)
    obj = Objective(vgg, pil_to_tensor(nstedu.samples.load_content("chelsea", 64)), targets, cfg)
    assert obj.style_layers == list(S.MRF_LAYERS) and obj.layer_weights == {k: 0.5 for k in S.MRF_LAYERS}


def test_unsupported_combinations_say_so(vgg):
    with pytest.raises(ValueError, match="style_loss must be one of"):
        nstedu.run_style_transfer("chelsea", "starry_night", size=32, steps=1, style_loss="histogram", progress=False)
    with pytest.raises(ValueError, match="masks need style_loss='gram'"):
        nstedu.run_style_transfer("chelsea", "starry_night", size=32, steps=1, style_loss="swd", progress=False,
                                  mask=nstedu.control.rectangle_mask(32, 21))
    with pytest.raises(ValueError, match="mrf's patches cannot be blended"):
        nstedu.run_style_transfer("chelsea", "starry_night", size=48, steps=1, style_loss="mrf", style_strength=0.5,
                                  progress=False)


@pytest.mark.parametrize("stat", ["meanstd", "swd"])
def test_style_strength_zero_and_blends_of_one_painting_leave_the_target(vgg, stat):
    cfg = TransferConfig(size=48, style_loss=stat)
    one = prepare_style_targets("starry_night", vgg, cfg, 48, "cpu")[0].grams
    two = prepare_style_targets(["starry_night", "starry_night"], vgg, TransferConfig(size=48, style_loss=stat,
                                                                                     style_blend=(0.3, 0.7)), 48, "cpu")[0].grams
    assert all(torch.allclose(one[k], two[k], atol=1e-5) for k in one)


def test_the_metrics_swd_and_colour_distance():
    f = feats(1, 3, 8, 8)
    assert metrics.swd_distances({"x": f}, {"x": f}, ["x"]) == {"x": 0.0}
    assert metrics.swd_distances({"x": torch.zeros_like(f)}, {"x": f}, ["x"])["x"] == pytest.approx(1.0)
    grey, white = torch.full((1, 3, 4, 4), 0.5), torch.ones(1, 3, 6, 6)
    lab = metrics.rgb_to_lab(white)
    assert torch.allclose(lab[:, 0], torch.full((1, 6, 6), 100.0, dtype=torch.float64), atol=1e-3)  # white: L = 100
    assert torch.allclose(lab[:, 1:], torch.zeros(1, 2, 6, 6, dtype=torch.float64), atol=1e-3)
    # grey 0.5 → L* = 53.39 (sRGB 128/255 is 53.59; 0.5 exactly: 53.389); greys differ only in L*, so the distance
    # along unit directions θ is |ΔL|·sqrt(mean θ_L²)
    d = metrics.directions(3, 64, seed=metrics.SWD_SEED)
    expected = (100 - 53.389) * float(d[0].pow(2).mean()) ** 0.5
    assert metrics.colour_distance(grey, white) == pytest.approx(expected, rel=1e-3)


# --------------------------------------------------------------------------------- the balance, measured
@pytest.mark.slow
def test_default_ratio_gives_a_sensible_balance_for_every_statistic(vgg):
    """At α/β = 1e-3 every statistic moves the photo as far as the Gram engine does between its 5e-3 and 5e-4
    settings (content distance), and closer to the painting than the photo itself (its own statistic)."""
    size, steps = 64, 60

    def run(stat, ratio):
        r = nstedu.run_style_transfer("chelsea", "starry_night", size=size, steps=steps, style_loss=stat,
                                      style_weight=1 / ratio, progress=False, device="cpu")
        return metrics.measure(r.image, "chelsea", "starry_night", vgg, all_measures=True)

    lo, hi = run("gram", 5e-3).content, run("gram", 5e-4).content
    photo = metrics.measure(nstedu.samples.load_content("chelsea", size), "chelsea", "starry_night", vgg, all_measures=True)
    for stat in S.STYLE_LOSSES:
        q = run(stat, 1e-3)
        print(stat, q.content, q.style, q.swd, q.colour, "gram range", lo, hi)
        assert 0.5 * lo < q.content < 1.5 * hi
        assert q.style < photo.style and q.swd < photo.swd
    assert statistics.mean([lo, hi]) > 0
