"""Precision per device: the plan for every capability (a pure function, so the GPU cases are checked here on the
CPU), CPU "auto" is the fp32 engine in the channels_last layout (same values within float rounding), and the autocast / channels_last code path — run on the CPU with
bf16 — keeps the losses within a tolerance of fp32 while the convolutions really run in bf16."""
import dataclasses

import pytest
import torch

from nstedu import cli
from nstedu.env import PRECISIONS, PrecisionPlan, matmul_precision, precision_for, precision_plan
from nstedu.images import pil_to_tensor
from nstedu.objective import Objective, StyleTarget, channels_last_twin, style_grams
from nstedu.transfer import TransferConfig, optimize

BF16, FP16 = torch.bfloat16, torch.float16


@pytest.mark.parametrize("precision, device, bf16, expected", [
    # CPU (and MPS): fp32 unless half precision is asked for by name; never TF32; auto on the CPU in channels_last
    ("auto", "cpu", False, ("fp32", None, False, True)),
    ("auto", "cpu", True, ("fp32", None, False, True)),
    ("fp32", "cpu", False, ("fp32", None, False, False)),
    ("tf32", "cpu", False, ("fp32", None, False, False)),
    ("bf16", "cpu", False, ("bf16", BF16, False, False)),
    ("fp16", "cpu", False, ("fp16", FP16, False, False)),
    ("auto", "mps", False, ("fp32", None, False, False)),
    # CUDA with bf16 (A100, H100, H200, L4): TF32 + bf16 autocast + channels_last
    ("auto", "cuda", True, ("bf16", BF16, True, True)),
    ("bf16", "cuda", True, ("bf16", BF16, True, True)),
    ("fp16", "cuda", True, ("fp16", FP16, True, True)),
    ("tf32", "cuda", True, ("tf32", None, True, True)),
    ("fp32", "cuda", True, ("fp32", None, False, False)),   # exact: TF32 off
    # CUDA without bf16 (Colab's T4): fp16 autocast, silently, for auto and bf16
    ("auto", "cuda", False, ("fp16", FP16, True, True)),
    ("bf16", "cuda", False, ("fp16", FP16, True, True)),
    ("tf32", "cuda", False, ("tf32", None, True, True)),
    ("fp32", "cuda", False, ("fp32", None, False, False)),
])
def test_plan_for_each_capability(precision, device, bf16, expected):
    plan = precision_plan(precision, device, bf16)
    assert (plan.name, plan.autocast, plan.tf32, plan.channels_last) == expected
    assert plan.exact == (expected == ("fp32", None, False, False))


def test_unknown_precision_is_refused_by_name():
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, tf32, bf16, fp16, got 'fp8'"):
        precision_plan("fp8", "cuda", True)
    with pytest.raises(ValueError, match="precision"):
        TransferConfig(precision="half").validate()
    assert cli.build_parser().parse_args(["stylize", "a", "b", "--precision", "bf16"]).precision == "bf16"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["stylize", "a", "b", "--precision", "fp8"])
    assert TransferConfig().precision == "auto" and PRECISIONS[0] == "auto"


def test_cpu_auto_is_the_fp32_engine_in_channels_last(vgg):
    assert precision_for("auto", "cpu") == PrecisionPlan("fp32", channels_last=True)
    assert precision_for("fp32", "cpu") == PrecisionPlan("fp32") and PrecisionPlan("fp32").exact
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    layers = ["relu1_1", "relu3_1", "relu4_2"]
    auto = Objective(vgg, x, [], TransferConfig(style_weight=0, content_layers=("relu4_2",)))
    exact = Objective(vgg, x, [], TransferConfig(style_weight=0, content_layers=("relu4_2",), precision="fp32"))
    feats, plain = auto.features(x, layers), exact.features(x, layers)
    twin = channels_last_twin(vgg)
    assert twin is channels_last_twin(vgg) and twin is not vgg                     # made once per network
    assert vgg.layers["conv1_1"].weight.is_contiguous()                            # the shared network keeps its layout
    assert twin.layers["conv1_1"].weight.is_contiguous(memory_format=torch.channels_last)
    for k in layers:
        assert feats[k].is_contiguous(memory_format=torch.channels_last) and feats[k].dtype == torch.float32
        assert torch.equal(plain[k], vgg(x, [k])[k])                               # fp32: the same computation
        assert torch.allclose(feats[k], plain[k], rtol=1e-4, atol=1e-4 * float(plain[k].abs().max())), k


def test_cpu_auto_and_exact_fp32_give_the_same_losses_and_gradient(vgg, pair):
    x = (pair[0] * 0.8 + 0.1 * torch.rand(pair[0].shape, generator=torch.Generator().manual_seed(3))).requires_grad_()
    out = {}
    for precision in ("auto", "fp32"):
        obj = objective_with(vgg, pair, precision_for(precision, "cpu"))
        total, parts = obj(x)
        out[precision] = (parts, torch.autograd.grad(total, x)[0])
    (pa, ga), (pf, gf) = out["auto"], out["fp32"]
    for term in ("total", "content", "style", "tv"):
        assert float(pa[term].detach()) == pytest.approx(float(pf[term].detach()), rel=1e-4), term
    assert torch.allclose(ga, gf, rtol=1e-3, atol=1e-4 * float(gf.abs().max()))


def test_matmul_precision_sets_and_restores_tf32(monkeypatch):
    b = torch.backends
    flags = lambda: (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark)  # noqa: E731
    before = flags()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the flags are plain globals, settable anywhere
    with matmul_precision(precision_plan("auto", "cuda", True)):
        assert flags() == (True, True, True)
    assert flags() == before
    with pytest.raises(KeyError):
        with matmul_precision(precision_plan("fp32", "cuda", True)):
            assert flags() == (False, False, False)
            raise KeyError("restored even after an error")
    assert flags() == before
    with matmul_precision(None):
        assert flags() == before


@pytest.fixture
def pair(small_pair):
    return pil_to_tensor(small_pair[0]), pil_to_tensor(small_pair[1])


def objective_with(vgg, pair, plan, **cfg):
    content, style = pair
    config = TransferConfig(**cfg)
    obj = Objective(vgg, content, [StyleTarget(style_grams(vgg, style, config.style_layers))], config)
    obj.precision = plan  # the CPU stands in for a GPU: every step of the plan except TF32 runs here
    obj.content_targets = obj.content_features(content)
    return obj


GPU_LIKE = PrecisionPlan("bf16", BF16, tf32=True, channels_last=True)


def test_bf16_autocast_on_cpu_keeps_losses_and_gradient_close(vgg, pair):
    x = (pair[0] * 0.8 + 0.1 * torch.rand(pair[0].shape, generator=torch.Generator().manual_seed(2))).requires_grad_()
    runs = {}
    for name, plan in (("fp32", PrecisionPlan("fp32")), ("bf16", GPU_LIKE)):
        obj = objective_with(vgg, pair, plan)
        conv_dtypes = []
        net = channels_last_twin(vgg) if plan.channels_last else vgg  # the network the plan runs
        hook = net.layers["conv3_1"].register_forward_hook(lambda m, i, o: conv_dtypes.append(o.dtype))
        try:
            total, parts = obj(x)
        finally:
            hook.remove()
        (grad,) = torch.autograd.grad(total, x)
        runs[name] = (parts, grad, conv_dtypes[0])
    (p32, g32, d32), (p16, g16, d16) = runs["fp32"], runs["bf16"]
    assert d32 == torch.float32 and d16 == torch.bfloat16            # the network really ran in bf16 ...
    assert all(v.dtype == torch.float32 for v in p16.values())         # ... the losses are fp32
    for term in ("total", "content", "style", "tv"):
        assert float(p16[term].detach()) == pytest.approx(float(p32[term].detach()), rel=0.05), term
    assert float(p16["tv"].detach()) == float(p32["tv"].detach())                         # TV never touches the network
    cosine = float(torch.nn.functional.cosine_similarity(g16.flatten(), g32.flatten(), dim=0))
    assert cosine > 0.97, cosine


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_optimizing_with_the_gpu_plan_on_cpu_ends_near_fp32(vgg, pair, optimizer):
    """The whole loop with autocast + channels_last: the final loss (re-scored in fp32) within 2 % of the fp32
    run's (the issue's target for the fast paths)."""
    steps = 12
    finals = {}
    for name, plan in (("fp32", PrecisionPlan("fp32")), ("bf16", GPU_LIKE)):
        obj = objective_with(vgg, pair, plan, optimizer=optimizer, steps=steps, progress=False)
        r = optimize(obj, pair[0], obj.config)
        assert r.stop_reason in ("finished", "converged") and len(r.history["step"]) >= steps // 2
        rescore = objective_with(vgg, pair, PrecisionPlan("fp32"))
        finals[name] = float(rescore(r.tensor)[0])
    start = float(objective_with(vgg, pair, PrecisionPlan("fp32"))(pair[0])[0])
    assert finals["fp32"] < 0.75 * start   # the run really optimizes (relative terms: 12 Adam steps ≈ −40 %)
    # not worse than fp32 by more than 2 % (after 12 L-BFGS steps the line searches part ways, and bf16 may end lower)
    assert finals["bf16"] <= 1.02 * finals["fp32"], (start, finals)
    if optimizer == "adam":  # fixed steps, no line search: the two runs stay together
        assert finals["bf16"] == pytest.approx(finals["fp32"], rel=0.02), (start, finals)


def test_plan_is_frozen_and_cheap_to_compare():
    plan = precision_plan("auto", "cuda", True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.tf32 = False
    assert plan == precision_plan("bf16", "cuda", True) != precision_plan("fp16", "cuda", True)


# ------------------------------------------------------------------------------ fewer host syncs (read_every)
def test_reading_losses_back_every_few_steps_changes_nothing(vgg, pair):
    """Adam with the losses read back every 4 evaluations (the CUDA default is 10) gives the same history, best
    image, callbacks and progress as reading them after every evaluation."""
    results = {}
    for every in (1, 4):
        obj = objective_with(vgg, pair, PrecisionPlan("fp32"), optimizer="adam", steps=11, progress=False)
        seen = []
        r = optimize(obj, pair[0], obj.config, read_every=every, callback_every=3,
                     callback=lambda i: seen.append((i.step, i.losses["total"], i.best_loss, i.image.clone())))
        results[every] = (r, seen)
    (r1, seen1), (r4, seen4) = results[1], results[4]
    for col in ("step", "total", "content", "style", "tv"):
        assert r1.history[col] == r4.history[col], col
    assert r1.best_step == r4.best_step and r1.best_loss == r4.best_loss and torch.equal(r1.tensor, r4.tensor)
    assert [s[:3] for s in seen1] == [s[:3] for s in seen4] and [s[0] for s in seen1] == [3, 6, 9, 11]
    assert all(torch.equal(a[3], b[3]) for a, b in zip(seen1, seen4))


def test_deferred_read_back_keeps_the_nan_guard_and_stops():
    import math
    import warnings

    target = torch.full((1, 3, 8, 8), 0.25)
    calls = {"n": 0}

    def objective(x):
        calls["n"] += 1
        loss = ((x - target) ** 2).sum()
        if calls["n"] == 3:  # one blow-up, noticed only at the next read-back
            loss = loss * float("nan")
        return loss, {"total": loss, "content": loss, "style": loss * 0, "tv": loss * 0}

    cfg = TransferConfig(steps=12, optimizer="adam", lr=0.05, progress=False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = optimize(objective, torch.full((1, 3, 8, 8), 0.9), cfg, read_every=5)
    assert any("at step 3" in str(m.message) and "halved" in str(m.message) for m in w)
    assert r.history["step"] == list(range(1, 13)) and all(math.isfinite(v) for v in r.history["total"])
    assert r.best_loss == min(r.history["total"]) < ((0.9 - 0.25) ** 2) * 192
    stop_after = {"n": 0}
    r2 = optimize(objective, torch.full((1, 3, 8, 8), 0.9), cfg, read_every=5,
                  should_stop=lambda: (stop_after.__setitem__("n", stop_after["n"] + 1), stop_after["n"] > 7)[1])
    assert r2.stop_reason == "stopped" and r2.history["step"] == list(range(1, 8))  # all 7 evaluations recorded
