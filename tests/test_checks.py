"""The exercise autograder: every check passes the reference and names each known mistake, fed deliberately broken
implementations. References are cross-checked against independent computations (loops, the engine's own loop,
nstedu.control)."""
import pytest
import torch

from nstedu import checks
from nstedu import losses as L
from nstedu.checks.core import neighbour_layers

CL = checks.content_layer()               # the engine's content layer (relu4_2 once the defaults are post-ReLU)
N41, N52 = neighbour_layers()             # the usual wrong layers, e.g. relu4_1 and relu5_2


def expect(result, status, hint=""):
    assert result.status == status, (result.status, result.hint)
    assert hint.lower() in result.hint.lower(), result.hint


# ----------------------------------------------------------------------------------------------- basics
def test_rel_error():
    x = torch.tensor([1.0, -2.0, 3.0])
    assert checks.rel_error(x, x) == 0
    assert checks.rel_error(x, x * 1.1) == pytest.approx(0.1 / 2.1, rel=1e-5)
    assert checks.rel_error(x, x[:2]) == float("inf")


def test_not_implemented_prints_and_does_not_raise(capsys):
    def gram_matrix(features):
        raise NotImplementedError("gram_matrix: your code here")

    result = checks.check_gram_matrix(gram_matrix)
    expect(result, "not implemented", "gram_matrix: your code here")
    assert not result
    assert "not implemented yet" in capsys.readouterr().out


def test_verdict_is_printed_and_returned_and_never_written_to_a_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NSTEDU_GRADE_FILE", str(tmp_path / "grades.jsonl"))   # the old, forgeable mechanism
    assert checks.check_gram_matrix(L.gram_matrix)
    bad = checks.check_tv_loss(lambda x: L.tv_loss(x) * 2)
    out = capsys.readouterr().out
    assert "gram_matrix: PASSED" in out and "rel_error" in out and "tv_loss: FAILED" in out and "hint:" in out
    assert bad.status == "failed" and "2" in bad.hint
    assert list(tmp_path.iterdir()) == []
    assert checks.quietly(checks.check_gram_matrix, L.gram_matrix).status == "passed"
    assert capsys.readouterr().out == ""


def test_a_crash_is_reported_not_raised():
    expect(checks.check_tv_loss(lambda x: x.nonexistent()), "failed", "AttributeError")


# ------------------------------------------------------------------------------------------------- gram
def _flat(f):
    b, c, h, w = f.shape
    return f.reshape(b, c, h * w), (b, c, h, w)


def gram_loop(f):  # independent reference: explicit sums
    b, c, h, w = f.shape
    g = torch.zeros(b, c, c)
    for n in range(b):
        for i in range(c):
            for j in range(c):
                g[n, i, j] = (f[n, i] * f[n, j]).sum() / (c * h * w)
    return g


def test_gram_reference_is_the_loop():
    f = torch.randn(2, 3, 4, 5)
    assert torch.allclose(L.gram_matrix(f), gram_loop(f), atol=1e-6)
    expect(checks.check_gram_matrix(gram_loop), "passed")


def gram_unnormalized(f):
    x, _ = _flat(f)
    return x @ x.transpose(1, 2)


def gram_hw_only(f):
    x, (b, c, h, w) = _flat(f)
    return x @ x.transpose(1, 2) / (h * w)


def gram_transposed(f):
    x, (b, c, h, w) = _flat(f)
    return x.transpose(1, 2) @ x / (c * h * w)


def gram_no_batch(f):
    b, c, h, w = f.shape
    x = f.reshape(c, -1) if b == 1 else f[0].reshape(c, -1)
    return x @ x.T / (c * h * w)


def gram_wrong_view(f):
    b, c, h, w = f.shape
    x = f.view(b, -1, c)
    return x.transpose(1, 2) @ x / (c * h * w)


def gram_covariance(f):
    x, (b, c, h, w) = _flat(f)
    x = x - x.mean(dim=2, keepdim=True)
    return x @ x.transpose(1, 2) / (c * h * w)


def gram_elementwise(f):
    x, (b, c, h, w) = _flat(f)
    return torch.diag_embed((x * x).sum(-1)) / (c * h * w)


@pytest.mark.parametrize("fn, hint", [
    (gram_unnormalized, "divide by C·H·W"),
    (gram_hw_only, "divided by H·W only"),
    (gram_transposed, "Fᵀ F"),
    (gram_no_batch, "batch dimension"),
    (gram_wrong_view, "channels-first"),
    (gram_covariance, "covariance"),
    (gram_elementwise, "diagonal"),
])
def test_gram_mistakes(fn, hint):
    expect(checks.check_gram_matrix(fn), "failed", hint)


def gram_detached(f):
    return L.gram_matrix(f.detach())


def gram_half_detached(f):
    x, (b, c, h, w) = _flat(f)
    return x @ x.detach().transpose(1, 2) / (c * h * w)


def gram_numpy(f):
    b, c, h, w = f.shape
    x = f.detach().numpy().reshape(b, c, h * w)
    return torch.from_numpy(x @ x.transpose(0, 2, 1) / (c * h * w))


def gram_numel(f):
    x, _ = _flat(f)
    return x @ x.transpose(1, 2) / f.numel()


@pytest.mark.parametrize("fn, hint", [
    (gram_detached, "no gradient"),          # the values are right: this used to pass and fail later elsewhere
    (gram_numpy, "no gradient"),
    (gram_half_detached, "gradient is not"),
    (gram_numel, "features.numel()"),
])
def test_gram_gradient_and_numel_mistakes(fn, hint):
    result = checks.check_gram_matrix(fn)
    expect(result, "failed", hint)


def test_gram_off_by_cwh_names_the_factor(capsys):
    checks.check_gram_matrix(gram_unnormalized)
    assert "60× too large (= C·H·W" in capsys.readouterr().out  # first input is (1, 3, 4, 5)


# ---------------------------------------------------------------------------------------------- content
def content_ref(f, t):
    return 0.5 * ((f[CL] - t[CL].detach()) ** 2).sum()


@pytest.mark.parametrize("fn, hint", [
    (lambda f, t: 0.5 * ((f[N52] - t[N52].detach()) ** 2).sum(), "wrong layer"),
    (lambda f, t: 0.5 * ((f[N41] - t[N41].detach()) ** 2).sum(), f"'{N41}'"),
    (lambda f, t: 0.5 * ((f[CL] - t[CL]) ** 2).sum(), "detach"),
    (lambda f, t: ((f[CL] - t[CL].detach()) ** 2).mean(), "mean"),
    (lambda f, t: ((f[CL] - t[CL].detach()) ** 2).sum(), "½"),
    (lambda f, t: sum(0.5 * ((f[k] - t[k].detach()) ** 2).sum() for k in f), "all layers"),
    (lambda f, t: 0.5 * (f[CL] - t[CL].detach()).abs().sum(), "absolute"),
    (lambda f, t: 0.5 * (f[CL] - t[CL].detach()) ** 2, "element-wise"),
    (lambda f, t: 0.5 * ((f[CL].detach() - t[CL].detach()) ** 2).sum(), "no gradient"),
    (lambda f, t: f["conv42"], f"content layer is '{CL}'"),
])
def test_content_mistakes(fn, hint):
    expect(checks.check_content_loss(fn), "failed", hint)


def test_content_reference_passes_and_layer_is_configurable():
    expect(checks.check_content_loss(content_ref), "passed")
    expect(checks.check_content_loss(lambda f, t: L.content_loss(f[N52], t[N52]), layer=N52), "passed")


def test_check_layers_follow_the_engine_defaults():
    assert CL == L.DEFAULT_CONTENT_LAYERS[0] and checks.style_layers() == tuple(L.DEFAULT_STYLE_LAYERS)
    f, t = checks.core._feature_dicts(torch.Generator().manual_seed(0))
    assert set(L.DEFAULT_STYLE_LAYERS) | {CL, N41, N52} == set(f) == set(t)
    assert all(float(v.detach().min()) >= 0 for v in f.values())   # post-ReLU features, as the losses see them


# ------------------------------------------------------------------------------------------------ style
def style_ref(f, a, w=None):  # independent of nstedu.losses.style_loss
    w = w or {k: 1 / len(a) for k in a}
    total = 0.0
    for k in a:
        n, m = f[k].shape[1], f[k].shape[2] * f[k].shape[3]
        x = f[k].reshape(n, m)
        G = x @ x.T  # Gatys et al.'s unnormalized form: Σ (G − A)² / (4 N² M²)
        total = total + w[k] * ((G - a[k][0].detach() * n * m) ** 2).sum() / (4 * n * n * m * m)
    return total


def style_last_only(f, a, w=None):
    w = w or {k: 1 / len(a) for k in a}
    for k in a:
        loss = w[k] * 0.25 * ((L.gram_matrix(f[k]) - a[k].detach()) ** 2).sum()
    return loss


def _style(f, a, w=None, *, detach=True, weights="given", quarter=0.25, gram_fn=L.gram_matrix,
           reduce=lambda d: (d ** 2).sum(), over=None):
    """A style loss with one deliberate mistake, chosen by the keyword arguments."""
    if w is None or weights != "given":
        w = {k: (1.0 if weights == "ones" else 1 / len(a)) for k in a}
    return sum(w[k] * quarter * reduce(gram_fn(f[k]) - (a[k].detach() if detach else a[k])) for k in (over or a))


def _unnormalized(x):
    return L.gram_matrix(x) * x.shape[1] * x.shape[2] * x.shape[3]


@pytest.mark.parametrize("fn, hint", [
    (style_last_only, "loss +="),
    (lambda f, a, w=None: _style(f, a, w, detach=False), "detach"),
    (lambda f, a, w=None: _style(f, a, w, weights="uniform"), "ignored layer_weights"),
    (lambda f, a, w=None: _style(f, a, w, weights="ones"), "1/L"),
    (lambda f, a, w=None: _style(f, a, w, quarter=1.0), "4×"),
    (lambda f, a, w=None: _style(f, a, w, gram_fn=_unnormalized), "un-normalized Gram"),
    (lambda f, a, w=None: _style(f, a, w, over=list(f)), "loop over the layers of target_grams"),
    (lambda f, a, w=None: _style(f, a, w, reduce=lambda d: (d ** 2).mean()), "mean"),
    (lambda f, a, w=None: _style(f, a, w, reduce=lambda d: d.norm(), quarter=1.0), "square root"),
    (lambda f, a, w=None: _style(f, a, w, gram_fn=gram_transposed), "gram_matrix"),
])
def test_style_mistakes(fn, hint):
    expect(checks.check_style_loss(fn), "failed", hint)


def style_first_only(f, a, w=None):
    w = w or {k: 1 / len(a) for k in a}
    for k in a:
        return w[k] * 0.25 * ((L.gram_matrix(f[k]) - a[k].detach()) ** 2).sum()


def style_middle_unweighted(f, a, w=None):
    k = list(a)[1]
    return 0.25 * ((L.gram_matrix(f[k]) - a[k].detach()) ** 2).sum()


@pytest.mark.parametrize("fn, hint", [
    (style_first_only, "`return` inside the loop"),
    (style_middle_unweighted, "only one layer"),
    (lambda f, a, w=None: _style(f, a, w, reduce=lambda d: d.abs().sum(), quarter=1.0), "L1"),
])
def test_style_one_layer_and_l1_mistakes(fn, hint):
    expect(checks.check_style_loss(fn), "failed", hint)


def test_style_reference_passes():
    expect(checks.check_style_loss(style_ref), "passed")
    expect(checks.check_style_loss(L.style_loss), "passed")


# --------------------------------------------------------------------------------------------------- tv
def tv_ref(x):  # independent: explicit neighbour loops
    total = torch.zeros(())
    H, W = x.shape[-2:]
    for i in range(H):
        for j in range(W):
            if i + 1 < H:
                total = total + ((x[..., i + 1, j] - x[..., i, j]) ** 2).sum()
            if j + 1 < W:
                total = total + ((x[..., i, j + 1] - x[..., i, j]) ** 2).sum()
    return total * 255.0 ** 2


def _dx(x):
    return x[..., :, 1:] - x[..., :, :-1]


def _dy(x):
    return x[..., 1:, :] - x[..., :-1, :]


@pytest.mark.parametrize("fn, hint", [
    (lambda x: (_dx(x) ** 2).sum() * 255 ** 2, "only one direction: you have the horizontal"),
    (lambda x: (_dy(x) ** 2).sum() * 255 ** 2, "only one direction: you have the vertical"),
    (lambda x: (_dx(x) ** 2).sum() + (_dy(x) ** 2).sum(), "255²"),
    (lambda x: ((_dx(x) ** 2).sum() + (_dy(x) ** 2).sum()) * 255, "not by 255"),
    (lambda x: ((x.roll(-1, -1) - x) ** 2).sum() * 255 ** 2 + ((x.roll(-1, -2) - x) ** 2).sum() * 255 ** 2, "roll"),
    (lambda x: ((_dx(x) ** 2).mean() + (_dy(x) ** 2).mean()) * 255 ** 2, "mean"),
    (lambda x: (_dx(x).abs().sum() + _dy(x).abs().sum()) * 255 ** 2, "absolute"),
    (lambda x: torch.tensor(L.tv_loss(x).item()), "no gradient"),
    (lambda x: ((_dx(x) ** 2).sum() + (_dy(x) ** 2).sum()) * 255 ** 2 / x.numel(), "numel"),
])
def test_tv_mistakes(fn, hint):
    expect(checks.check_tv_loss(fn), "failed", hint)


def test_tv_reference_passes():
    x = torch.rand(2, 3, 5, 7)
    assert torch.allclose(L.tv_loss(x), tv_ref(x), rtol=1e-5)
    expect(checks.check_tv_loss(tv_ref), "passed")


# ------------------------------------------------------------------------------------ optimization step
def step_ok(x, objective, optimizer):
    optimizer.zero_grad()
    loss = objective(x)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        x.clamp_(0, 1)
    return loss.item()


def step_no_zero(x, objective, optimizer):
    loss = objective(x)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        x.clamp_(0, 1)
    return loss.item()


def step_no_clamp(x, objective, optimizer):
    optimizer.zero_grad()
    loss = objective(x)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_rebind(x, objective, optimizer):
    optimizer.zero_grad()
    loss = objective(x)
    loss.backward()
    optimizer.step()
    x = x.clamp(0, 1)  # noqa: F841 - the mistake: rebinding a local name
    return loss.item()


def step_clamp_with_grad(x, objective, optimizer):
    optimizer.zero_grad()
    loss = objective(x)
    loss.backward()
    optimizer.step()
    x.clamp_(0, 1)
    return loss.item()


def step_no_backward(x, objective, optimizer):
    optimizer.zero_grad()
    loss = objective(x)
    optimizer.step()
    return loss.item()


def step_no_step(x, objective, optimizer):
    optimizer.zero_grad()
    loss = objective(x)
    loss.backward()
    return loss.item()


def step_first(x, objective, optimizer):
    optimizer.zero_grad()
    optimizer.step()
    loss = objective(x)
    loss.backward()
    with torch.no_grad():
        x.clamp_(0, 1)
    return loss.item()


def step_returns_none(x, objective, optimizer):
    step_ok(x, objective, optimizer)


def step_returns_tensor(x, objective, optimizer):   # the trajectory is right: this used to pass
    optimizer.zero_grad()
    loss = objective(x)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        x.clamp_(0, 1)
    return loss


@pytest.mark.parametrize("fn, hint", [
    (step_no_zero, "zero_grad"),
    (step_no_clamp, "clamp"),
    (step_rebind, "rebinds"),
    (step_clamp_with_grad, "torch.no_grad()"),
    (step_no_backward, "loss.backward()"),
    (step_no_step, "call optimizer.step()"),
    (step_first, "after loss.backward()"),
    (step_returns_none, "float"),
    (step_returns_tensor, "float"),
])
def test_step_mistakes(fn, hint):
    expect(checks.check_optimization_step(fn), "failed", hint)


def test_step_reference_passes_and_matches_the_engine():
    expect(checks.check_optimization_step(step_ok), "passed")
    # the engine's Adam loop and the plain step give the same trajectory (what the check relies on)
    x0, objective = checks.optimization._tiny_problem(0)
    engine_losses, engine_xs = checks.optimization._engine_trajectory(x0, objective, 0.1, 6)
    losses, xs, _ = checks.optimization._trajectory(step_ok, x0, objective, lambda p: torch.optim.Adam(p, lr=0.1), 6)
    assert losses == pytest.approx(engine_losses, rel=1e-6)
    assert all(torch.allclose(a, b) for a, b in zip(xs, engine_xs))
    assert any(float(v.max()) == 1.0 or float(v.min()) == 0.0 for v in xs)  # the problem does exercise clamping


# ------------------------------------------------------------------------------------------- luminance
M = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])


def yiq(x, m=M):
    return torch.einsum("ij,bjhw->bihw", m, x)


def lum_ok(s, c):
    return yiq(torch.cat([yiq(s)[:, :1], yiq(c)[:, 1:]], 1), torch.linalg.inv(M)).clamp(0, 1)


def test_luminance_references_agree():
    s, c = torch.rand(1, 3, 6, 5), torch.rand(1, 3, 6, 5)
    ref = checks.reference_luminance_transfer(s, c)
    assert torch.allclose(ref, lum_ok(s, c), atol=1e-5)
    assert torch.allclose(ref, checks.luminance_closed_form(s, c), atol=1e-5)
    s, c = 0.4 + 0.2 * s, 0.4 + 0.2 * c   # mid-grey inputs: nothing is clamped
    out = checks.reference_luminance_transfer(s, c)
    assert torch.allclose(yiq(out)[:, :1], yiq(s)[:, :1], atol=1e-5)   # Y from the stylized image
    assert torch.allclose(yiq(out)[:, 1:], yiq(c)[:, 1:], atol=1e-5)   # I and Q from the content
    expect(checks.check_luminance_transfer(lum_ok), "passed")


def _luma(x, w):
    return (x * torch.tensor(w).view(1, 3, 1, 1)).sum(1, keepdim=True)


@pytest.mark.parametrize("fn, hint", [
    (lambda s, c: lum_ok(c, s), "swapped"),
    (lambda s, c: yiq(s)[:, :1].expand(-1, 3, -1, -1).clamp(0, 1), "luminance only"),
    (lambda s, c: (c + _luma(s, (1 / 3,) * 3) - _luma(c, (1 / 3,) * 3)).clamp(0, 1), "plain mean"),
    (lambda s, c: (c + _luma(s, checks.LUMA_BT709) - _luma(c, checks.LUMA_BT709)).clamp(0, 1), "BT.709"),
    (lambda s, c: yiq(torch.cat([yiq(s)[:, :1], yiq(c)[:, 1:]], 1), torch.linalg.inv(M)), "clamp"),
    (lambda s, c: torch.cat([yiq(s)[:, :1], yiq(c)[:, 1:]], 1), "YIQ image"),
    (lambda s, c: s, "unchanged"),
    (lambda s, c: s[:, :1], "expected shape"),
])
def test_luminance_mistakes(fn, hint):
    expect(checks.check_luminance_transfer(fn), "failed", hint)


# ------------------------------------------------- wrong sign, degenerate outputs (issue 23, items 1 and 5)
@pytest.mark.parametrize("check, fn", [
    (checks.check_style_loss, lambda f, a, w=None: -_style(f, a, w)),                  # −(correct)
    (checks.check_style_loss, lambda f, a, w=None: -4 * _style(f, a, w)),
    (checks.check_content_loss, lambda f, t: -content_ref(f, t)),
    (checks.check_content_loss, lambda f, t: -2 * content_ref(f, t)),
    (checks.check_tv_loss, lambda x: -tv_ref(x)),
])
def test_a_negative_loss_is_called_a_flipped_sign(check, fn):
    expect(check(fn), "failed", "the sign is flipped: the loss must be ≥ 0")


def test_the_sign_hint_names_the_factor_when_there_is_one(capsys):
    checks.check_style_loss(lambda f, a, w=None: -_style(f, a, w))
    assert "-1× the reference" in capsys.readouterr().out
    checks.check_tv_loss(lambda x: -tv_ref(x))
    assert "the sign is flipped" in capsys.readouterr().out


def test_a_nan_loss_is_named():
    expect(checks.check_content_loss(lambda f, t: content_ref(f, t) * float("nan")), "failed", "your loss is nan")


def test_a_negated_gram_matrix_is_a_flipped_sign():
    expect(checks.check_gram_matrix(lambda f: -gram_loop(f)), "failed", "the sign is flipped")


@pytest.mark.parametrize("fn, hint", [
    (lambda f: torch.zeros(f.shape[0], f.shape[1], f.shape[1]), "your Gram matrix is all zeros"),
    (lambda f: gram_loop(f) * 0, "your Gram matrix is all zeros"),
    (lambda f: torch.full((f.shape[0], f.shape[1], f.shape[1]), float("nan")), "contains NaN"),
    (lambda f: gram_loop(f) / 0, "contains NaN or inf"),
    (lambda f: (f * f).sum() / f.numel() * torch.ones(f.shape[0], f.shape[1], f.shape[1]), "the same number"),
])
def test_degenerate_gram_matrices_get_a_true_hint(fn, hint):
    result = checks.check_gram_matrix(fn)
    expect(result, "failed", hint)
    assert "diagonal is right" not in result.hint


def test_a_zero_diagonal_is_not_called_a_right_diagonal():
    def off_diagonal_only(f):
        g = gram_loop(f)
        return g - torch.diag_embed(torch.diagonal(g, dim1=1, dim2=2))
    result = checks.check_gram_matrix(off_diagonal_only)
    assert result.status == "failed" and "only the diagonal is right" not in result.hint
