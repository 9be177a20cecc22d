"""Multi-scale (coarse-to-fine) benchmarks for issue 6, on the CPU.

1. Time to quality at 512 px: single-scale L-BFGS with N evaluations reaches a final total loss L*; each
   multi-scale schedule (same budget: N evaluations over all levels) must reach L* in ≤ 40 % of the
   single-scale time. Both final images are also scored with one and the same 512 px Objective. A "bound" row
   starts the finest level from the single-scale result itself, downsampled to half size and upsampled again: the
   best any coarse level could hand over, at no cost. The loss-vs-seconds curves go to benchmarks/multiscale.png,
   the numbers to multiscale.json (coarse levels: their result upsampled and scored at 512 px, scoring not timed).
2. 1920×1080: total time and peak RSS of `stylize_multiscale(size=1920)` with the default levels and steps, in a
   fresh process (targets: ≤ 15 min, ≤ 6 GiB).

    python benchmarks/bench_multiscale.py              # both parts, ≈ 45 min on a 2-core CPU
    python benchmarks/bench_multiscale.py --part hd    # only 1920×1080 (≈ 8–12 min)
    python benchmarks/bench_multiscale.py --quick      # smoke run at tiny sizes (< 1 min), no RESULTS.md
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import write_section  # noqa: E402

from nstedu import samples  # noqa: E402
from nstedu.images import load_image, pil_to_tensor  # noqa: E402
from nstedu.multiscale import stylize_multiscale  # noqa: E402
from nstedu.transfer import (Objective, TransferConfig, load_content, prepare_style_targets,  # noqa: E402
                             run_style_transfer)
from nstedu.vgg import get_vgg  # noqa: E402

CONTENT, STYLE = "chelsea", "starry_night"


def parse_schedule(text: str):
    """"256:150,512:150" → ([256, 512], [150, 150])."""
    pairs = [p.split(":") for p in text.split(",")]
    return [int(s) for s, _ in pairs], [int(n) for _, n in pairs]


def scorer(size: int, cfg: TransferConfig):
    """The Objective of a single-scale run at ``size``: score(image) -> total loss."""
    vgg = get_vgg(cfg.weights, "cpu", cfg.pooling)
    content = pil_to_tensor(load_content(CONTENT, size))
    obj = Objective(vgg, content, prepare_style_targets(STYLE, vgg, cfg, size, "cpu"), cfg)
    h, w = content.shape[-2:]

    @torch.no_grad()
    def score(image) -> float:
        img = load_image(image).resize((w, h), resample=3)  # bicubic, as run_style_transfer's init_image
        return float(obj(pil_to_tensor(img))[0])
    return score


def running_min(values):
    out, best = [], float("inf")
    for v in values:
        best = min(best, v)
        out.append(best)
    return out


def time_to_reach(times, losses, target):
    for t, v in zip(times, running_min(losses)):
        if v <= target:
            return t
    return None


def quality(size: int, steps: int, schedules: list[str], plot: Path | None) -> str:
    cfg = TransferConfig(size=size, steps=steps, progress=False, device="cpu")
    score = scorer(size, cfg)
    single = run_style_transfer(CONTENT, STYLE, cfg)
    target = single.best_loss
    curves = {"single-scale": (single.history["time"], single.history["total"], [])}
    rows = [f"| single-scale {size} px | {steps} @ {size} | {single.seconds:.1f} | {score(single.tensor):.4g} | — | — | "
            f"{time_to_reach(single.history['time'], single.history['total'], 1.05 * target):.1f} |"]
    verdicts = []
    for text in schedules:
        sizes, per_level = parse_schedule(text)
        if sizes[-1] != size or sum(per_level) != steps:
            raise SystemExit(f"schedule {text!r} must end at {size} px and use {steps} evaluations in all")
        excluded, marks, t0 = [0.0], [], [0.0]

        def on_level(s, res, excluded=excluded, marks=marks, t0=t0):
            if s == size:
                return
            t = time.perf_counter()
            value = score(res.image)  # the coarse result upsampled to the final size, scored there (not timed)
            marks.append((t - t0[0] - excluded[0], value))
            excluded[0] += time.perf_counter() - t
        t0[0] = time.perf_counter()
        multi = stylize_multiscale(CONTENT, STYLE, cfg, sizes=sizes, steps_per_scale=per_level, on_level=on_level)
        seconds = time.perf_counter() - t0[0] - excluded[0]
        final = [i for i, s in enumerate(multi.history["size"]) if s == size]
        times = [multi.history["time"][i] - excluded[0] for i in final]
        losses = [multi.history["total"][i] for i in final]
        curves[f"multi-scale {text}"] = (times, losses, marks)
        reach, near = time_to_reach(times, losses, target), time_to_reach(times, losses, 1.05 * target)
        ratio = None if reach is None else reach / single.seconds
        verdicts.append(ratio)
        rows.append(f"| multi-scale | {text} | {seconds:.1f} | {score(multi.tensor):.4g} | "
                    f"{'not reached' if reach is None else f'{reach:.1f}'} | "
                    f"{'—' if ratio is None else f'**{ratio:.0%}**'} | {'—' if near is None else f'{near:.1f}'} |")
    # Lower bound for any schedule that upsamples: start the finest level from the single-scale result itself,
    # downsampled to half size (a "perfect" coarse level, obtained for free) and upsampled again.
    w, h = single.image.size
    oracle = run_style_transfer(CONTENT, STYLE, cfg, steps=steps // 2,
                                init_image=single.image.resize((w // 2, h // 2), resample=1))
    curves["bound (single-scale result ↓↑, free coarse level)"] = (oracle.history["time"], oracle.history["total"], [])
    o_reach = time_to_reach(oracle.history["time"], oracle.history["total"], target)
    o_near = time_to_reach(oracle.history["time"], oracle.history["total"], 1.05 * target)
    o_steps = next((i + 1 for i, v in enumerate(running_min(oracle.history["total"])) if v <= target), None)
    rows.append(f"| bound: single-scale result ↓{size // 2} px ↑, coarse levels free | {steps // 2} @ {size} | "
                f"{oracle.seconds:.1f} | {score(oracle.tensor):.4g} | "
                f"{'not reached' if o_reach is None else f'{o_reach:.1f} ({o_steps} evaluations)'} | "
                f"{'—' if o_reach is None else f'{o_reach / single.seconds:.0%}'} | {'—' if o_near is None else f'{o_near:.1f}'} |")
    best = min((r for r in verdicts if r is not None), default=None)
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, zoom in zip(axes, (False, True)):
            for name, (t, v, marks) in curves.items():  # coarse levels: one point each (upsampled, scored at full size)
                ys = running_min([m[1] for m in marks] + list(v))
                ys = [y / target for y in ys] if zoom else ys
                line, = ax.plot([m[0] for m in marks] + list(t), ys, label=name)
                if not zoom:
                    ax.plot([m[0] for m in marks], [m[1] for m in marks], "o", color=line.get_color())
            ax.axhline(1.0 if zoom else target, color="grey", ls=":", lw=1, label="single-scale final loss L*")
            ax.axvline(0.4 * single.seconds, color="black", ls="--", lw=0.8, label="40 % of the single-scale time")
            ax.set_xlabel("seconds (CPU)")
            if zoom:
                ax.set_ylim(0.98, 1.3)
                ax.set_ylabel("best loss so far / L*")
                ax.set_title("the tail, relative to L*")
            else:
                ax.set_yscale("log")
                ax.set_ylabel(f"total loss at {size} px (best so far)")
                ax.set_title(f"{CONTENT} × {STYLE}, {steps} evaluations each")
                ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        plot.with_suffix(".json").write_text(json.dumps({"L*": target, "single_seconds": single.seconds, "curves": {
            k: {"time": list(t), "total": list(v), "coarse_marks": list(m)} for k, (t, v, m) in curves.items()}}))
        plt.close(fig)
    text = (f"{CONTENT} × {STYLE} at {size} px, {steps} L-BFGS evaluations in all for every run (same step budget), "
            f"default weights. Losses of the returned images scored by one {size} px Objective.\n\n"
            f"| run | evaluations @ size | seconds | final total loss | seconds to reach L* | share of single-scale time "
            f"| seconds to 1.05·L* |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"L* = {target:.4g}. Target: multi-scale reaches L* in ≤ 40 % of the single-scale time → "
            + ("not reached by any schedule" if best is None else f"best {best:.0%}: {'met' if best <= 0.40 else 'NOT met'}")
            + ".\n" + (f"\n![loss vs seconds]({plot.name})\n" if plot is not None else ""))
    return text


def hd_child(size: int, aspect: tuple, steps, levels, out_json: str, save: str | None) -> None:
    """Runs in a fresh process: the 16:9 photo at ``size``, default multi-scale schedule; writes JSON."""
    img = samples.load("rocket")
    w, h = img.size
    ch = w * aspect[1] // aspect[0]
    img = img.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))
    done = []
    t0 = time.perf_counter()
    r = stylize_multiscale(img, STYLE, size=size, levels=levels, steps_per_scale=steps, progress=False, device="cpu",
                           on_level=lambda s, res: done.append(dict(size=s, image=list(res.image.size),
                                                                    evaluations=len(res.history["step"]),
                                                                    seconds=round(res.seconds, 1),
                                                                    history=res.config.lbfgs_history)))
    seconds = time.perf_counter() - t0
    if save:
        r.image.save(save)
    Path(out_json).write_text(json.dumps(dict(seconds=seconds, image=list(r.image.size), levels=done,
                                              rss_self=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))


def hd(size: int, steps, levels, quick: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hd.json"
        save = None if quick else str(HERE.parent / "outputs" / f"multiscale_{size}.jpg")
        if save:
            Path(save).parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "--hd-child", str(size), "--out", str(out)]
        if steps:
            cmd += ["--hd-steps", ",".join(map(str, steps))]
        if levels:
            cmd += ["--hd-levels", str(levels)]
        if save:
            cmd += ["--save", save]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20  # kB → GiB
        info = json.loads(out.read_text())
    w, h = info["image"]
    lv = "\n".join(f"| {d['image'][0]}×{d['image'][1]} | {d['evaluations']} | {d['history']} | {d['seconds']} |"
                   for d in info["levels"])
    ok_t, ok_m = info["seconds"] <= 15 * 60, peak <= 6
    how = (f"evaluations per level {','.join(map(str, steps))}" if steps
           else "default levels and steps (300 split, each finer level ¼ of the previous one's)")
    return (f"rocket (cropped to 16:9) × {STYLE}, `stylize_multiscale(size={size})`, {how}.\n\n"
            f"| level | evaluations | L-BFGS history | seconds |\n|---|---|---|---|\n{lv}\n\n"
            f"Result {w}×{h}: total **{info['seconds'] / 60:.1f} min** (process wall time {wall / 60:.1f} min, "
            f"with start-up) — target ≤ 15 min: {'met' if ok_t else 'NOT met'}; peak RSS **{peak:.2f} GiB** — "
            f"target ≤ 6 GiB: {'met' if ok_m else 'NOT met'}.\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run, no RESULTS.md")
    ap.add_argument("--part", choices=("all", "quality", "hd"), default="all")
    ap.add_argument("--size", type=int, default=512, help="final size of the time-to-quality test (default 512)")
    ap.add_argument("--steps", type=int, default=300, help="evaluation budget of every run (default 300)")
    ap.add_argument("--schedule", action="append", default=None, metavar="S1:N1,S2:N2",
                    help="multi-scale schedule(s) to compare (default 256:100,512:200 and 128:100,256:50,512:150)")
    ap.add_argument("--hd-size", type=int, default=1920)
    ap.add_argument("--hd-steps", default=None, help="evaluations per level for the HD run (default: split of 300)")
    ap.add_argument("--hd-levels", type=int, default=None, help="levels for the HD run (default: down to ≥ 200 px)")
    ap.add_argument("--hd-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    hd_steps = [int(v) for v in args.hd_steps.split(",")] if args.hd_steps else None
    if args.hd_child:
        return hd_child(args.hd_child, (16, 9), hd_steps, args.hd_levels, args.out, args.save)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.quick:
        args.size, args.steps, args.hd_size = 64, 12, 160
        schedules = ["32:6,64:6"]
        hd_steps, args.hd_levels = hd_steps or [4, 2], 2
    else:
        n3 = args.steps // 3  # coarse levels get a full small stylization; the rest of the budget goes to the finest
        schedules = args.schedule or [f"{args.size // 2}:{n3},{args.size}:{args.steps - n3}",
                                      f"{args.size // 4}:{n3},{args.size // 2}:{n3 // 2},{args.size}:{args.steps - n3 - n3 // 2}"]
    if args.part in ("all", "quality"):
        plot = Path(tempfile.gettempdir()) / "multiscale_quick.png" if args.quick else HERE / "multiscale.png"
        text = quality(args.size, args.steps, schedules, plot)
        print(text)
        if not args.quick:
            write_section("bench_multiscale: time to quality", text)
    if args.part in ("all", "hd"):
        text = hd(args.hd_size, hd_steps, args.hd_levels, args.quick)
        print(text)
        if not args.quick:
            write_section("bench_multiscale: 1920×1080", text)


if __name__ == "__main__":
    main()
