"""Video (issue 17): flicker and style, independent per-frame stylization vs temporally consistent, in both modes;
frames per second of the fast mode at 360p; peak memory of a 10 s and a 60 s clip.

* **warping error**: :func:`nstedu.flow.warping_error` of every consecutive pair of output frames (flow and
  occlusion mask from the *input* frames), averaged — lower = less flicker;
* **style distance**: relative Gram distance to the painting, mean over relu1_1…relu5_1 of
  ‖G(out) − G(painting)‖² / ‖G(painting)‖² with G = F·Fᵀ/(C·H·W) on post-ReLU Caffe VGG-19 features, averaged
  over the frames scored (:mod:`nstedu.metrics`).

Targets: warping error ≥ 50 % lower than independent at a style distance within 10 % of it (not worse by more),
both modes; fast mode ≥ 2 frames/s at 360p on a 2-core CPU (decode, flow, network, blending and encode included);
peak RSS of a 10 s and a 60 s clip within 10 %. The clip is nstedu.clips' synthetic pan/zoom/moving-object clip.

Usage: python benchmarks/bench_video.py [--quick] [--part quality|speed|memory|all] [--threads N]
       python benchmarks/bench_video.py --real [fast|still|optimization|speed|all]     # real footage (issue 25)
``--quick``: tiny clips and few steps, nothing written to RESULTS.md (a smoke test). ``--real``: the same comparison
on the shipped real clips, scored also with an independent warping error (Farnebäck flow; ``_video_real.py``,
``_warping.py``); each part writes its own section ``bench_video real PART (cpu)``. Only nstedu's outputs are
scored: the reference implementation of Ruder et al. (manuelruder/artistic-videos) needs Lua Torch7 and the
DeepFlow/DeepMatching binaries, neither installable here (not on PyPI or Debian), and its example frames may not be
redistributed (nstedu/data/SOURCES.md).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

from nstedu import clips, metrics, samples  # noqa: E402
from nstedu.images import pil_to_tensor  # noqa: E402
from nstedu.fast import FastStylizer, read_model_file  # noqa: E402
from nstedu.video import TEMPORAL_WEIGHT, stylize_video  # noqa: E402
from nstedu.video_frames import FastFrames, default_blend  # noqa: E402
from nstedu.vgg import get_vgg  # noqa: E402

class StyleDistance:
    """``StyleDistance(painting, size)(image)`` → the style distance of :mod:`nstedu.metrics` (mean over
    relu1_1…relu5_1 of ‖G − A‖² / ‖A‖²), with the painting's features computed once."""

    def __init__(self, painting="starry_night", size: int = 256):
        self.vgg = get_vgg("caffe", "cpu")
        with torch.no_grad():
            self.targets = self.vgg(pil_to_tensor(samples.load(painting, size) if isinstance(painting, str) else painting),
                                    list(metrics.STYLE_LAYERS))

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> float:
        layers = metrics.style_distances(self.vgg(image, list(metrics.STYLE_LAYERS)), self.targets)
        return sum(layers.values()) / len(layers)


def model_blend(model) -> float:
    """The blend fast mode uses for ``model`` when none is given (its file's ``video_blend``, else the default)."""
    return default_blend(read_model_file(model)["meta"], model)


def compare(clip, mode_kwargs: dict, size: int, every: int = 1, workdir=None) -> dict:
    """Independent vs temporal on ``clip``: {label: (warping error, style distance, frames/s)}."""
    dist = StyleDistance("starry_night", size)
    rows = {}
    for label, extra in (("independent", {"independent": True}), ("temporal", {})):
        scores = []

        def score(i, frame, out):
            if i % every == 0:
                scores.append(dist(out))

        out = Path(workdir) / f"{label}.mp4"
        r = stylize_video(clip, out, size=size, measure=True, progress=False, on_frame=score, **mode_kwargs, **extra)
        rows[label] = (r.warping_error, sum(scores) / len(scores), r.fps, r.frames)
        print(f"  {label:<12} warping error {r.warping_error:.5f}  style distance {rows[label][1]:.4f}  "
              f"{r.fps:.2f} frames/s ({r.frames} frames)", flush=True)
    return rows


def against(we_i: float, sd_i: float, we_t: float, sd_t: float, reduction_target: float) -> tuple[float, float, bool]:
    """A temporal run (warping error ``we_t``, style distance ``sd_t``) against independent frames (``we_i``,
    ``sd_i``): (the warping error's reduction, the style distance's change, the target met: that reduction at a
    style distance ≤ +10 %)."""
    cut, sd_change = 1 - we_t / we_i, sd_t / sd_i - 1
    return cut, sd_change, cut >= reduction_target and sd_change <= 0.10


def verdict(rows) -> tuple[float, float, bool]:
    (we_i, sd_i, *_), (we_t, sd_t, *_) = rows["independent"], rows["temporal"]
    return against(we_i, sd_i, we_t, sd_t, 0.5)


def table(title, rows) -> str:
    cut, change, ok = verdict(rows)
    lines = [f"**{title}**\n", "| run | warping error | style distance | frames/s |", "|---|---|---|---|"]
    for label, (we, sd, fps, n) in rows.items():
        lines.append(f"| {label} ({n} frames) | {we:.5f} | {sd:.4f} | {fps:.2f} |")
    lines.append(f"\nTemporal vs independent: warping error {100 * cut:.0f} % lower, style distance {change:+.1%} → "
                 f"target (≥ 50 % lower at a style distance ≤ +10 %) {'met' if ok else 'NOT met'}.\n")
    return "\n".join(lines)


def peak_rss_mib(clip, size) -> float:
    """Fast mode on ``clip`` in a fresh process; its peak RSS in MiB."""
    code = (f"import resource, sys, torch; torch.set_num_threads({torch.get_num_threads()}); "
            "from nstedu.video import stylize_video; "
            f"stylize_video({str(clip)!r}, {str(clip) + '.out.mp4'!r}, fast='starry_night_cpu', size={size}, progress=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run, nothing written to RESULTS.md")
    ap.add_argument("--part", choices=("quality", "speed", "memory", "all"), default="all")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--real", nargs="?", const="all", choices=("fast", "still", "optimization", "speed", "all"),
                    help="real footage instead of the synthetic clip (default part: all)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.real:
        return real(args)
    q = args.quick
    load0 = os.getloadavg()[0]
    sections = [f"Synthetic clip (nstedu.clips: pan, zoom, moving disc), style starry_night, CPU, "
                f"{torch.get_num_threads()} torch threads, load average {load0:.1f} at the start (2 cores; above ~1 other work shared them)."]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.part in ("quality", "all"):
            n, w, h, size, steps = (3, 48, 32, 48, 5) if q else (16, 160, 96, 128, 50)
            clip = clips.make_synthetic_clip(tmp / "opt.mp4", frames=n, width=w, height=h, fps=24)
            print(f"optimization mode: {n} frames at {size} px, {steps} L-BFGS steps per frame", flush=True)
            rows = compare(clip, dict(style="starry_night", steps=steps), size, workdir=tmp)
            sections.append(table(f"Optimization mode ({n} frames, {size} px long side, {steps} L-BFGS evaluations "
                                  f"per frame, temporal weight {TEMPORAL_WEIGHT:g}, warped-previous init)", rows))
            n, w, h, every = (4, 64, 36, 2) if q else (48, 640, 360, 4)
            clip = clips.make_synthetic_clip(tmp / "fast.mp4", frames=n, width=w, height=h, fps=24)
            print(f"fast mode: {n} frames at {w}×{h}", flush=True)
            rows = compare(clip, dict(fast="starry_night_cpu"), max(w, h), every=every, workdir=tmp)
            sections.append(table(f"Fast mode (starry_night_cpu, {n} frames at {w}×{h}, blend {model_blend('starry_night_cpu'):g}; both runs "
                                  f"with the network its video defaults run, {FastFrames('starry_night_cpu', device='cpu').model}; "
                                  f"style distance on one frame in {every})", rows))
        if args.part in ("speed", "all"):
            n, w, h = (4, 64, 36) if q else (72, 640, 360)
            clip = clips.make_synthetic_clip(tmp / "speed.mp4", frames=n, width=w, height=h, fps=24)
            lines = ["**Fast mode speed** (whole pipeline: decode, DIS flow both ways, network, blending, H.264 encode, "
                     "join; model loading included in the time; *network alone*: median of 3 passes on one frame)\n",
                     "| device | model | frames | frames/s | network alone, s/frame | target |", "|---|---|---|---|---|---|"]
            for model in ("starry_night_cpu", "starry_night"):
                t = time.perf_counter()
                r = stylize_video(clip, tmp / "speed_out.mp4", fast=model, progress=False)
                fps = r.frames / (time.perf_counter() - t)
                net, x = FastStylizer.load(model, "cpu"), torch.rand(1, 3, h, w)
                passes = []
                for _ in range(4):
                    t = time.perf_counter()
                    net.stylize_tensor(x)
                    passes.append(time.perf_counter() - t)
                alone = sorted(passes[1:])[1]
                print(f"  {model}: {fps:.2f} frames/s at {w}×{h}; network alone {alone:.3f} s/frame", flush=True)
                ok = "met" if fps >= 2 else "NOT met"
                lines.append(f"| CPU ({torch.get_num_threads()} threads) | {model} | {n} at {w}×{h} | {fps:.2f} | "
                             f"{alone:.3f} | ≥ 2 → {ok} |")
            lines.append("| GPU | — | — | not measured (no device) | — | ≥ 30 at 720p |")
            lines.append(f"\nLoad average {os.getloadavg()[0]:.1f} after the speed runs.\n")
            sections.append("\n".join(lines))
        if args.part in ("memory", "all"):
            fps, (w, h) = 24, ((48, 32) if q else (160, 96))
            seconds = (1, 3) if q else (10, 60)
            rss = {}
            for s in seconds:
                clip = clips.make_synthetic_clip(tmp / f"mem_{s}.mp4", frames=s * fps, width=w, height=h, fps=fps)
                rss[s] = peak_rss_mib(clip, max(w, h))
                print(f"  {s} s clip: peak RSS {rss[s]:.0f} MiB", flush=True)
            a, b = rss[seconds[0]], rss[seconds[1]]
            change = b / a - 1
            sections.append(f"**Memory** (fast mode, {w}×{h}, {fps} fps, each run in a fresh process): peak RSS "
                            f"{a:.0f} MiB for {seconds[0]} s, {b:.0f} MiB for {seconds[1]} s ({change:+.1%}) → target "
                            f"(within 10 %) {'met' if abs(change) <= 0.10 else 'NOT met'}.\n")
    text = "\n\n".join(sections)
    print(text)
    if not q:  # one section per part, so a part can be measured again on its own (e.g. speed on a quiet machine)
        write_section(f"bench_video {args.part} (cpu)", text)
    return 0


def real(args) -> int:
    import _video_real

    for part in _video_real.PARTS if args.real == "all" else (args.real,):
        head = (f"Real footage (`nstedu.clips.real_clip()` / `real_clip_with_cut()`: OpenCV's tutorial videos, 320×240, "
                f"30 frames/s; `nstedu/data/SOURCES.md`), style starry_night, CPU, {torch.get_num_threads()} torch "
                f"threads, load average {os.getloadavg()[0]:.1f} at the start (2 cores; above ~1 other work shared them). *Independent* warping "
                "error: `benchmarks/_warping.py` (Farnebäck flow on the original frames, cv2.remap, forward-backward "
                "mask, pixels in [0, 1], cut pair left out); *own*: `nstedu.flow.warping_error` (DIS flow, the "
                "engine's mask) as `stylize_video(measure=True)` reports it; *change ratio*: the output's mean "
                "frame-to-frame change over the footage's (flow-free; lower = steadier).")
        with tempfile.TemporaryDirectory() as tmp:
            text = head + "\n\n" + _video_real.run(part, args.quick, Path(tmp))
        print(text)
        if not args.quick:
            write_section(f"bench_video real {part} (cpu)", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
