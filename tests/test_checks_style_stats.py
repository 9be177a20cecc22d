"""check_sliced_wasserstein (exercise 12): the right answer passes and matches a loop; each wrong implementation a
learner is likely to write is caught with its own hint."""
import pytest
import torch

from nstedu import checks


def expect(result, status, hint=""):
    assert result.status == status, (result.status, result.hint)
    assert hint.lower() in result.hint.lower(), result.hint


def swd(features, target, n_directions, generator, *, unit=True, sort=True, power=2, axis_ok=True, detach=True,
        sort_dim=0, reduce="mean", shape_cp=True, use_generator=True, sort_target=True):
    """A learner's implementation, with switches for the usual mistakes."""
    c = features.shape[1]
    if use_generator:
        d = torch.randn(c, n_directions, generator=generator) if shape_cp else torch.randn(n_directions, c, generator=generator).T
    else:
        d = torch.randn(c, n_directions)
    if unit:
        d = d / d.norm(dim=0, keepdim=True)
    t = target.detach() if detach else target
    if axis_ok:
        pf, pt = features.reshape(c, -1).T @ d, t.reshape(c, -1).T @ d
    else:
        pf, pt = features.reshape(-1, c) @ d, t.reshape(-1, c) @ d
    if sort:
        pf = pf.sort(dim=sort_dim).values
        if sort_target:
            pt = pt.sort(dim=sort_dim).values
    diff = (pf - pt).abs() ** power
    return {"mean": diff.mean(), "sum": diff.sum(), "sum_m": diff.sum(0).mean(), "sum_p": diff.sum(1).mean()}[reduce]


def test_the_right_answer_passes_and_is_the_loop():
    expect(checks.check_sliced_wasserstein(swd), "passed")
    g = torch.Generator().manual_seed(5)
    f, t = torch.randn(1, 3, 2, 3, generator=g), torch.randn(1, 3, 2, 3, generator=g)
    d = torch.randn(3, 4, generator=torch.Generator().manual_seed(9))
    d = d / d.norm(dim=0, keepdim=True)
    total = 0.0
    for p in range(4):
        a = sorted(float(sum(d[c, p] * f[0, c].flatten()[i] for c in range(3))) for i in range(6))
        b = sorted(float(sum(d[c, p] * t[0, c].flatten()[i] for c in range(3))) for i in range(6))
        total += sum((x - y) ** 2 for x, y in zip(a, b))
    ref = checks.reference_sliced_wasserstein(f, t, 4, torch.Generator().manual_seed(9))
    assert float(ref) == pytest.approx(total / 24, rel=1e-5)


def test_not_implemented_is_reported():
    def stub(features, target, n_directions, generator):
        raise NotImplementedError("sliced_wasserstein_loss: your code here")

    expect(checks.check_sliced_wasserstein(stub), "not implemented")


@pytest.mark.parametrize("kw, hint", [
    (dict(sort=False), "not sorted"),
    (dict(unit=False), "not unit vectors"),
    (dict(power=1), "L1"),
    (dict(axis_ok=False), "wrong axis"),
    (dict(sort_dim=1), "wrong dimension"),
    (dict(detach=False), "detach"),
    (dict(reduce="sum"), "summed instead of averaging"),
    (dict(reduce="sum_m"), "summed over the positions"),
    (dict(reduce="sum_p"), "summed over the directions"),
    (dict(shape_cp=False), "shape (C, P)"),
    (dict(use_generator=False), "generator passed in"),
    (dict(sort_target=False), "target's too"),
])
def test_wrong_implementations_get_their_hint(kw, hint):
    expect(checks.check_sliced_wasserstein(lambda *a: swd(*a, **kw)), "failed", hint)


def test_a_root_and_a_float_are_caught():
    expect(checks.check_sliced_wasserstein(lambda *a: swd(*a).sqrt()), "failed", "square root")
    expect(checks.check_sliced_wasserstein(lambda *a: float(swd(*a).detach())), "failed", "torch tensor")


def test_the_check_is_registered_for_grading():
    from nstedu.checks.manifest import ASSIGNMENTS
    from nstedu.checks.registry import CHECKS, FUNCTION

    assert CHECKS["sliced_wasserstein"] is checks.check_sliced_wasserstein.__wrapped__   # the learner-facing name defers to the grader in its sandbox
    assert FUNCTION["sliced_wasserstein"] == "sliced_wasserstein_loss"
    assert [i.grade_id for i in ASSIGNMENTS["12_sliced_wasserstein"]] == ["check_sliced_wasserstein", "q_swd_sorting"]
