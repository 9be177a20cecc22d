"""Measurements behind claims of the lessons that their own figures cannot show (issue 23).

* ``recon``: notebook 04's content reconstructions from noise (chelsea, 128 px, L-BFGS): how far each layer's
  reconstruction is from the photo's *colours* (mean |difference| of 8 × 8-pixel block averages, 0–255 units), and
  for relu4_2 how that changes with the number of steps and with the start image (noise, grey, another photo).
* ``balance``: notebook 04's size-invariance curves (chelsea × starry_night, default settings): the content and
  style distances (:mod:`nstedu.metrics`) at 64 / 128 / 256 px after 120 L-BFGS steps (the notebook's figure)
  and after more.

Usage: python benchmarks/bench_lessons.py [--quick] [--part recon,balance]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

import nstedu  # noqa: E402
from nstedu import metrics  # noqa: E402
from nstedu.images import pil_to_tensor  # noqa: E402
from nstedu.transfer import initial_image  # noqa: E402

RECON_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")


def colour_error(x: torch.Tensor, photo: torch.Tensor, block: int = 8) -> float:
    """Mean |difference| of ``block`` × ``block`` averages of two ``(1, 3, H, W)`` images in [0, 1], in 0–255 units:
    how far the colours are apart, without the fine detail."""
    return float(F.avg_pool2d(x - photo, block).abs().mean() * 255)


def recon(size: int, steps: int, every: int, layer_steps: int) -> str:
    photo_img = nstedu.samples.load("chelsea", size)
    photo = pil_to_tensor(photo_img)
    other = pil_to_tensor(nstedu.samples.load("astronaut", size).resize(photo_img.size))
    starts = {"noise (seed 0)": initial_image("noise", photo), "grey 0.5": torch.full_like(photo, 0.5),
              "another photo (astronaut)": other}
    lines = [f"chelsea, {photo_img.width}×{photo_img.height} px, content loss alone (style_weight=0, tv_weight=0), "
             "L-BFGS. Colour error: mean |difference| of 8 × 8-pixel block averages against the photo, 0–255 units.",
             "", "| start image | colour error of the start |", "|---|---:|"]
    lines += [f"| {name} | {colour_error(x, photo):.1f} |" for name, x in starts.items()]
    curves = {}
    for name, x0 in starts.items():  # relu4_2, colour error every `every` steps, from each start
        seen = curves[name] = {}
        nstedu.run_style_transfer(photo_img, None, style_weight=0, tv_weight=0, content_layers=("relu4_2",), size=size,
                                  steps=steps, progress=False, init_image=x0, callback_every=every,
                                  callback=lambda info, seen=seen: seen.__setitem__(info.step, colour_error(info.image, photo)))
        print(name, seen, flush=True)
    lines += ["", f"From noise, {layer_steps} steps per layer (notebook 04's figure; relu4_2: the noise run below at "
              f"step {layer_steps}):", "", "| layer | colour error |", "|---|---:|"]
    for layer in RECON_LAYERS:
        if layer == "relu4_2":
            lines.append(f"| {layer} | {curves['noise (seed 0)'][layer_steps]:.1f} |")
            continue
        r = nstedu.run_style_transfer(photo_img, None, style_weight=0, tv_weight=0, init="noise", content_layers=(layer,),
                                      size=size, steps=layer_steps, progress=False)
        lines.append(f"| {layer} | {colour_error(r.tensor, photo):.1f} |")
        print(lines[-1], flush=True)
    marks = sorted(curves["noise (seed 0)"])
    lines += ["", "relu4_2, colour error after N steps, by start image:", "",
              "| start | " + " | ".join(str(m) for m in marks) + " |", "|---|" + "---:|" * len(marks)]
    lines += [f"| {name} | " + " | ".join(f"{seen[m]:.1f}" for m in marks) + " |" for name, seen in curves.items()]
    return "\n".join(lines)


def balance(sizes, steps: int, marks) -> str:
    vgg = nstedu.get_vgg()
    lines = [f"chelsea × starry_night, defaults (size-invariant, α/β = 1e-3), one run of {steps} L-BFGS steps per size, "
             "the current image scored with `nstedu.metrics` after N steps (content distance / style distance).", "",
             "| size | " + " | ".join(f"{m} steps" for m in marks) + " |", "|---|" + "---|" * len(marks)]
    for px in sizes:
        seen = {}
        nstedu.run_style_transfer("chelsea", "starry_night", size=px, steps=steps, progress=False, callback_every=1,
                                  callback=lambda info: seen.__setitem__(info.step, info.image.clone()) if info.step in marks else None)
        scores = [metrics.measure(seen[m], "chelsea", "starry_night", vgg=vgg) for m in marks]
        lines.append(f"| {px} px | " + " | ".join(f"{q.content:.3f} / {q.style:.4f}" for q in scores) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few steps, no RESULTS.md")
    ap.add_argument("--part", default="recon,balance", help="recon, balance or both")
    args = ap.parse_args(argv)
    parts = args.part.split(",")
    if "recon" in parts:
        text = recon(48, 20, 10, 10) if args.quick else recon(128, 300, 50, 150)
        print(text)
        if not args.quick:
            write_section("bench_lessons: reconstructions (cpu)", text)
    if "balance" in parts:
        text = balance((48, 64), 20, (10, 20)) if args.quick else balance((64, 128, 256), 400, (120, 400))
        print(text)
        if not args.quick:
            write_section("bench_lessons: balance (cpu)", text)


if __name__ == "__main__":
    main()
