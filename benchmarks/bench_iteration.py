"""Engine overhead: time per stylize iteration ÷ time of a bare VGG-19 forward + input-gradient backward to
conv5_1, measured side by side in one run (target ≤ 1.10). Also reports peak memory.

Start-up (every device): the wall time of a tiny CLI run split into importing, reading the weights (cached and
uncached) and the rest, each in a fresh interpreter. CUDA only: the precision variants of the bare network and of
a whole iteration (fp32 with TF32 off, TF32, bf16 autocast + channels_last, the bare network captured in a CUDA
graph) and the CLI at 512 px × 300 steps.

CPU: 256 px. CUDA (when present): 512 px, ms/iteration. Usage: python benchmarks/bench_iteration.py [--quick]
``--style-losses``: only the cost per iteration of each style statistic (``style_loss``), interleaved side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

import nstedu  # noqa: E402
from nstedu.allocator import steady_allocator  # noqa: E402
from nstedu.env import precision_for  # noqa: E402
from nstedu.objective import network_features  # noqa: E402
from nstedu.vgg import get_vgg  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare(vgg, x, n, device, plan=None):
    """n × (forward to conv5_1 + backward to the input pixels), nothing else; the network run as ``plan`` says
    (``nstedu.objective.network_features``: with the CPU's plan in the NHWC layout, as the engine runs it) and with
    the engine's allocator settings (``nstedu.allocator.steady_allocator``), so that the ratio is the engine's own work."""
    x = x.clone().requires_grad_(True)
    with steady_allocator(device):
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            out = network_features(vgg, x, ["conv5_1"], plan)["conv5_1"]
            (g,) = torch.autograd.grad(out.sum(), x)
        sync(device)
    return (time.perf_counter() - t) / n


def engine(content, style, size, n, device, optimizer="lbfgs", precision="auto", first=1, **kw):
    """Seconds per evaluation of evaluations ``first`` … ``first + n`` of a run (the first one's set-up excluded)."""
    r = nstedu.run_style_transfer(content, style, size=size, steps=first + n, optimizer=optimizer, progress=False,
                                  device=str(device), precision=precision, **kw)
    times = r.history["time"][first - 1:]
    return (times[-1] - times[0]) / (len(times) - 1)  # excludes set-up (targets, first evaluation)


# ------------------------------------------------------------------------------------------------ start-up
ROOT = Path(__file__).resolve().parents[1]
#: Run in a fresh interpreter: the seconds of each start-up phase, as JSON.
PHASES = """
import json, sys, time
t0 = time.perf_counter()
import nstedu.cli
t1 = time.perf_counter()
from nstedu import vgg
vgg.load_caffe_state_dict(cache=False)
t2 = time.perf_counter()
vgg.load_caffe_state_dict()  # the cache was filled before this interpreter started
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "uncached": t2 - t1, "cached": t3 - t2}))
"""


def _child(args, env, timeout=900):
    t = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    if out.returncode:
        raise RuntimeError(f"{args[:3]} failed: {out.stderr[-2000:]}")
    return time.perf_counter() - t, out.stdout


def startup(device, size, steps, reps=3):
    """Median seconds of: ``import nstedu.cli``; reading the weights uncached / cached; and a whole CLI run of
    ``size`` px × ``steps`` steps (wall, and the optimization the CLI reports), each in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NSTEDU_CACHE_DIR=tmp, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cli = [sys.executable, "-m", "nstedu", "stylize", "grace_hopper", "starry_night", "--size", str(size),
               "--steps", str(steps), "-q", "--device", device.type, "-o", str(Path(tmp) / "out.png")]
        _child(cli, env)  # fills the weights cache (and warms the file system cache)
        rows = []
        for _ in range(reps):
            phases = json.loads(_child([sys.executable, "-c", PHASES], env)[1])
            wall, out = _child(cli, env)
            optimization = float(re.search(r"steps, ([0-9.]+) s on", out)[1])
            rows.append(dict(phases, wall=wall, optimization=optimization))
    return dict({k: statistics.median(r[k] for r in rows) for k in rows[0]}, reps=reps), os.getloadavg()


def startup_text(device, size, steps, st, load):
    return (f"`nstedu stylize grace_hopper starry_night --size {size} --steps {steps}` on {device.type}, each phase "
            f"in a fresh interpreter, medians of {st['reps']}; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
            f"(a shared machine).\n\n| phase | seconds |\n|---|---|\n"
            f"| `import nstedu.cli` (torch, PIL, numpy, nstedu) | {st['import']:.2f} |\n"
            f"| VGG-19 weights read + dequantized (no cache) | {st['uncached']:.2f} |\n"
            f"| VGG-19 weights from the user cache (CRC-checked) | {st['cached']:.2f} |\n"
            f"| optimization as the CLI reports it (nstedu.optimizers: no first-use import of torch._dynamo) | "
            f"{st['optimization']:.2f} |\n"
            f"| **whole CLI run, wall** | **{st['wall']:.2f}** |\n")


# ------------------------------------------------------------------------------------------- GPU variants
def bare_plan(vgg, x, n, plan, graphed=False):
    """ms of the bare forward + input-gradient backward under a precision ``plan`` (CUDA), eager or as a graph."""
    from nstedu.env import matmul_precision

    static = x.clone().contiguous(memory_format=torch.channels_last if plan.channels_last else torch.contiguous_format)
    static.requires_grad_(True)

    def step():
        with torch.autocast("cuda", dtype=plan.autocast or torch.float32, enabled=plan.autocast is not None):
            out = vgg(static, ["conv5_1"])["conv5_1"]
        return torch.autograd.grad(out.float().sum(), static)[0]

    with matmul_precision(plan):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up (and cuDNN's algorithm search) off the capture stream
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        run = step
        if graphed:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            run = graph.replay
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            run()
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e3


def gpu_variants(vgg, x, content, style, size, n, device):
    from nstedu.env import PrecisionPlan, precision_for

    auto = precision_for("auto", device)
    rows = [("bare, fp32 (TF32 off)", bare_plan(vgg, x, n, PrecisionPlan("fp32"))),
            ("bare, TF32", bare_plan(vgg, x, n, PrecisionPlan("tf32", None, True, True))),
            (f"bare, {auto.name} autocast + channels_last", bare_plan(vgg, x, n, auto))]
    try:
        rows.append((f"bare, {auto.name} + channels_last, one CUDA graph", bare_plan(vgg, x, n, auto, graphed=True)))
    except Exception as e:  # report, don't fail: capture rules differ between torch versions
        rows.append((f"bare, CUDA graph: failed ({type(e).__name__}: {str(e)[:80]})", float("nan")))
    for precision in ("fp32", "tf32", "auto"):
        for optimizer in ("adam", "lbfgs"):
            ms = engine(content, style, size, n, device, optimizer, precision) * 1e3
            rows.append((f"stylize iteration, {optimizer}, precision={precision}", ms))
    return "| what | ms / iteration |\n|---|---|\n" + "".join(f"| {w} | {ms:.2f} |\n" for w, ms in rows)


#: What the CPU rows mean (profiled on the 2-core AMD EPYC this was written on, 2026-11-29).
CPU_NOTES = """\
The bare network runs as the engine runs it (channels_last, the same allocator setting), so the ratio is the
engine's own work. What an evaluation adds, profiled: the Gram products, ≈ 10 ms (C²·H·W multiply-adds forward
and again backward at each style layer, as oneDNN convolutions near the CPU's peak); the content and TV terms,
the projected gradient and the bookkeeping, ≈ 1–2 ms; L-BFGS's step, ≈ 2.5 ms with a short history. Once the
history holds its 100 pairs, the step reads 200 image-sized vectors (134 MB at 256 px) twice: ≈ 12 ms more, memory
bandwidth rather than arithmetic (`--lbfgs-history` trades it against the quality of the steps).

The allocator rows: glibc hands blocks of several MB back to the kernel when they are freed, and the kernel
zero-fills every page again on first touch, ≈ 9,000–20,000 page faults per 256 px iteration. During a run
`nstedu.allocator.steady_allocator` keeps freed blocks in the heap (none at all are faulted in again); at 1024 px
the same setting takes an iteration from ≈ 4.1 s to ≈ 3.1 s, at +25 % peak memory. So a run whose estimate does
not fit with that margin, or of a megapixel or more (where the network's recomputed first block fragments the heap:
7.70 instead of 5.04 GiB at 1920×1080), keeps only blocks up to 32 MiB: the 1920×1080 multi-scale run of
bench_multiscale took 136 s instead of 144 s with glibc's allocator, peak 4.97 GiB instead of 5.04 GiB.
"""


def style_losses(content, style, size, n, device, vgg, x, plan, reps) -> str:
    """ms per L-BFGS iteration of each ``style_loss``, interleaved (so that load drift hits all alike)."""
    from nstedu.style_stats import STYLE_LOSSES

    for s in STYLE_LOSSES:  # warm-up
        engine(content, style, size, 2, device, style_loss=s)
    rows, loads = [], []
    for _ in range(reps):
        rows.append([bare(vgg, x, n, device, plan)] + [engine(content, style, size, n, device, style_loss=s)
                                                       for s in STYLE_LOSSES])
        loads.append(os.getloadavg()[0])
    tb, *ts = medians(rows)
    h, w = x.shape[-2:]
    lines = [f"Image {w}×{h} (grace_hopper × starry_night), L-BFGS, {n} iterations × {reps} interleaved repetitions, "
             f"medians; 1-minute load {min(loads):.1f}–{max(loads):.1f} (a shared machine: the ratios are what to "
             "compare).", "", "| style_loss | ms / iteration | ratio to gram | ratio to bare VGG |", "|---|---|---|---|",
             f"| (bare VGG-19 forward + backward to conv5_1) | {tb * 1e3:.0f} | | 1.00 |"]
    lines += [f"| `{s}` | {t * 1e3:.0f} | {t / ts[0]:.2f} | {t / tb:.2f} |" for s, t in zip(STYLE_LOSSES, ts)]
    return "\n".join(lines)


def medians(rows):
    """The median of each column of ``rows`` (odd counts)."""
    return [sorted(col)[len(col) // 2] for col in zip(*rows)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (64 px, few iterations), no RESULTS.md")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--system-allocator", action="store_true",
                    help="(run by the benchmark itself) bare and L-BFGS only, with NSTEDU_MALLOC=system: print JSON")
    ap.add_argument("--style-losses", action="store_true", help="only the cost per iteration of each style_loss")
    args = ap.parse_args(argv)
    device = nstedu.transfer.resolve_device(args.device)
    size = 64 if args.quick else (512 if device.type == "cuda" else 256)
    n = 5 if args.quick else (50 if device.type == "cuda" else 20)
    content, style = nstedu.samples.load("grace_hopper", size), nstedu.samples.load("starry_night", size)
    vgg = get_vgg("caffe", device)
    x = nstedu.images.pil_to_tensor(content, device)
    cl = device.type == "cpu" and precision_for("auto", device).channels_last
    plan = precision_for("auto", device) if cl else None  # the bare network as the engine runs it
    bare(vgg, x, 2, device, plan)  # warm-up
    if args.style_losses:
        text = style_losses(content, style, size, n, device, vgg, x, plan, 3)
        print(text)
        if not args.quick:
            write_section(f"bench_iteration: style statistics ({device.type})", text)
        return
    engine(content, style, size, 3, device)
    if args.system_allocator:  # a fresh interpreter that never changes glibc's settings
        rows = [(bare(vgg, x, n, device, plan), engine(content, style, size, n, device)) for _ in range(3)]
        print(json.dumps(medians(rows)))
        return
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rows = []
    reps = 3 if args.quick else 5
    for rep in range(reps):  # interleave to share any drift in machine load
        tb = bare(vgg, x, n, device, plan)
        tl = engine(content, style, size, n, device, "lbfgs")
        ta = engine(content, style, size, n, device, "adam")
        tn = bare(vgg, x, n, device) if cl else float("nan")
        tf = engine(content, style, size, n, device, "lbfgs", "fp32") if cl else float("nan")
        rows.append((tb, tl, ta, tn, tf))
    tb, tl, ta, tn, tf = medians(rows)
    cpu = device.type == "cpu"
    ob, ol = float("nan"), float("nan")
    if cpu:  # glibc's usual allocator, in its own interpreter (the engine's settings last for the process)
        env = dict(os.environ, NSTEDU_MALLOC="system")
        ob, ol = json.loads(_child([sys.executable, __file__, "--system-allocator"] + (["--quick"] if args.quick else []),
                                   env)[1].strip().splitlines()[-1])
    late = engine(content, style, size, n, device, "lbfgs", first=101)  # once: L-BFGS's history full (100 pairs)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else ""
    h, w = x.shape[-2:]
    text = (f"Image {w}×{h} (grace_hopper × starry_night), {n} iterations × {reps} interleaved repetitions, medians.\n\n"
            f"| what | ms / iteration | ratio to bare VGG |\n|---|---|---|\n"
            f"| bare VGG-19 forward + input-gradient backward to conv5_1{' (channels_last, as the engine runs)' if cl else ''} | {tb * 1e3:.1f} | 1.00 |\n"
            f"| stylize iteration, L-BFGS | {tl * 1e3:.1f} | **{tl / tb:.3f}** |\n"
            f"| stylize iteration, Adam | {ta * 1e3:.1f} | {ta / tb:.3f} |\n"
            + (f"| bare VGG-19, contiguous NCHW layout (before channels_last) | {tn * 1e3:.1f} | {tn / tb:.3f} |\n"
               f"| stylize iteration, L-BFGS, `precision=\"fp32\"` (NCHW layout) | "
               f"{tf * 1e3:.1f} | {tf / tb:.3f} |\n" if cl else "")
            + (f"| bare VGG-19, glibc's usual allocator (`NSTEDU_MALLOC=system`, own interpreter, 3 repetitions) | {ob * 1e3:.1f} | {ob / tb:.3f} |\n"
               f"| stylize iteration, L-BFGS, glibc's usual allocator | {ol * 1e3:.1f} | {ol / tb:.3f} "
               f"(to its own bare network: {ol / ob:.3f}) |\n" if cpu else "")
            + f"| stylize iteration, L-BFGS, evaluations 101–{100 + n} of one run (history of 100 pairs full) | "
              f"{late * 1e3:.1f} | {late / tb:.3f} |\n\n"
            f"Target: L-BFGS ratio ≤ 1.10 → {'met' if tl / tb <= 1.10 else 'NOT met'}. "
            f"Peak RSS {peak_rss:.0f} MiB{gpu}.\n\n" + (CPU_NOTES if cpu else ""))
    print(text)
    if not args.quick:
        write_section(f"bench_iteration ({device.type})", text)
    if device.type == "cuda":
        gpu = gpu_variants(vgg, x, content, style, size, n, device)
        print(gpu)
        if not args.quick:
            write_section("bench_iteration: precision (cuda)", f"Image {w}×{h}, {n} iterations each.\n\n" + gpu)
    cli_size, cli_steps = (512, 300) if device.type == "cuda" and not args.quick else (64, 1)
    st, load = startup(device, cli_size, cli_steps, reps=1 if args.quick else 3)
    text = startup_text(device, cli_size, cli_steps, st, load)
    print(text)
    if not args.quick:
        write_section(f"bench_iteration: start-up ({device.type})", text)


if __name__ == "__main__":
    main()
