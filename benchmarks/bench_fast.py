"""Fast style transfer vs optimization: one feed-forward pass of the shipped starry_night network against a
300-evaluation L-BFGS stylization (nstedu.run_style_transfer) of the same photo at the same size, measured in one
run on the same device (target: ≥ 300× faster).

Full run: 512 px, 300 L-BFGS evaluations (several minutes on a 2-core CPU). Usage:
    python benchmarks/bench_fast.py [--quick] [--device cpu]
``--quick``: 64 px, 5 evaluations, nothing written to RESULTS.md (a smoke test).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

import nstedu  # noqa: E402
from nstedu.fast import FastStylizer  # noqa: E402
from nstedu.images import pil_to_tensor  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (64 px, 5 evaluations), no RESULTS.md")
    ap.add_argument("--device", default="cpu", help="cpu (default: the issue's target) or cuda")
    ap.add_argument("--model", default="starry_night", help="fast-style model (default: the shipped starry_night)")
    args = ap.parse_args(argv)
    device = nstedu.transfer.resolve_device(args.device)
    size, steps, repeats = (64, 5, 3) if args.quick else (512, 300, 5)
    photo = nstedu.samples.load("grace_hopper", size)

    t = time.perf_counter()
    stylizer = FastStylizer.load(args.model, device)
    load_s = time.perf_counter() - t
    x = pil_to_tensor(photo)
    stylizer.stylize_tensor(x)  # warm-up
    runs = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        stylizer.stylize_tensor(x)
        sync(device)
        runs.append(time.perf_counter() - t)
    fast_s = statistics.median(runs)

    result = nstedu.run_style_transfer(photo, "starry_night", size=size, steps=steps, optimizer="lbfgs",
                                       device=str(device), progress=False)
    opt_s = result.seconds
    ratio = opt_s / fast_s
    h, w = x.shape[-2:]
    net = stylizer.net.config
    text = (f"Photo {w}×{h} (grace_hopper), style starry_night, {torch.get_num_threads()} threads.\n\n"
            f"| method | seconds | ratio |\n|---|---|---|\n"
            f"| optimization: L-BFGS, {len(result.history['step'])} evaluations (`run_style_transfer`) | {opt_s:.1f} | 1 |\n"
            f"| fast: one forward pass of the shipped network (width {net['width']}, {net['res_blocks']} residual "
            f"blocks), median of {repeats} | {fast_s:.3f} | **{ratio:.0f}× faster** |\n\n"
            f"The optimization's time is its loop only (loading VGG-19 and the style targets excluded); loading the "
            f"network once took {load_s:.2f} s. Target ≥ 300× → {'met' if ratio >= 300 else 'NOT met'}. "
            f"Training the network once cost more than both (see nstedu/models/README.md).")
    print(text)
    if not args.quick:
        write_section(f"bench_fast ({device.type})", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
