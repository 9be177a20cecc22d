"""Checks for the capstone: texture synthesis, feature inversion and a full style transfer built only from the
learner's own functions, compared with nstedu's engine run with the same settings on a tiny image.

The learner writes ``style_transfer(vgg, photo, painting, start, alpha, beta, gamma, steps, lr) -> (image, losses)``
from their ``gram_matrix``, ``content_loss``, ``style_loss``, ``tv_loss`` and ``optimization_step`` (Adam on the
pixels). The reference is :func:`nstedu.transfer.optimize` on :class:`nstedu.transfer.Objective` with Adam, the same
learning rate, layers and weights, computed here at run time (so it follows the engine's defaults), with the plain
sums the learner computes (``relative=False``; the engine's default relative terms are another loss). Both start from
the same image, so the first loss must agree to float precision and the images after ``steps`` steps to well under
a grey level; a wrong objective (a missing ½, the size factor, one layer, an unnormalized Gram) changes the first
loss, a wrong loop (no clamp, another start, another learning rate) changes the images.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .. import losses as L
from .. import samples
from ..config import TransferConfig
from ..images import pil_to_tensor
from ..objective import Objective, StyleTarget, style_grams
from ..transfer import initial_image, optimize
from ..vgg import get_vgg
from .content_tv import check_content_loss, check_tv_loss
from .core import CheckResult, _crash_hint, _report, quietly
from .gram_style import check_gram_matrix, check_style_loss
from .optimization import check_optimization_step

#: the learner's building blocks and their checks (run when their style_transfer fails, to point at the culprit)
BLOCKS = {"gram_matrix": check_gram_matrix, "content_loss": check_content_loss, "style_loss": check_style_loss,
          "tv_loss": check_tv_loss, "optimization_step": check_optimization_step}

TASKS = ("texture", "inversion", "transfer")
SIZE = 32              # longest side of the tiny test images (px)
STEPS = 10             # Adam steps on the tiny problem
LOSS_TOL = 1e-3        # relative error allowed on the first loss (same image: float32 rounding only)
IMAGE_TOL = 2e-3       # max |pixel difference| after STEPS steps (pixels in [0, 1]; a grey level is 3.9e-3)


def task_settings(task: str) -> dict:
    """The weights, learning rate and start of each capstone task, from the engine's defaults (TransferConfig)."""
    cfg = TransferConfig()
    if task == "texture":       # style only, from noise: the painting's texture without its layout
        return dict(alpha=0.0, beta=cfg.style_weight, gamma=0.0, lr=0.05, init="noise", photo=False, painting=True)
    if task == "inversion":     # content only, from noise: what the content layer remembers of the photo
        return dict(alpha=cfg.content_weight, beta=0.0, gamma=0.0, lr=0.05, init="noise", photo=True, painting=False)
    if task == "transfer":      # everything, from the photo
        return dict(alpha=cfg.content_weight, beta=cfg.style_weight, gamma=cfg.tv_weight, lr=0.02, init="content",
                    photo=True, painting=True)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def tiny_problem(task: str, size: int = SIZE, seed: int = 0):
    """``(photo, painting, start)`` tensors ``(1, 3, H, W)`` in [0, 1] for ``task`` (photo/painting None when unused)."""
    s = task_settings(task)
    photo = pil_to_tensor(samples.load("chelsea", size))
    painting = pil_to_tensor(samples.load("starry_night", size))
    start = initial_image(s["init"], photo, seed=seed)
    return (photo if s["photo"] else None), (painting if s["painting"] else None), start


def reference_run(vgg, photo, painting, start, alpha, beta, gamma, steps, lr):
    """nstedu's engine with the same settings: ``(image after `steps` Adam steps, [loss before each step])``."""
    base = TransferConfig()
    cfg = TransferConfig(content_weight=alpha, style_weight=beta, tv_weight=gamma, optimizer="adam", lr=lr,
                         steps=steps + 1, lr_decay_every=10 ** 9, progress=False, content_layers=base.content_layers,
                         style_layers=base.style_layers, style_layer_weights=base.style_layer_weights)
    targets = [StyleTarget(style_grams(vgg, painting, cfg.style_layers))] if beta > 0 else []
    objective = Objective(vgg, photo if photo is not None else start, targets, cfg, relative=False)  # the plain sums
    seen = []   # only the image evaluated after `steps` steps (evaluation steps + 1): the callback runs there alone
    result = optimize(objective, start, cfg, callback=lambda info: seen.append(info.image.clone()),
                      callback_every=steps + 1)
    return seen[-1], result.history["total"][:steps]


_REFERENCES: dict = {}     # the engine's runs by their inputs: a grading worker replays many submissions


def _memo_key(photo, painting, start, args: dict):
    def key(t):
        return None if t is None else (tuple(t.shape), t.detach().cpu().contiguous().numpy().tobytes())
    return key(photo), key(painting), key(start), tuple(sorted(args.items()))


def _reference(vgg, photo, painting, start, args: dict):
    """:func:`reference_run`, remembered by its inputs' bytes and settings (the grader's replay of every submission
    asks for the same few runs: 3 tasks × 2 seeds, ~1.4 s each). A learner's kernel that fills this memo with a
    forged reference only fools its own sandboxed run: the verdict also needs the grader's replay, which never runs
    learner code and computes its own."""
    k = _memo_key(photo, painting, start, args)
    if k not in _REFERENCES:
        image, losses = reference_run(vgg, photo, painting, start, **args)
        remember(photo, painting, start, args, image, losses)
    image, losses = _REFERENCES[k]
    return image.clone(), list(losses)


def remember(photo, painting, start, args: dict, image, losses) -> None:
    """Put the engine's run on these inputs into the memo (:mod:`nstedu.checks.reference_runs` hands the grader's
    runs of the visible inputs to the sandboxed kernel this way)."""
    if len(_REFERENCES) >= 16:
        _REFERENCES.clear()
    _REFERENCES[_memo_key(photo, painting, start, args)] = (image.detach().clone(), [float(v) for v in losses])


def check_inputs(task: str, seed: int = 0, steps: int = STEPS):
    """What :func:`check_capstone` hands the learner's ``style_transfer`` for ``task`` and ``seed``:
    ``(photo, painting, start, args)`` (the hidden seeds get another image size)."""
    s = task_settings(task)
    photo, painting, start = tiny_problem(task, size=SIZE + 8 * (seed % 3), seed=seed)
    return photo, painting, start, dict(alpha=s["alpha"], beta=s["beta"], gamma=s["gamma"], steps=steps, lr=s["lr"])


def _building_block_hint(fn) -> str:
    """Run the learner's own building blocks (found next to their style_transfer) through their checks."""
    names = getattr(fn, "__globals__", {})
    for name in BLOCKS:
        block = names.get(name)
        if not callable(block):
            continue
        result = quietly(BLOCKS[name], block)
        if result.status != "passed":
            return f"your {name} does not pass its own check ({result.status}: {result.hint}) — fix it first"
    return ""


#: the objective's three terms: (name, weight key, the term as the learner writes it)
TERMS = (("content", "alpha", "α · s · content_loss(features, photo_features)"),
         ("style", "beta", "β · style_loss(features, style_grams, LAYER_WEIGHTS)"),
         ("TV", "gamma", "γ · s · tv_loss(x)"))


def _engine_terms(vgg, photo, painting, x, s) -> dict:
    """nstedu's value of each weighted term at the image ``x`` (α·s·content, β·style, γ·s·tv), and ``scale`` = s."""
    weights = TransferConfig().layer_weights()
    with torch.no_grad():
        feats = vgg(x, list(dict.fromkeys(L.DEFAULT_STYLE_LAYERS + L.DEFAULT_CONTENT_LAYERS)))
        k = L.DEFAULT_CONTENT_LAYERS[0]
        c = float(L.content_loss(feats[k], vgg(photo, [k])[k])) if photo is not None else 0.0
        st = float(L.style_loss(feats, style_grams(vgg, painting, L.DEFAULT_STYLE_LAYERS), weights)) \
            if painting is not None else 0.0
        tv = float(L.tv_loss(x))
    scale = L.size_scale(*x.shape[-2:])
    return {"content": s["alpha"] * c * scale, "style": s["beta"] * st, "TV": s["gamma"] * tv * scale, "scale": scale}


def _mistakes(term: str, weight: float, scale: float) -> list:
    """``(factor, label, hint)``: the learner's term = factor × nstedu's, for the common mistakes in one term.
    Factors that coincide (α = 1 makes "unweighted" the right answer) are dropped: each candidate is distinct."""
    formula = dict((t, f) for t, _, f in TERMS)[term]
    sized = term != "style"
    out = [(0.0, "missing", f"the {term} term is missing: add {formula}")]
    if sized:
        out.append((1 / scale, "missing its size factor s",
                    f"the {term} term is missing its size factor s = size_scale(H, W) (= {scale:.4g} here): use "
                    f"{formula}, as the engine measures every image as if it had REFERENCE_PIXELS pixels"))
    else:
        out.append((scale, "multiplied by s", f"the style term must not be multiplied by the size factor s: use "
                                              f"{formula} (only the content and TV terms grow with the pixel count)"))
    if weight not in (0.0, 1.0):
        out.append((1 / weight, "not weighted", f"the {term} term is not weighted: use {formula}"))
        if sized:
            out.append((1 / (weight * scale), "without its weight and s",
                        f"the {term} term has neither its weight nor the size factor s: use {formula}"))
    if term == "content":
        out.append((2.0, "2× too large", "your content term is 2× too large: content_loss is ½ Σ (F − P)²"))
    distinct = []
    for factor, label, hint in out:
        if abs(factor - 1) > LOSS_TOL and all(abs(factor - f) > LOSS_TOL * max(abs(f), 1e-12) for f, *_ in distinct):
            distinct.append((factor, label, hint))
    return distinct


def _learner_loss(total_loss, vgg, photo, painting, x, alpha, beta, gamma):
    """The learner's ``total_loss`` at ``x`` with these weights (targets from the photo and the painting, each
    with nstedu's functions), or None if it raises."""
    with torch.no_grad():
        feats = vgg(photo, list(L.DEFAULT_CONTENT_LAYERS)) if photo is not None else None
        grams = {k: L.gram_matrix(v) for k, v in vgg(painting, list(L.DEFAULT_STYLE_LAYERS)).items()} \
            if painting is not None else None
    try:
        with torch.no_grad():
            return float(total_loss(x.clone(), vgg, feats, grams, alpha, beta, gamma))
    except Exception:
        return None


def _term_hint(total_loss, vgg, photo, painting, x, s, terms) -> str:
    """Run the learner's ``total_loss`` one term at a time: the factor between their term and nstedu's names the
    mistake without any ambiguity between terms (a term that is tiny at this image cannot hide behind another)."""
    for term, key, formula in TERMS:
        ref = terms[term]
        if s[key] == 0 or ref <= 0:      # a term that is 0 here (the content term at the photo) says nothing
            continue
        alone = {w: (s[w] if w == key else 0.0) for w in ("alpha", "beta", "gamma")}
        value = _learner_loss(total_loss, vgg, photo, painting, x, **alone)
        if value is None or abs(value - ref) <= LOSS_TOL * ref:
            continue
        r = value / ref
        for factor, _, hint in _mistakes(term, s[key], terms["scale"]):
            if abs(r - factor) <= LOSS_TOL * max(abs(factor), LOSS_TOL):
                return hint
        return f"your {term} term is {r:.4g}× nstedu's at this image: use {formula}"
    return ""


def _objective_hint(vgg, photo, painting, x, s, first, total_loss=None) -> str:
    """Name the term that makes the learner's loss at the image ``x`` (``first``) differ from the engine's: by
    running their ``total_loss`` one term at a time when there is one, else by the value alone (naming every
    mistake that fits it when this image cannot tell them apart)."""
    terms = _engine_terms(vgg, photo, painting, x, s)
    ref = terms["content"] + terms["style"] + terms["TV"]
    if callable(total_loss):
        hint = _term_hint(total_loss, vgg, photo, painting, x, s, terms)
        if hint:
            return hint
        whole = _learner_loss(total_loss, vgg, photo, painting, x, s["alpha"], s["beta"], s["gamma"])
        if whole is not None and abs(whole - ref) <= LOSS_TOL * ref:
            return (f"your total_loss is right here (nstedu's {ref:.4g}), but the first loss of your style_transfer is "
                    f"{first:.4g}: optimize a copy of `start` (not the photo or another image), with the photo's "
                    "features and the painting's Gram matrices as the targets, and return the loss before each step")
    candidates = []      # (value, term, label, hint)
    for term, key, _ in TERMS:
        if s[key] != 0 and terms[term] > 0:
            candidates += [(ref + (factor - 1) * terms[term], term, label, hint)
                           for factor, label, hint in _mistakes(term, s[key], terms["scale"])]
    if terms["content"] > 0 and terms["TV"] > 0:
        both = ref - (1 - 1 / terms["scale"]) * (terms["content"] + terms["TV"])
        candidates.append((both, "", "", "multiply the content and TV terms by the size factor s = size_scale(H, W)"))
    fits = [c for c in candidates
            if abs(c[0] - ref) > LOSS_TOL * ref and abs(first - c[0]) <= LOSS_TOL * abs(c[0])]
    if len(fits) == 1:
        return fits[0][3]
    if fits and len({term for _, term, _, _ in fits}) == 1 and fits[0][1]:
        term = fits[0][1]
        formula = dict((t, f) for t, _, f in TERMS)[term]
        return (f"the {term} term is " + ", or ".join(label for _, _, label, _ in fits) + " — at this image these "
                f"give the same loss (within the tolerance): use {formula}")
    if fits:
        return ("your loss at this image fits more than one mistake (they differ by less than the tolerance here): "
                + "; or ".join(hint for *_, hint in fits))
    return (f"your loss at the image is {first:.4g}, nstedu's is {ref:.4g}: check total_loss "
            "(α · s · content + β · style + γ · s · tv, with your functions and the engine's layers)")


def _engine_loss(vgg, photo, painting, x, s) -> float:
    base = TransferConfig()
    cfg = TransferConfig(content_weight=s["alpha"], style_weight=s["beta"], tv_weight=s["gamma"],
                         content_layers=base.content_layers, style_layers=base.style_layers,
                         style_layer_weights=base.style_layer_weights)
    targets = [StyleTarget(style_grams(vgg, painting, cfg.style_layers))] if s["beta"] > 0 else []
    with torch.no_grad():
        return float(Objective(vgg, photo if photo is not None else x, targets, cfg, relative=False)(x)[0])


def _loop_hint(fn, vgg, photo, painting, start, image, s, steps, img_err) -> str:
    """The first loss was right but the images differ: is it the objective away from the start, or the loop?"""
    if float(image.min()) < 0 or float(image.max()) > 1:
        return "pixels left [0, 1]: optimization_step must clamp x in place after every step"
    if float((image - start).abs().max()) == 0:
        return "the image never changed: optimize a copy of `start` (requires_grad) with Adam and your step"
    total_loss = getattr(fn, "__globals__", {}).get("total_loss")
    if callable(total_loss):   # the learner's objective away from the start image
        x = torch.rand(start.shape, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            feats = vgg(photo, list(L.DEFAULT_CONTENT_LAYERS)) if photo is not None and s["alpha"] > 0 else None
            grams = {k: L.gram_matrix(v) for k, v in vgg(painting, list(L.DEFAULT_STYLE_LAYERS)).items()} \
                if painting is not None and s["beta"] > 0 else None
        try:
            value = float(total_loss(x, vgg, feats, grams, s["alpha"], s["beta"], s["gamma"]))
        except Exception:
            value = None
        ref = _engine_loss(vgg, photo, painting, x, s)
        if value is not None and not abs(value - ref) <= LOSS_TOL * abs(ref):
            return _objective_hint(vgg, photo, painting, x, s, value, total_loss)
    return (f"the loss at the start matches nstedu's, but after {steps} steps your image differs by {img_err:.3g} "
            "(max pixel): optimize a copy of `start` with torch.optim.Adam([x], lr=lr), calling your "
            "optimization_step exactly `steps` times, and return x")


def check_capstone(style_transfer: Callable, task: str = "transfer", steps: int = STEPS, seed: int = 0) -> CheckResult:
    """Check ``style_transfer(vgg, photo, painting, start, alpha, beta, gamma, steps, lr) -> (image, losses)`` on
    one capstone ``task`` ("texture", "inversion" or "transfer") against nstedu's engine on a tiny image."""
    exercise = {"texture": "texture_synthesis", "inversion": "feature_inversion", "transfer": "style_transfer"}[task]
    unit = f"tiny {task} problem(s) ({steps} Adam steps vs nstedu's engine)"
    s = task_settings(task)
    vgg = get_vgg("caffe", "cpu")
    photo, painting, start, args = check_inputs(task, seed, steps)
    try:
        out = style_transfer(vgg, None if photo is None else photo.clone(), None if painting is None else painting.clone(),
                             start.clone(), **args)
    except NotImplementedError as e:
        return _report(exercise, "not implemented", 0, 1, math.nan, str(e) or exercise)
    except Exception as e:
        hint = _building_block_hint(style_transfer) or _crash_hint(e)
        return _report(exercise, "failed", 0, 1, math.nan, hint, unit=unit)

    def fail(hint, err=math.nan):
        return _report(exercise, "failed", 0, 1, err, _building_block_hint(style_transfer) or hint, unit=unit)

    if not (isinstance(out, tuple) and len(out) == 2):
        return fail(f"return a pair (image, losses), got {type(out).__name__}")
    image, losses = out
    if not isinstance(image, torch.Tensor) or tuple(image.shape) != tuple(start.shape):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        return fail(f"the image must be a tensor shaped like `start` {tuple(start.shape)}, got {shape}")
    if not isinstance(losses, (list, tuple)) or len(losses) != steps:
        n = len(losses) if isinstance(losses, (list, tuple)) else type(losses).__name__
        return fail(f"losses must be a list with one float per step ({steps}), got {n}")
    if not all(isinstance(v, float) for v in losses):
        return fail("each loss must be a Python float (what your optimization_step returns: loss.item())")
    ref_image, ref_losses = _reference(vgg, photo, painting, start, args)
    loss_err = abs(losses[0] - ref_losses[0]) / max(abs(ref_losses[0]), 1e-12)
    if not loss_err <= LOSS_TOL:        # (a NaN loss fails too)
        total_loss = getattr(style_transfer, "__globals__", {}).get("total_loss")
        return fail(_objective_hint(vgg, photo, painting, start, s, losses[0], total_loss), loss_err)
    image = image.detach().float()
    img_err = float((image - ref_image).abs().max())
    if not img_err <= IMAGE_TOL:
        return fail(_loop_hint(style_transfer, vgg, photo, painting, start, image, s, steps, img_err), img_err)
    loss_err = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, ref_losses))
    return _report(exercise, "passed", 1, 1, max(img_err, loss_err), measure="max error (pixels / relative loss)",
                   unit=unit)


def check_texture_synthesis(style_transfer: Callable, seed: int = 0) -> CheckResult:
    """The capstone's texture synthesis (style loss only, from noise) against nstedu's engine."""
    return check_capstone(style_transfer, "texture", seed=seed)


def check_feature_inversion(style_transfer: Callable, seed: int = 0) -> CheckResult:
    """The capstone's feature inversion (content loss only, from noise) against nstedu's engine."""
    return check_capstone(style_transfer, "inversion", seed=seed)


def check_style_transfer(style_transfer: Callable, seed: int = 0) -> CheckResult:
    """The capstone's full style transfer (content + style + TV, from the photo) against nstedu's engine."""
    return check_capstone(style_transfer, "transfer", seed=seed)
