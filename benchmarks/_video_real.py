"""bench_video --real (issue 25): independent vs temporal stylization on *real* footage, scored twice.

* clips: :func:`nstedu.clips.real_clip` (32 frames, 320×240, hand-held camera, a hand tilting a box) and
  :func:`nstedu.clips.real_clip_with_cut` (40 frames, a hard cut before frame 20);
* **independent warping error** (:mod:`_warping`: Farnebäck flow on the original frames, ``cv2.remap``, a
  forward-backward mask, the cut pair left out) — not the flow, warp or mask the engine uses;
* **own warping error**: the project's :func:`nstedu.flow.warping_error` (DIS flow, the engine's mask), as
  ``stylize_video(measure=True)`` reports it (the cut pair left out too);
* **change ratio**: flow-free flicker, the output's mean frame-to-frame change over the footage's (:mod:`_warping`);
* **style distance**: as in the synthetic sections (:class:`bench_video.StyleDistance`);
* time: seconds per frame after the first (the first includes loading the network / VGG and the style targets).

The engine runs with its defaults (``cuts="auto"``: on the clip with a cut it must find the cut itself; the report
names the cuts it found, and says whether the temporal run started afresh there).

Parts: ``fast`` (both fast models on the real clip, ``starry_night_cpu`` on the clip with a cut, both models on the
held-out clips of ``benchmarks/heldout/``), ``still`` (the flow's still-scene test off and on, on the fixed-camera
footage), ``optimization`` (128 px, 100 L-BFGS evaluations per frame), ``speed`` (the small model at 640×360: the real clip
cropped to 16:9 and upscaled ×2). Targets (issue 25): fast ≥ 60 % lower warping error at a style distance ≤ +10 %,
≥ 2 frames/s at 640×360 with the small model; optimization ≥ 80 % lower, ≤ 6 s per frame at 128 px after the first
frame of a shot.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import _warping as WE
from bench_video import StyleDistance, against
from nstedu import clips
from nstedu import flow as FL
from nstedu.video import TEMPORAL_WEIGHT, stylize_video
from nstedu.fast.network import read_model_file
from nstedu.video_frames import FastFrames, default_detail, default_tuned, video_model

PARTS = ("fast", "still", "optimization", "speed")
HELD_OUT = Path(__file__).resolve().parent / "heldout"   # held-out real clips (its README)
FIXED_CAMERA = ("cup_0", "cup_68", "cup_100", "cup_160")  # held-out clips shot from a fixed camera
OPT_SIZE, OPT_STEPS, OPT_FRAMES = 128, 100, 16      # optimization mode: the first half of the clip (time)


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255


BASELINE = ("independent", {"independent": True, "tuned": False})   # the model as named, each frame on its own


def fast_runs(model) -> list:
    """Fast mode's runs for ``model``: its independent frames (the baseline), the engine's defaults (``temporal``),
    and the other choice of network: the model as named when the defaults use its video-tuned version, else the
    video-tuned version with blending; plus the video-tuned network's independent frames; where the defaults keep
    the strokes' detail after blending, the same blend without it."""
    meta = read_model_file(model)["meta"]
    tuned = default_tuned(meta, model)
    runs = [BASELINE, ("temporal", {})]
    # the detail is asked for by the file of the network that runs (the tuned one's when the defaults use it)
    runs_meta = read_model_file(video_model(model))["meta"] if tuned else meta
    if default_detail(runs_meta, model):   # the same blend without the detail restoration (nstedu.video_blend)
        runs.append(("temporal, detail not kept", {"detail": False}))
    if tuned:
        return runs + [("as named + blending", {"tuned": False}),
                       ("video-tuned, independent frames", {"independent": True, "tuned": True})]
    return runs + [("video-tuned, independent frames", {"independent": True, "tuned": True}),
                   ("video-tuned + blending", {"tuned": True})]


def defaults(model) -> str:
    """What fast video mode runs for ``model`` by default: the network, its blend, the detail, the hold."""
    f = FastFrames(model, device="cpu")
    return (f"defaults: network {f.model}, blend {f.blend:g}, detail {'kept' if f.detail else 'not kept'}, "
            f"hold {'on' if f.hold else 'off'}")


def own_error(result, cuts) -> float:
    """The engine's mean warping error less the cut pairs (``warping_errors[t - 1]`` is the pair (t-1, t) when every
    pair was measured; if the engine skipped some, e.g. at a cut it detected, its mean is taken as it is)."""
    errs = result.warping_errors
    if len(errs) != result.frames - 1:
        return result.warping_error
    kept = [e for t, e in enumerate(errs, start=1) if t not in set(cuts)]
    return sum(kept) / len(kept) if kept else float("nan")


def compare(clip, mode_kwargs: dict, workdir: Path, *, size=None, max_frames=None, cuts=(), every=1,
            verbose=False, runs=(("independent", {"independent": True}), ("temporal", {}))) -> dict:
    """Independent vs temporal on ``clip``: {label: row dict}, the stylized frames kept (uint8, as written);
    ``verbose``: print each frame's time as it is done. The engine runs with its defaults (``cuts="auto"``: it
    must find a cut itself; ``cuts`` here only tells the *measures* which pair to leave out). ``runs``: (label,
    extra keyword arguments) of each run; the first is the baseline the others are compared with."""
    rows, dist = {}, None
    for label, extra in runs:
        outs, stamps = [], []

        def keep(i, frame, out):
            stamps.append(time.perf_counter())
            outs.append(_u8(out))
            if verbose:
                print(f"    {label} frame {i}: {stamps[-1] - (stamps[-2] if len(stamps) > 1 else t0):.1f} s", flush=True)

        t0 = time.perf_counter()
        r = stylize_video(clip, workdir / f"run{len(rows)}.mp4", size=size, max_frames=max_frames, measure=True,
                          progress=False, on_frame=keep, **mode_kwargs, **extra)
        h, w = outs[0].shape[:2]
        originals = WE.read_frames(clip, (w, h), len(outs))
        dist = dist or StyleDistance("starry_night", max(w, h))
        ind = WE.warping_error(originals, outs, cuts)
        rows[label] = dict(frames=len(outs), size=(w, h), ind=ind, own=own_error(r, cuts), found=[c[0] for c in r.cuts],
                           change=WE.change_ratio(originals, outs, cuts), still=WE.still_flicker(originals, outs, cuts),
                           originals=originals,
                           style=float(np.mean([dist(_tensor(o)) for o in outs[::every]])),
                           first=stamps[0] - t0, after=(stamps[-1] - stamps[0]) / max(1, len(stamps) - 1),
                           fps=len(outs) / (stamps[-1] - t0), outputs=outs)
        print(f"  {label:<12} independent warping error {ind.mean:.5f} (own {rows[label]['own']:.5f}), change ratio "
              f"{rows[label]['change']:.2f}, style distance {rows[label]['style']:.4f}, {rows[label]['after']:.2f} s/frame "
              f"after the first ({len(outs)} frames)", flush=True)
    return rows


def verdict(i: dict, t: dict, reduction_target: float) -> tuple[float, float, bool]:
    """Run ``t`` against the independent run ``i``, scored with the independent warping error (``against``)."""
    return against(i["ind"].mean, i["style"], t["ind"].mean, t["style"], reduction_target)


def _versus(name: str, i: dict, t: dict, reduction_target: float) -> str:
    (cut_ind, sd, ok), cut_own = verdict(i, t, reduction_target), 1 - t["own"] / i["own"]
    return (f"{name} vs independent: independent warping error **{100 * cut_ind:.0f} % lower** (own measure: "
            f"{100 * cut_own:.0f} % lower), change ratio {i['change']:.2f} → {t['change']:.2f}, style distance "
            f"{sd:+.1%} → target (≥ {100 * reduction_target:.0f} % lower at a style distance ≤ +10 %) "
            f"{'met' if ok else 'NOT met'}.")


def table(title: str, rows: dict, reduction_target: float, seconds_target=None) -> str:
    i, t = rows["independent"], rows["temporal"]
    lines = [f"**{title}**\n",
             "| run | frames | warping error, independent (Farnebäck) | warping error, own (DIS) | change ratio | "
             "style distance | first frame, s | s/frame after the first | frames/s (whole run) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['frames']} at {r['size'][0]}×{r['size'][1]} | {r['ind'].mean:.5f} | {r['own']:.5f} | "
                     f"{r['change']:.2f} | {r['style']:.4f} | {r['first']:.1f} | {r['after']:.2f} | {r['fps']:.2f} |")
    lines.append("\n" + _versus("Temporal", i, t, reduction_target) +
                 f" The independent mask kept {100 * t['ind'].coverage:.0f} % of the pixels. "
                 f"Cuts the engine detected (cuts=\"auto\"): {t['found'] or 'none'}.")
    for label, r in rows.items():   # further runs (e.g. a model trained for stability), each against the baseline
        if label not in ("independent", "temporal"):
            lines.append(_versus(label[0].upper() + label[1:], i, r, reduction_target) +
                         (f" Cuts detected: {r['found'] or 'none'}." if "independent" not in label else ""))
    if seconds_target is not None:
        met = t["after"] <= seconds_target
        lines.append(f"Temporal run: {t['after']:.1f} s per frame after the first → target (≤ {seconds_target:g} s) "
                     f"{'met' if met else 'NOT met'}.")
    return "\n".join(lines) + "\n"


def cut_note(rows: dict, cut: int, baseline="independent", temporal="temporal") -> str:
    """Did the temporal run start afresh at the cut? Its first frame after the cut against the independent one
    (fast mode: a first frame of a shot is the network's output alone, so the two are equal when it did)."""
    ind, tmp = rows[baseline]["outputs"], rows[temporal]["outputs"]
    gap = [float(np.abs(tmp[k].astype(np.float32) - ind[k].astype(np.float32)).mean()) / 255 for k in (0, cut, cut + 1)]
    verdict = ("started afresh at the cut, as on a first frame" if gap[1] <= 0.002 else
               f"did not start afresh: it blended the previous shot, warped, into frame {cut} (the cut was not detected)")
    return (f"The cut pair (frames {cut - 1}→{cut}) is left out of every warping error above. {temporal[0].upper() + temporal[1:]} vs {baseline} "
            f"output, mean |difference| (0–1): {gap[0]:.3f} at frame 0, **{gap[1]:.3f} at frame {cut}** (the first after "
            f"the cut), {gap[2]:.3f} at frame {cut + 1} → the temporal run {verdict}.\n")


def held_out(tmp: Path, quick: bool) -> str:
    """Both models, independent vs temporal (the defaults), on the held-out clips (``benchmarks/heldout/``), scored
    with the independent warping error and, where the camera stood still, with the flow-free flicker of the still
    pixels (:func:`_warping.still_flicker`); a frozen frame (the first independent output repeated) shows what the
    independent warping error charges for a clip that does not change at all."""
    lines = ["**Fast mode on held-out real clips** (`benchmarks/heldout/`, its README: 32 frames each from parts of the "
             "same two videos that the shipped clips do not use), the engine's defaults (for starry_night_cpu: its "
             "video-tuned network), against the independent frames of the model as named. *Still pixels*: pixels whose "
             "input did not change within 4 px (< 3/255); on a fixed camera (the cup clips) they did not move, so the "
             "frame-to-frame change there is the warping error with the true flow (no flow estimate); the box clips are "
             "hand-held, their still pixels moved by less than the test sees, so there the column is only indicative. "
             "*Frozen frame*: the first "
             "independent output repeated, a clip with no flicker at all, scored by the independent warping error.\n",
             "| clip | model (video defaults) | warping error, independent → temporal (Farnebäck) | reduction | frozen frame "
             "| still pixels | their flicker, independent → temporal | reduction | style distance "
             "| target (≥ 60 % at ≤ +10 %) |", "|---|---|---|---|---|---|---|---|---|---|"]
    met = total = 0
    models = ("starry_night_cpu",) if quick else ("starry_night_cpu", "starry_night")
    described = {m: defaults(m).replace("defaults: ", "") for m in models}   # loads each model once
    for clip in sorted(HELD_OUT.glob("*.mp4"))[:1 if quick else None]:
        for model in models:
            print(f"fast mode ({model}) on held-out {clip.name}", flush=True)
            rows = compare(clip, dict(fast=model), tmp, max_frames=4 if quick else None, every=2,
                           runs=(BASELINE, ("temporal", {})))
            i, t = rows["independent"], rows["temporal"]
            cut, sd, ok = verdict(i, t, 0.60)
            met, total = met + ok, total + 1
            frozen = WE.warping_error(i["originals"], [i["outputs"][0]] * len(i["outputs"])).mean
            (s_i, share), (s_t, _) = i["still"], t["still"]
            still = (f"{100 * share:.0f} % | {s_i:.6f} → {s_t:.6f} | {100 * (1 - s_t / s_i):.0f} %" if share >= 0.05
                     else f"{100 * share:.0f} % | — | —")
            lines.append(f"| {clip.stem} | {model} ({described[model]}) | {i['ind'].mean:.5f} → {t['ind'].mean:.5f} | "
                         f"{100 * cut:.0f} % | {frozen:.5f} | {still} | {sd:+.1%} | {'met' if ok else 'NOT met'} |")
    return "\n".join(lines) + f"\n\nTarget met on {met} of {total}.\n"


def still_scene(tmp: Path, quick: bool) -> str:
    """Fast mode (``starry_night_cpu``, its blend) on the fixed-camera footage (the cup shot of the clip with a cut
    and the held-out cup clips): neither still-scene remedy, the flow's still-scene test (:func:`nstedu.flow.settle`),
    and that test with the still hold (:meth:`nstedu.video_frames.FastFrames.held`, the default)."""
    lines = ["**Still scenes**, fast mode, starry_night_cpu's video defaults (its video-tuned network, its blend), "
             "against the independent frames of starry_night_cpu, on the fixed-camera footage: *neither*: DIS's "
             "flow as it comes, every reliable pixel blended; *settle*: the flow's still-scene test "
             "(`nstedu.flow.settle`: no motion where no motion explains a 15-px window as well as the flow); "
             "*+ hold*: with it, pixels whose input has not changed since their output was drawn keep that output "
             "whole instead of blending in the network's redrawn strokes (`FastFrames.held`; the default). *Still "
             "pixels* as in the held-out table: the frame-to-frame change there is the warping error with the true "
             "flow (none).\n",
             "| clip | still pixels | their flicker: independent → neither → settle → + hold | reduction: neither → "
             "settle → + hold | independent warping error (Farnebäck), reduction: neither → settle → + hold | change "
             "ratio: independent → neither → settle → + hold | style distance: neither → settle → + hold |",
             "|---|---|---|---|---|---|---|"]
    cut_clip, cut = clips.real_clip_with_cut()
    todo = [("real_cut (its cup shot)", cut_clip, cut)] + [(n, HELD_OUT / f"{n}.mp4", None) for n in FIXED_CAMERA]
    for name, clip, n in todo[:1 if quick else None]:
        n = 4 if quick else n
        print(f"still scenes: {name}", flush=True)
        settle = FL.settle
        FL.settle = lambda flow, a, b: flow
        try:
            rows = compare(clip, dict(fast="starry_night_cpu"), tmp, max_frames=n, every=2,
                           runs=(BASELINE, ("neither", {"hold": False})))
        finally:
            FL.settle = settle
        rows.update(compare(clip, dict(fast="starry_night_cpu"), tmp, max_frames=n, every=2,
                            runs=(("settle", {"hold": False}), ("hold", {}))))
        i, runs = rows["independent"], [rows[k] for k in ("neither", "settle", "hold")]
        (s_i, share), flick = i["still"], [r["still"][0] for r in runs]
        verdicts = [verdict(i, r, 0.6) for r in runs]
        lines.append(f"| {name} | {100 * share:.0f} % | {s_i:.6f} → " + " → ".join(f"{f:.6f}" for f in flick) + " | "
                     + " → ".join(f"{100 * (1 - f / s_i):.0f} %" for f in flick[:-1]) + f" → **{100 * (1 - flick[-1] / s_i):.0f} %** | "
                     + " → ".join(f"{100 * v[0]:.0f} %" for v in verdicts) + f" | {i['change']:.2f} → "
                     + " → ".join(f"{r['change']:.2f}" for r in runs) + " | " + " → ".join(f"{v[1]:+.1%}" for v in verdicts) + " |")
    return "\n".join(lines) + "\n"


def speed_clip(path: Path, quick: bool) -> tuple[Path, int, int]:
    """The real clip cropped to 16:9 and upscaled ×2 to 640×360 (quick: 64×36, 4 frames)."""
    w, h, n = (64, 36, 4) if quick else (640, 360, None)
    frames = WE.read_frames(clips.real_clip(), max_frames=n)
    top = (frames[0].shape[0] - frames[0].shape[1] * 9 // 16) // 2
    out = [cv2.resize(f[top:top + f.shape[1] * 9 // 16], (w, h), interpolation=cv2.INTER_CUBIC) for f in frames]
    return clips.write_video(path, out, fps=30), w, h


def run(part: str, quick: bool, tmp: Path) -> str:
    """One part's markdown (also printed as it goes)."""
    clip = clips.real_clip()
    if part == "fast":
        n = 4 if quick else None
        out = []
        for model in (("starry_night_cpu",) if quick else ("starry_night_cpu", "starry_night")):
            print(f"fast mode ({model}) on the real clip", flush=True)
            rows = compare(clip, dict(fast=model), tmp, max_frames=n, every=2, runs=fast_runs(model))
            out.append(table(f"Fast mode, {model}, real clip ({defaults(model)}; *video-tuned*: {video_model(model)}, "
                             f"fine-tuned for stability, `nstedu/models/README.md`; every run against the independent "
                             f"frames of {model} itself; style distance on one frame in 2)", rows, 0.60))
        cut_clip, cut = clips.real_clip_with_cut()
        print("fast mode (starry_night_cpu) on the real clip with a cut", flush=True)
        rows = compare(cut_clip, dict(fast="starry_night_cpu"), tmp, max_frames=(cut + 3) if quick else None,
                       cuts=[cut], every=2, runs=fast_runs("starry_night_cpu"))
        out.append(table(f"Fast mode, starry_night_cpu, real clip with a hard cut before frame {cut} "
                         f"({defaults('starry_night_cpu')})", rows, 0.60))
        out.append(cut_note(rows, cut, "video-tuned, independent frames", "temporal"))
        out.append(cut_note(rows, cut, "independent", "as named + blending"))
        out.append(held_out(tmp, quick))
        return "\n".join(out)
    if part == "still":
        return still_scene(tmp, quick)
    if part == "optimization":
        size, steps, n = (64, 5, 3) if quick else (OPT_SIZE, OPT_STEPS, OPT_FRAMES)
        print(f"optimization mode on the first {n} frames of the real clip: {size} px, {steps} L-BFGS evaluations", flush=True)
        rows = compare(clip, dict(style="starry_night", steps=steps), tmp, size=size, max_frames=n, verbose=True)
        whole = sum(r["first"] + 31 * r["after"] for r in rows.values()) / 60
        return table(f"Optimization mode, real clip, first {n} of its 32 frames (the whole clip, both runs, would take "
                     f"about {whole:.0f} min here), {size} px long side, {steps} L-BFGS evaluations per frame, temporal "
                     f"weight {TEMPORAL_WEIGHT:g}", rows, 0.80, seconds_target=6)
    path, w, h = speed_clip(tmp / "speed.mp4", quick)
    lines = ["**Fast mode speed on real frames** (the real clip cropped to 16:9 and upscaled ×2; whole pipeline: decode, "
             "DIS flow both ways, scene-cut check, network, blending, H.264 encode, join; the engine's defaults). "
             "*Before*: the pipeline one step after the other, flow and mask at full size (`flow_size=None`, "
             "`FastFrames.overlap = False`); *after*: the network in a worker thread while the flow is computed, flow "
             "and mask at 320 px, upsampled (the defaults); the histogram of the cut check computed once per frame in "
             "both. All rows measured in this one run, one after the other.\n",
             "| model | clip | frames | frames/s, whole run (model loading included) | frames/s after the first frame | target |",
             "|---|---|---|---|---|---|"]
    synthetic = clips.make_synthetic_clip(tmp / "synthetic.mp4", frames=4 if quick else 32, width=w, height=h, fps=30)
    threads = torch.get_num_threads()
    plan = [("starry_night_cpu", path, "real", "before", threads), ("starry_night_cpu", path, "real", "after", threads)]
    other = 1 if threads > 1 else min(2, os.cpu_count() or 1)   # one torch thread and the machine's two cores
    if other != threads and not quick:
        plan += [("starry_night_cpu", path, "real", "before", other), ("starry_night_cpu", path, "real", "after", other)]
    plan += [("starry_night", path, "real", "after", threads),
             ("starry_night_cpu", synthetic, "synthetic (same run, for comparison)", "after", threads)]
    for model, source, name, how, n_threads in plan:
        stamps = []
        torch.set_num_threads(n_threads)
        FastFrames.overlap = how == "after"
        try:
            t0 = time.perf_counter()
            r = stylize_video(source, tmp / "speed_out.mp4", fast=model, progress=False,
                              flow_size=FL.FLOW_SIDE if how == "after" else None,
                              on_frame=lambda i, f, o: stamps.append(time.perf_counter()))
        finally:
            FastFrames.overlap = True
            torch.set_num_threads(threads)
        whole, steady = r.frames / (stamps[-1] - t0), (len(stamps) - 1) / (stamps[-1] - stamps[0])
        label = f"{model}, {how}, {n_threads} torch thread{'s' if n_threads > 1 else ''}"   # the defaults (its network)
        print(f"  {label} ({name}): {whole:.2f} frames/s whole run, {steady:.2f} after the first frame at {w}×{h}",
              flush=True)
        target = f"≥ 2 → {'met' if steady >= 2 else 'NOT met'}" if model == "starry_night_cpu" else "—"
        lines.append(f"| {label} | {name} | {r.frames} at {w}×{h} | {whole:.2f} | {steady:.2f} | {target} |")
    return "\n".join(lines) + "\n"
