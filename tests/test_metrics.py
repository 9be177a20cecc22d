"""nstedu.metrics against a hand-written loop implementation, plus its properties."""
import numpy as np
import pytest
import torch

from nstedu import metrics, samples


def gram_loop(f):
    """G[i, j] = Σ_positions F[i] F[j] / (C H W), by explicit loops over numpy arrays."""
    _, c, h, w = f.shape
    a = f[0].numpy().astype(np.float64)
    g = np.zeros((c, c))
    for i in range(c):
        for j in range(c):
            s = 0.0
            for y in range(h):
                for x in range(w):
                    s += a[i, y, x] * a[j, y, x]
            g[i, j] = s / (c * h * w)
    return g


def rel_loop(x, r):
    num = den = 0.0
    for u, v in zip(np.ravel(x), np.ravel(r)):
        num += (float(u) - float(v)) ** 2
        den += float(v) ** 2
    return num / den


def test_style_and_content_distances_match_loops():
    g = torch.Generator().manual_seed(1)
    fx = {k: torch.rand(1, 3, 4, 5, generator=g) for k in metrics.STYLE_LAYERS}
    fs = {k: torch.rand(1, 3, 3, 6, generator=g) for k in metrics.STYLE_LAYERS}  # other size: Grams are C×C
    got = metrics.style_distances(fx, fs)
    for k in metrics.STYLE_LAYERS:
        assert got[k] == pytest.approx(rel_loop(gram_loop(fx[k]), gram_loop(fs[k])), rel=1e-6)
    a, b = torch.rand(1, 4, 3, 3, generator=g), torch.rand(1, 4, 3, 3, generator=g)
    assert metrics.content_distance(a, b) == pytest.approx(rel_loop(a.numpy(), b.numpy()), rel=1e-6)


def test_relative_error_hand_values_and_errors():
    assert metrics.relative_error(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0])) == pytest.approx(4.0)
    assert metrics.relative_error(torch.zeros(2), torch.zeros(2)) == 0.0
    assert metrics.relative_error(torch.ones(2), torch.zeros(2)) == float("inf")
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.relative_error(torch.zeros(2), torch.zeros(3))


def test_scale_behaviour():
    """Scaling the result's features by k gives a content distance of (k−1)² and a Gram error of (k²−1)²: the
    measures are relative and scale-free (the same factor on both sides changes nothing)."""
    g = torch.Generator().manual_seed(2)
    f = {k: torch.rand(1, 4, 5, 5, generator=g) for k in metrics.STYLE_LAYERS}
    k = 1.5
    scaled = {n: v * k for n, v in f.items()}
    assert metrics.content_distance(f["relu1_1"] * k, f["relu1_1"]) == pytest.approx((k - 1) ** 2)
    assert all(v == pytest.approx((k * k - 1) ** 2) for v in metrics.style_distances(scaled, f).values())
    other = {n: torch.rand(1, 4, 5, 5, generator=g) for n in f}
    both = metrics.style_distances({n: v * 3 for n, v in other.items()}, {n: v * 3 for n, v in f.items()})
    assert both == pytest.approx(metrics.style_distances(other, f))


def test_measure_identical_is_zero_and_distinct_is_not(vgg):
    photo = samples.load("chelsea", 64)
    q = metrics.measure(photo, photo, photo, vgg)
    assert q.content == 0.0 and q.style == 0.0 and set(q.layers) == set(metrics.STYLE_LAYERS)
    q2 = metrics.measure(photo, photo, "starry_night", vgg)
    assert q2.content == 0.0 and all(v > 0.05 for v in q2.layers.values())
    assert q2.style == pytest.approx(np.mean(list(q2.layers.values())))
    assert q2.row()[:2] == [q2.content, q2.style] and len(q2.row()) == 7


def test_measure_resizes_like_the_definition(vgg):
    """The photo is resized to the result's size and the painting to the result's longest side: measuring a
    64 px result against full-size images equals measuring against images resized by hand."""
    from nstedu.images import resize_longest

    out = samples.load("rocket", 64)
    photo, painting = samples.load("chelsea"), samples.load("great_wave")
    auto = metrics.measure(out, photo, painting, vgg)
    manual = metrics.measure(out, photo.resize(out.size, metrics._resample(photo.size, out.size)),
                             resize_longest(painting, 64), vgg)
    assert auto == manual
    _, p, s = metrics.prepare(out, photo, painting)
    assert p.size == out.size and max(s.size) == 64


def test_measure_uses_post_relu_features(vgg):
    """The measure reads rectified activations: with features taken by hand at relu layers it agrees."""
    out, photo, painting = (samples.load(n, 48) for n in ("coffee", "astronaut", "shipwreck"))
    q = metrics.measure(out, photo, painting, vgg)
    o, p, s = (metrics.pil_to_tensor(im) for im in metrics.prepare(out, photo, painting))
    with torch.no_grad():
        fo, fp, fs = vgg(o, ["relu4_2"] + list(metrics.STYLE_LAYERS)), vgg(p, ["relu4_2"]), vgg(s, metrics.STYLE_LAYERS)
    assert min(float(v.min()) for v in fo.values()) >= 0
    assert q.content == pytest.approx(rel_loop(fo["relu4_2"].numpy(), fp["relu4_2"].numpy()), rel=1e-5)
    for layer in metrics.STYLE_LAYERS:  # Grams by numpy matrix products (the loop is too slow for 512 channels)
        a, b = (f[layer][0].flatten(1).double().numpy() for f in (fo, fs))
        ga, gb = a @ a.T / a.size, b @ b.T / b.size
        assert q.layers[layer] == pytest.approx(((ga - gb) ** 2).sum() / (gb ** 2).sum(), rel=1e-5)


def test_warping_error_is_one_of_the_measures():
    """The video measure is reachable as nstedu.metrics.warping_error and is a mean over the unmasked pixels:
    with zero flow, frames 0.5 and 0.25 everywhere and half the pixels masked out, it is 0.25² exactly."""
    from nstedu import flow, metrics

    assert metrics.warping_error is flow.warping_error
    frame, prev = torch.full((1, 3, 8, 8), 0.5), torch.full((1, 3, 8, 8), 0.25)
    prev[..., :, 4:] = 0.9                      # differs only where the mask is 0
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :4] = 1
    assert metrics.warping_error(frame, prev, torch.zeros(1, 2, 8, 8), mask) == pytest.approx(0.0625, rel=1e-6)
