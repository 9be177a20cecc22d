"""Engine overhead: time per stylize iteration ÷ time of a bare VGG-19 forward + input-gradient backward to
conv5_1, measured side by side in one run (target ≤ 1.10). Also reports peak memory.

CPU: 256 px. CUDA (when present): 512 px, ms/iteration. Usage: python benchmarks/bench_iteration.py [--quick]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

import nstedu  # noqa: E402
from nstedu.vgg import get_vgg  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare(vgg, x, n, device):
    """n × (forward to conv5_1 + backward to the input pixels), nothing else."""
    x = x.clone().requires_grad_(True)
    sync(device)
    t = time.perf_counter()
    for _ in range(n):
        out = vgg(x, ["conv5_1"])["conv5_1"]
        (g,) = torch.autograd.grad(out.sum(), x)
    sync(device)
    return (time.perf_counter() - t) / n


def engine(content, style, size, n, device, optimizer="lbfgs"):
    r = nstedu.run_style_transfer(content, style, size=size, steps=n + 1, optimizer=optimizer, progress=False,
                                  device=str(device))
    times = r.history["time"]
    return (times[-1] - times[0]) / (len(times) - 1)  # excludes set-up (targets, first evaluation)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (64 px, few iterations), no RESULTS.md")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    device = nstedu.transfer.resolve_device(args.device)
    size = 64 if args.quick else (512 if device.type == "cuda" else 256)
    n = 5 if args.quick else (50 if device.type == "cuda" else 20)
    content, style = nstedu.samples.load("grace_hopper", size), nstedu.samples.load("starry_night", size)
    vgg = get_vgg("caffe", device)
    x = nstedu.images.pil_to_tensor(content, device)
    bare(vgg, x, 2, device)  # warm-up
    engine(content, style, size, 3, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rows = []
    for rep in range(3):  # interleave to share any drift in machine load
        tb = bare(vgg, x, n, device)
        tl = engine(content, style, size, n, device, "lbfgs")
        ta = engine(content, style, size, n, device, "adam")
        rows.append((tb, tl, ta))
    tb, tl, ta = (sorted(col)[len(col) // 2] for col in zip(*rows))  # medians
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else ""
    h, w = x.shape[-2:]
    text = (f"Image {w}×{h} (grace_hopper × starry_night), {n} iterations × 3 interleaved repetitions, medians.\n\n"
            f"| what | ms / iteration | ratio to bare VGG |\n|---|---|---|\n"
            f"| bare VGG-19 forward + input-gradient backward to conv5_1 | {tb * 1e3:.1f} | 1.00 |\n"
            f"| stylize iteration, L-BFGS | {tl * 1e3:.1f} | **{tl / tb:.3f}** |\n"
            f"| stylize iteration, Adam | {ta * 1e3:.1f} | {ta / tb:.3f} |\n\n"
            f"Target: L-BFGS ratio ≤ 1.10 → {'met' if tl / tb <= 1.10 else 'NOT met'}. "
            f"Peak RSS {peak_rss:.0f} MiB{gpu}.")
    print(text)
    if not args.quick:
        write_section(f"bench_iteration ({device.type})", text)


if __name__ == "__main__":
    main()
