"""Losses against explicit loops, hand-computed values and torch.autograd.gradcheck."""

import pytest
import torch

from nstedu import losses as L


def gram_loop(f):
    b, c, h, w = f.shape
    g = torch.zeros(b, c, c, dtype=f.dtype)
    for n in range(b):
        for i in range(c):
            for j in range(c):
                s = 0.0
                for y in range(h):
                    for x in range(w):
                        s += f[n, i, y, x] * f[n, j, y, x]
                g[n, i, j] = s / (c * h * w)
    return g


def test_gram_matches_loop():
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    assert torch.allclose(L.gram_matrix(f), gram_loop(f))


def test_gram_hand_value():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2, H=1, W=2
    # F F^T = [[1+4, 3+8], [3+8, 9+16]] = [[5, 11], [11, 25]], / (C*H*W = 4)
    assert torch.allclose(L.gram_matrix(f), torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))


def test_masked_gram_is_gram_of_region():
    f = torch.randn(1, 3, 4, 6, dtype=torch.float64)
    mask = torch.zeros(1, 1, 4, 6, dtype=torch.float64)
    mask[..., :, :2] = 1
    region = f[..., :, :2]
    assert torch.allclose(L.gram_matrix(f, mask), L.gram_matrix(region))
    assert torch.allclose(L.gram_matrix(f, torch.ones_like(mask)), L.gram_matrix(f))


def test_content_loss_hand_value():
    f = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    p = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
    assert float(L.content_loss(f, p)) == pytest.approx(0.5 * (1 + 4 + 4))
    assert float(L.content_loss(f, p, scale=2.0)) == pytest.approx(9.0)
    with pytest.raises(ValueError, match="shape"):
        L.content_loss(f, p[:, :2])


def test_style_layer_loss_is_gatys_form():
    f = torch.randn(1, 4, 3, 5, dtype=torch.float64)
    a = torch.randn(1, 4, 3, 5, dtype=torch.float64)
    n, m = 4, 15
    G, A = (f.view(4, 15) @ f.view(4, 15).T), (a.view(4, 15) @ a.view(4, 15).T)
    gatys = ((G - A) ** 2).sum() / (4 * n**2 * m**2)
    assert float(L.style_layer_loss(L.gram_matrix(f), L.gram_matrix(a))) == pytest.approx(float(gatys))


def test_style_loss_weights_layers():
    feats = {"a": torch.randn(1, 2, 3, 3), "b": torch.randn(1, 2, 3, 3)}
    targets = {"a": torch.zeros(1, 2, 2), "b": torch.zeros(1, 2, 2)}
    ea = float(L.style_layer_loss(L.gram_matrix(feats["a"]), targets["a"]))
    eb = float(L.style_layer_loss(L.gram_matrix(feats["b"]), targets["b"]))
    assert float(L.style_loss(feats, targets)) == pytest.approx((ea + eb) / 2, rel=1e-6)
    assert float(L.style_loss(feats, targets, {"a": 1.0, "b": 0.0})) == pytest.approx(ea, rel=1e-6)


def test_tv_hand_value():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]]).view(1, 1, 2, 2)
    # vertical diffs: (1-0), (1-1) ; horizontal: (1-0), (1-1)  -> 2 squared units, ×255²
    assert float(L.tv_loss(x)) == pytest.approx(2 * 255.0**2)
    y = torch.zeros(1, 1, 3, 3)
    y[..., :, 1] = 1.0  # a vertical stripe: only horizontal differences
    assert float(L.tv_loss(y)) == pytest.approx(6 * 255.0**2)  # a one-direction TV would give 0 or 6 — both directions count


def test_size_scale():
    assert L.size_scale(512, 512) == 1.0
    assert L.size_scale(256, 256) == 4.0
    assert L.size_scale(512, 512, size_invariant=False) == 1.0


def test_gradcheck():
    f = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    p = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    a = L.gram_matrix(torch.randn(1, 2, 3, 3, dtype=torch.float64))
    assert torch.autograd.gradcheck(L.gram_matrix, (f,))
    assert torch.autograd.gradcheck(lambda t: L.content_loss(t, p), (f,))
    assert torch.autograd.gradcheck(lambda t: L.style_layer_loss(L.gram_matrix(t), a), (f,))
    assert torch.autograd.gradcheck(lambda t: L.tv_loss(t) / 255**2, (f,))
    m = torch.rand(1, 1, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: L.gram_matrix(t, m), (f,))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("channels", [16, 64, 256])   # 256 ≥ ONEDNN_GRAM_CHANNELS: the oneDNN route on the CPU
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("masked", [False, True])
def test_gram_and_fused_style_loss_match_a_float64_loop_in_every_layout(batch, channels, layout, masked):
    """Every route of the Gram products (BLAS, the channels_last view, oneDNN) gives the Gram of a float64 loop and
    its gradient; the fused per-layer loss of style_loss equals w·style_layer_loss(gram_matrix) and its gradient,
    also for a target that is not symmetric."""
    g = torch.Generator().manual_seed(channels + batch)
    x64 = torch.rand(batch, channels, 5, 7, generator=g, dtype=torch.float64)
    mask = torch.rand(1, 1, 5, 7, generator=g) if masked else None
    x = x64.float()
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    m = torch.ones(1, 1, 5, 7, dtype=torch.float64) if mask is None else mask.double()
    f = (x64 * m).reshape(batch, channels, -1)
    norm = channels * m.sum()
    ref = sum(f[:, :, n, None] * f[:, None, :, n] for n in range(f.shape[2])) / norm  # a loop over positions
    gram = L.gram_matrix(x, mask)
    weights = torch.rand(gram.shape, generator=g)
    (grad,) = torch.autograd.grad((gram * weights).sum(), x)
    ref_grad = ((weights.double() + weights.double().transpose(1, 2)) @ f / norm).view(x.shape) * m
    assert torch.allclose(gram.double(), ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
    assert torch.allclose(grad.double(), ref_grad, rtol=1e-4, atol=1e-5 * float(ref_grad.abs().max()))
    assert grad.shape == x.shape
    target = torch.rand(1, channels, channels, generator=g) * float(ref.mean())  # not symmetric on purpose
    fused = L.style_loss({"a": x}, {"a": target}, {"a": 0.7}, None if mask is None else {"a": mask})
    plain = 0.7 * L.style_layer_loss(L.gram_matrix(x, mask), target)
    (g_fused,) = torch.autograd.grad(fused, x)
    (g_plain,) = torch.autograd.grad(plain, x)
    assert float(fused) == pytest.approx(float(plain), rel=1e-5)
    assert torch.allclose(g_fused, g_plain, rtol=1e-4, atol=1e-5 * float(g_plain.abs().max()))
