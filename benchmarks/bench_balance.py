"""Does α/β mean the same at every size? Balance measures at 256/512/1024 px, size-invariant vs plain sums.

Measures: :mod:`nstedu.metrics` (content distance at relu4_2, 0 = the photo's content untouched; style distance =
mean over relu1_1…relu5_1 of the relative Gram errors, 0 = the painting's texture).

Usage: python benchmarks/bench_balance.py [--quick] [--sizes 256,512,1024] [--steps N] [--weights caffe,torchvision]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

import nstedu  # noqa: E402
from nstedu import metrics  # noqa: E402
from nstedu.vgg import WeightsError, get_vgg  # noqa: E402


def balance(vgg, out, content, style):
    """(content distance, style distance) of ``out`` as defined in :mod:`nstedu.metrics` (post-ReLU features;
    the style distance is the mean over relu1_1…relu5_1)."""
    q = metrics.measure(out, content, style, vgg)
    return q.content, q.style


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="64/96 px, 20 steps, no RESULTS.md")
    ap.add_argument("--sizes", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--weights", default="caffe,torchvision")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    device = nstedu.transfer.resolve_device(args.device)
    sizes = [int(s) for s in (args.sizes or ("64,96" if args.quick else "256,512,1024")).split(",")]
    steps = args.steps or (20 if args.quick else 200)
    ratios = (5e-3, 1e-3, 5e-4)
    content_full, style_full = nstedu.samples.load("chelsea"), nstedu.samples.load("starry_night")
    rows, notes = [], []
    for weights in args.weights.split(","):
        try:
            measure_vgg = get_vgg(weights, device)
        except WeightsError as e:
            notes.append(f"- `{weights}` weights: not measured here ({e}).")
            continue
        for invariant in (True, False):
            for ratio in ratios:
                for size in sizes:
                    content = nstedu.load_image(content_full, size)
                    style = nstedu.load_image(style_full, size)
                    t = time.perf_counter()
                    r = nstedu.run_style_transfer(content, style, size=size, steps=steps, style_weight=1 / ratio,
                                                  size_invariant=invariant, weights=weights, progress=False,
                                                  device=str(device))
                    cd, sd = balance(measure_vgg, r.image, content, style)
                    rows.append((weights, invariant, ratio, size, cd, sd, time.perf_counter() - t))
                    print(rows[-1], flush=True)
    table = ["| weights | size-invariant | α/β | size | content distance | style distance | seconds |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {w} | {'yes' if inv else 'no (plain sums)'} | {ratio:g} | {size} | {cd:.3f} | {sd:.4f} | {sec:.0f} |"
              for w, inv, ratio, size, cd, sd, sec in rows]
    spread = []
    for w in {r[0] for r in rows}:
        for inv in (True, False):
            for ratio in ratios:
                cds = [r[4] for r in rows if r[0] == w and r[1] == inv and r[2] == ratio]
                if len(cds) > 1:
                    spread.append(f"- {w}, {'size-invariant' if inv else 'plain sums'}, α/β={ratio:g}: content distance "
                                  f"{min(cds):.3f}–{max(cds):.3f} across {sizes} px (spread {max(cds) - min(cds):.3f})")
    text = (f"chelsea × starry_night, {steps} L-BFGS steps from the content, content/style distances as defined in the "
            "script (lower content distance = more photo).\n\n" + "\n".join(table) + "\n\n" + "\n".join(spread)
            + ("\n\n" + "\n".join(notes) if notes else ""))
    print(text)
    if not args.quick:
        write_section(f"bench_balance ({device.type})", text)


if __name__ == "__main__":
    main()
