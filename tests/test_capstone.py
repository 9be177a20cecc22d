"""The capstone and harder-track checks: a correct implementation passes against nstedu's engine (run here with the
same settings), typical wrong ones fail with a hint that names the part that is wrong. The references are checked
against independent computations (explicit loops, the defining properties)."""
import types

import pytest
import torch

from nstedu import checks
from nstedu import losses as L
from nstedu.checks import capstone as C
from nstedu.checks import harder as H
from nstedu.transfer import TransferConfig

CONTENT_LAYER = L.DEFAULT_CONTENT_LAYERS[0]
STYLE_LAYERS = L.DEFAULT_STYLE_LAYERS
LAYER_WEIGHTS = TransferConfig().layer_weights()


# ------------------------------------------------------------ a learner's capstone, written independently
def gram_matrix(features):
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features, targets):
    return 0.5 * ((features[CONTENT_LAYER] - targets[CONTENT_LAYER].detach()) ** 2).sum()


def style_loss(features, target_grams, layer_weights=None):
    layer_weights = layer_weights or {k: 1 / len(target_grams) for k in target_grams}
    return sum(layer_weights[k] * 0.25 * ((gram_matrix(features[k]) - a.detach()) ** 2).sum()
               for k, a in target_grams.items())


def tv_loss(image):
    return (((image[..., 1:, :] - image[..., :-1, :]) ** 2).sum() + ((image[..., :, 1:] - image[..., :, :-1]) ** 2).sum()) * 255 ** 2


def optimization_step(x, objective, optimizer):
    optimizer.zero_grad()
    loss = objective(x)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        x.clamp_(0, 1)
    return loss.item()


def total_loss(x, vgg, photo_features, style_grams, alpha, beta, gamma):
    s = L.size_scale(*x.shape[-2:])
    f = vgg(x, list(STYLE_LAYERS) + [CONTENT_LAYER])
    loss = x.new_zeros(())
    if alpha:
        loss = loss + alpha * s * content_loss(f, photo_features)
    if beta:
        loss = loss + beta * style_loss(f, style_grams, LAYER_WEIGHTS)
    if gamma:
        loss = loss + gamma * s * tv_loss(x)
    return loss


def style_transfer(vgg, photo, painting, start, alpha, beta, gamma, steps, lr):
    with torch.no_grad():
        pf = vgg(photo, [CONTENT_LAYER]) if alpha else None
        sg = {k: gram_matrix(v) for k, v in vgg(painting, list(STYLE_LAYERS)).items()} if beta else None
    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    losses = [optimization_step(x, lambda img: total_loss(img, vgg, pf, sg, alpha, beta, gamma), opt) for _ in range(steps)]
    return x.detach(), losses


def variant(**replace):
    """style_transfer with some of its building blocks replaced (rebinding the globals it and they see)."""
    g = dict(globals())
    g.update(replace)
    for name in ("gram_matrix", "content_loss", "style_loss", "tv_loss", "optimization_step", "total_loss", "style_transfer"):
        if name not in replace:
            f = globals()[name]
            g[name] = types.FunctionType(f.__code__, g, name, f.__defaults__)
    return g["style_transfer"]


def expect(result, status, hint=""):
    assert result.status == status, (result.status, result.hint)
    assert hint.lower() in result.hint.lower(), result.hint


@pytest.mark.parametrize("task", C.TASKS)
def test_a_correct_capstone_matches_the_engine(task):
    expect(checks.quietly(C.check_capstone, style_transfer, task), "passed")


@pytest.mark.slow  # each case runs the engine's reference: make test-slow (CI)
def test_the_hidden_inputs_are_another_problem():
    a, b = C.tiny_problem("transfer"), C.tiny_problem("transfer", size=C.SIZE + 8, seed=1)
    assert a[0].shape != b[0].shape
    expect(checks.quietly(C.check_capstone, style_transfer, "transfer", seed=1), "passed")


def _tv_one_direction(image):
    return ((image[..., :, 1:] - image[..., :, :-1]) ** 2).sum() * 255 ** 2


def _no_scale(x, vgg, pf, sg, alpha, beta, gamma):
    f = vgg(x, list(STYLE_LAYERS) + [CONTENT_LAYER])
    loss = x.new_zeros(())
    if alpha:
        loss = loss + alpha * content_loss(f, pf)
    if beta:
        loss = loss + beta * style_loss(f, sg, LAYER_WEIGHTS)
    return loss + (gamma * tv_loss(x) if gamma else 0)


def _no_clamp(x, objective, optimizer):
    optimizer.zero_grad()
    loss = objective(x)
    loss.backward()
    optimizer.step()
    return loss.item()


def _from_photo(vgg, photo, painting, start, alpha, beta, gamma, steps, lr):
    return style_transfer(vgg, photo, painting, photo, alpha, beta, gamma, steps, lr)


def _fixed_lr(vgg, photo, painting, start, alpha, beta, gamma, steps, lr):
    return style_transfer(vgg, photo, painting, start, alpha, beta, gamma, steps, 0.01)


def _gram_hw(features):
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


@pytest.mark.slow  # each case runs the engine's reference: make test-slow (CI)
@pytest.mark.parametrize("fn, task, hint", [
    (variant(tv_loss=_tv_one_direction), "transfer", "tv_loss does not pass its own check"),
    (variant(total_loss=_no_scale), "inversion", "size factor"),
    (variant(total_loss=_no_scale), "transfer", "size factor"),
    (variant(optimization_step=_no_clamp), "texture", "optimization_step does not pass"),
    (variant(gram_matrix=_gram_hw), "texture", "gram_matrix does not pass"),
    (_from_photo, "inversion", "your loss at the start image is 0"),
    (_fixed_lr, "texture", "torch.optim.Adam([x], lr=lr)"),
    (lambda vgg, photo, painting, start, **kw: (start, []), "texture", "losses must be a list"),
])
def test_typical_wrong_capstones_fail_with_a_hint(fn, task, hint):
    expect(checks.quietly(C.check_capstone, fn, task), "failed", hint)


def test_not_implemented_is_reported():
    def style_transfer(*args, **kwargs):
        raise NotImplementedError("style_transfer: your code here")
    expect(checks.quietly(checks.check_style_transfer, style_transfer), "not implemented")


# ------------------------------------------------------------------------------------------ harder track
def lbfgs_ok(x, objective, optimizer):
    def closure():
        with torch.no_grad():
            x.clamp_(0, 1)
        optimizer.zero_grad()
        loss = objective(x)
        loss.backward()
        return loss
    loss = optimizer.step(closure)
    with torch.no_grad():
        x.clamp_(0, 1)
    return loss.item()


def test_lbfgs_reference_keeps_every_evaluation_in_range_and_descends():
    x0, objective = checks.optimization._tiny_problem(0)
    x = x0.clone().requires_grad_(True)
    seen = []
    wrapped = lambda img: (seen.append((float(img.detach().min()), float(img.detach().max()))), objective(img))[1]  # noqa: E731
    opt = torch.optim.LBFGS([x], **H.LBFGS_SETTINGS)
    losses = [H.reference_lbfgs_step(x, wrapped, opt) for _ in range(3)]
    assert all(lo >= 0 and hi <= 1 for lo, hi in seen) and len(seen) > 3   # the line search's trial points too
    assert losses[0] > losses[-1] and float(objective(x.detach())) < losses[0]
    expect(checks.check_lbfgs_step(lbfgs_ok), "passed")


def lbfgs_clamp_after_only(x, objective, optimizer):
    def closure():
        optimizer.zero_grad()
        loss = objective(x)
        loss.backward()
        return loss
    loss = optimizer.step(closure)
    with torch.no_grad():
        x.clamp_(0, 1)
    return loss.item()


def lbfgs_no_clamp(x, objective, optimizer):
    def closure():
        optimizer.zero_grad()
        loss = objective(x)
        loss.backward()
        return loss
    return optimizer.step(closure).item()


def lbfgs_tensor(x, objective, optimizer):
    lbfgs_ok(x, objective, optimizer)
    return torch.tensor(1.0)


def lbfgs_no_closure(x, objective, optimizer):
    loss = objective(x)
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("fn, hint", [
    (lbfgs_clamp_after_only, "clamp only after the step"),
    (lbfgs_no_clamp, "pixels left [0, 1]"),
    (lbfgs_tensor, "float"),
    (lbfgs_no_closure, "needs a closure"),
])
def test_lbfgs_mistakes(fn, hint):
    expect(checks.check_lbfgs_step(fn), "failed", hint)


def masked_loop(f, m):   # independent: explicit sums
    c = f.shape[1]
    g = torch.zeros(1, c, c)
    for i in range(c):
        for j in range(c):
            g[0, i, j] = (f[0, i] * m[0, 0] * f[0, j] * m[0, 0]).sum() / (c * m.sum())
    return g


def test_masked_gram_reference_is_the_loop_and_mistakes_are_named():
    f, m = torch.rand(1, 3, 4, 5), torch.rand(1, 1, 4, 5)
    assert torch.allclose(L.gram_matrix(f, m), masked_loop(f, m), atol=1e-6)
    expect(checks.check_masked_gram_matrix(masked_loop), "passed")
    hw = lambda f, m: masked_loop(f, m) * m.sum() / (f.shape[2] * f.shape[3])  # noqa: E731
    expect(checks.check_masked_gram_matrix(hw), "failed", "divide by C · Σm")
    once = lambda f, m: (f.reshape(1, f.shape[1], -1) @ (f * m).reshape(1, f.shape[1], -1).transpose(1, 2)) / (f.shape[1] * m.sum())  # noqa: E731
    expect(checks.check_masked_gram_matrix(once), "failed", "both factors")


def test_colour_matching_reference_matches_mean_and_covariance():
    from nstedu.control import match_color_histogram

    g = torch.Generator().manual_seed(0)
    style, content = torch.rand(1, 3, 30, 20, generator=g) * 0.5 + 0.2, torch.rand(1, 3, 25, 25, generator=g) * 0.4 + 0.3
    out = match_color_histogram(style, content).reshape(3, -1).double()
    c = content.reshape(3, -1).double()
    assert torch.allclose(out.mean(1), c.mean(1), atol=1e-4)
    assert torch.allclose(torch.cov(out), torch.cov(c), atol=2e-4)
    expect(checks.check_match_color_histogram(match_color_histogram), "passed")
    expect(checks.check_match_color_histogram(H._cholesky_variant), "failed", "cholesky")
    expect(checks.check_match_color_histogram(lambda s, c: match_color_histogram(c, s)), "failed", "swapped")
