r"""Stylize a video clip without flicker (Ruder, Dosovitskiy & Brox, "Artistic style transfer for videos", 2016).

    from nstedu.video import stylize_video
    stylize_video("clip.mp4", "out.mp4", style="starry_night", size=256, steps=100)   # optimization, per frame
    stylize_video("clip.mp4", "out.mp4", fast="starry_night_cpu")                     # fast network, per frame
    stylize_video(..., independent=True)     # each frame on its own: the flickering baseline

**Two modes.** *Optimization* (Gatys et al. per frame): frame ``t`` starts from the previous stylized frame warped
by the optical flow (:mod:`nstedu.flow`) and its objective gains Ruder et al.'s short-term temporal loss

.. math:: L = L_{Gatys}(x) + \lambda_{temp} \cdot \frac{1}{D} \sum_p c(p)\,\|x(p) - \omega(x_{t-1})(p)\|^2

(``D`` = 3·H·W values, pixels in 0–255 units like the TV term, ``c`` = 1 where the flow is reliable, 0 at
occlusions and motion boundaries), written as a wrapper around :class:`nstedu.transfer.Objective` and minimized by
:func:`nstedu.transfer.optimize`. *Fast* (a trained :class:`nstedu.fast.FastStylizer`): one pass per frame, then
the reliable pixels are blended with the warped previous output, ``o_t = y_t + b·c·(ω(o_{t-1}) − y_t)``, so the
stroke pattern moves with the scene instead of being re-drawn every frame (``b``: ``blend``; by default the model's
own, ``starry_night_cpu``: 0.65, ``starry_night``: 0.8, else 0.5: :func:`nstedu.video_frames.default_blend`); unless
the model's file says otherwise (``detail``), the blend's fine band then gets back the detail averaging took from it
(:func:`nstedu.video_blend.keep_detail`), so the strokes do not fade as they are carried; with ``starry_night_cpu``
(or ``hold=True``) pixels whose input has not changed since their output was drawn keep that output whole (the
still hold, :meth:`nstedu.video_frames.FastFrames.held`). ``tuned`` picks a shipped model's *video-tuned* version
(:mod:`nstedu.fast.stability`: fine-tuned to be stable under small motion); by default as the model's file asks
(:func:`nstedu.video_frames.default_tuned`): ``starry_night_cpu`` runs as ``starry_night_cpu_video`` and
``starry_night`` as ``starry_night_video``, each fine-tuned for stability with a stronger style term, which flicker
less on every real clip measured at no more style distance than the networks trained on photos with the same blend.
The run's notes say which model ran and whether it blended.
The flow and masks are computed on the *input* frames (backward ``t→t-1`` and forward ``t-1→t``, DIS by default,
at up to 320 px); the mask also lets go of pixels whose colour the flow does not explain (small fast objects). At a
scene cut (:mod:`nstedu.shots`) nothing is carried: the new shot's first frame is stylized as a first frame. In optimization mode that frame gets the whole budget,
and later frames stop once their loss stops improving (``tolerance``), which is most of the saving on a laptop.

**Streaming.** Frames are decoded, stylized and encoded one at a time (PyAV; :mod:`nstedu.videoio`): memory holds
the current and previous frame only, whatever the clip's length. A progress bar shows frames/s and the ETA.

**Resume and crash safety.** The output is written as *segments* in ``OUT.parts/`` (``seg_NNNNNN.mp4``, each
a complete file with its own keyframe, closed every ``segment_seconds`` of video or ``segment_wall_seconds`` of
work). After each segment, ``OUT.parts/progress.json`` records (atomically) the finished segments, the number of
frames done, the settings' fingerprint, and a ``.pt`` file with the last stylized frame in full precision (the
next frame is warped from it). On Ctrl-C, SIGTERM or SIGHUP (:mod:`nstedu.video_signals`: a second signal waits
for this clean-up) or any exception the current segment is finalized and recorded, and the segments done so far
are joined, with the audio, into ``OUT`` — a playable file of the frames done so far.
``resume=True`` (``--resume``) checks the fingerprint, decodes and skips the finished frames, reloads the last
stylized frame and continues; the finished segments are copied, not re-encoded. At the end the segments are joined
into ``OUT`` (packet copy, written under a temporary name and renamed) and ``OUT.parts/`` is removed. A hard kill
(SIGKILL, power loss) loses at most the open segment. The audio stream is copied when the container can hold it
and every frame keeps its source timestamp (variable frame rates stay variable; audio stays in sync).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from . import flow as FL
from . import videoio as V
from .video_frames import (BLEND, TEMPORAL_WEIGHT, TOLERANCE, FastFrames, OptimizedFrames,  # noqa: F401
                           TemporalObjective, optimized_bytes_per_pixel)
from .shots import ShotBoundaries
from .video_progress import _fingerprint, _keeps_output, _load_progress
from .video_signals import shielded, stop_signals
from .env import default_size, resolve_device
from .images import MIN_SIDE, atomic_write
from .outputs import check_not_input, partial_path
from .samples import load_style


@dataclass
class VideoResult:
    """What :func:`stylize_video` did: the output file, frames written (of the clip's ``total``), wall seconds,
    frames per second of this run, the mean warping error (``None`` unless ``measure``), why it stopped."""

    output: Path
    frames: int
    total: int
    seconds: float
    fps: float
    warping_error: Optional[float]
    stop_reason: str                       # "finished" or "interrupted"
    mode: str
    notes: list = field(default_factory=list)
    warping_errors: list = field(default_factory=list)
    cuts: list = field(default_factory=list)          # (frame starting a shot, its cut scores or None if given)
    frame_seconds: list = field(default_factory=list)  # wall seconds of each frame stylized in this run


@stop_signals()  # SIGTERM and SIGHUP stop the run like Ctrl-C: the frames done are kept (nstedu.video_signals)
def stylize_video(input, output, style=None, *, fast=None, size: Optional[int] = None,
                  max_frames: Optional[int] = None, independent: bool = False,
                  temporal_weight: float = TEMPORAL_WEIGHT, blend: Optional[float] = None,
                  hold: Optional[bool] = None, detail: Optional[bool] = None, resume: bool = False,
                  measure: bool = False, progress: bool = True, on_frame: Optional[Callable] = None,
                  flow_method: str = "dis", flow_preset: str = "medium", segment_seconds: float = 2.0,
                  segment_wall_seconds: float = 60.0, cuts="auto", tolerance: float = TOLERANCE,
                  tuned: Optional[bool] = None, flow_size: Optional[int] = FL.FLOW_SIDE, device="auto",
                  **settings) -> VideoResult:
    """Stylize the video ``input`` into ``output`` (.mp4, .mov, .mkv or .webm) and return a :class:`VideoResult`.

    ``style`` (a path or sample name) selects the optimization mode, ``fast`` (a model file or shipped name such as
    ``"starry_night_cpu"``) the fast mode; ``tuned``: use a shipped model's video-tuned version
    (``starry_night_cpu_video``, trained for stability: :mod:`nstedu.fast.stability`) when there is one (None: as
    the model's file asks, :func:`nstedu.video_frames.default_tuned`; the run's notes name the model and whether it
    blended); ``blend``: fast mode's share of the warped
    previous output on reliable pixels (None: the model's own, see :func:`nstedu.video_frames.default_blend`);
    ``hold``: fast mode keeps the output of pixels whose input has not changed (None: as the model's file asks,
    :func:`nstedu.video_frames.default_hold`); ``detail``: fast mode gives the blended strokes their detail back
    (:func:`nstedu.video_blend.keep_detail`; None: as the model's file asks, on unless it says otherwise).
    ``size``: longest side of the frames stylized (default: the source's in
    fast mode; in optimization mode the engine's default, or the source's if smaller: a clip is upscaled only when
    ``size`` asks). ``settings``: any :class:`nstedu.TransferConfig` field (``steps``, ``style_weight``, …): the
    first frame of each shot gets ``steps`` evaluations, later frames stop earlier once their loss improves by less
    than ``tolerance`` (relative, over 10 evaluations; 0 = always ``steps``). ``cuts``: ``"auto"`` (detect scene
    cuts), ``"none"``, or the frames that start a shot (:mod:`nstedu.shots`): a new shot is stylized as a first
    frame. ``independent``: no flow, no temporal term (the flickering baseline).
    ``flow_size``: the flow and its mask are computed on frames shrunk to this longest side and upsampled
    (:class:`nstedu.flow.PairFlow`; None = full size). ``measure``: compute the warping error
    (:func:`nstedu.flow.warping_error`) of every consecutive pair.
    ``on_frame(index, frame, stylized)`` is called after each frame is written (tensors ``(1, 3, H, W)`` in [0, 1]).
    Checks, in order and before any work: ``output`` writable, the style/model found, ``input`` a decodable video
    whose frames fit in memory. See the module docstring for ``resume`` and what happens on Ctrl-C or a crash."""
    t0 = time.perf_counter()
    output = V.check_output(output)
    check_not_input(output, {"input video": input, "style image": style, "model": fast})
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIDE):
        raise ValueError(f"size must be a whole number of pixels ≥ {MIN_SIDE}, got {size!r}")
    if (style is None) == (fast is None):
        raise ValueError("give either a style image (optimization mode) or fast=MODEL (fast mode), not both or neither")
    if max_frames is not None and (max_frames < 1 or int(max_frames) != max_frames):
        raise ValueError(f"max_frames must be a positive integer, got {max_frames!r}")
    if fast is not None:
        unknown = sorted(settings)
        if unknown:
            raise ValueError(f"fast mode has no optimization settings; remove {unknown}")
        stylizer, mode = FastFrames(fast, blend, device, tuned=tuned, independent=independent, hold=hold,
                                    detail=detail), "fast"
    else:
        for s in (style if isinstance(style, (list, tuple)) else [style]):
            load_style(s, 256)  # a missing or unreadable style fails here, before the input is opened
    shots = ShotBoundaries(cuts)
    info = V.probe(input)
    notes = []
    if size is None and fast is None:   # the engine's default, but never more than the clip has
        size = min(default_size(resolve_device(device)), max(info.width, info.height))
    elif size is not None and size > max(info.width, info.height):
        notes.append(f"note: the clip is {info.width}×{info.height}; upscaled to a longest side of {size} px as asked")
    width, height = V.working_size(info.width, info.height, size)
    if fast is None:  # the memory is checked before the network and the style targets are allocated
        per_pixel = optimized_bytes_per_pixel(settings.get("optimizer", "lbfgs"), settings.get("lbfgs_history", 100))
        V.check_memory(f"video '{input}'", width, height, per_pixel, "optimization mode")
        stylizer = OptimizedFrames(style, max(width, height), temporal_weight, device=device, tolerance=tolerance,
                                   **settings)
        mode = "optimization"
    V.check_memory(f"video '{input}'", width, height, stylizer.bytes_per_pixel(), f"{mode} mode")

    codec, note = V.pick_encoder(suffix=output.suffix)
    notes += [note] if note else []
    if info.variable_rate:
        notes.append("note: variable frame rate: every frame keeps its timestamp, so the output's rate varies too")
    config = {"mode": mode, "style": str(style), "fast": str(getattr(stylizer, "model", fast)), "size": [width, height],
              "independent": independent, "temporal_weight": temporal_weight, "blend": getattr(stylizer, "blend", BLEND),
              "flow": [flow_method, flow_preset, flow_size], "codec": codec,
              "cuts": sorted(shots.spec) if isinstance(shots.spec, frozenset) else shots.spec, "tolerance": tolerance,
              "settings": getattr(stylizer, "cfg", None) and stylizer.cfg.to_dict(),
              # recorded only when on, so a resume point written before an option existed still matches
              **{k: True for k in ("hold", "detail") if getattr(stylizer, k, False) and not independent}}
    parts = output.with_name(output.name + ".parts")
    finished_there = os.path.lexists(output) and _keeps_output(parts)
    state = _load_progress(parts, _fingerprint(Path(input), config), resume, output)
    # a finished video at OUT is replaced only by a finished one: an interrupted run's frames go beside it
    state.setdefault("keep_output", finished_there)
    unfinished_to = partial_path(output) if state["keep_output"] else output
    parts.mkdir(parents=True, exist_ok=True)
    done = state["done"]
    total = min(info.frames, max_frames) if max_frames else info.frames
    prev_in = prev_out = None
    carried: dict = {}   # what the stylizer carries to the next frame, taken with prev_out (saved with it)
    if done and state.get("state"):
        prev_out = torch.load(parts / state["state"], map_location="cpu", weights_only=True)
        if isinstance(prev_out, dict):   # the output and what the stylizer carries
            prev_out, carried = prev_out["output"], {k: v for k, v in prev_out.items() if k != "output"}
            getattr(stylizer, "restore", lambda s: None)(carried)
    flows = FL.PairFlow(FL.FlowEstimator(flow_method, flow_preset), flow_size) if (measure or not independent) else None
    shots.found = state.setdefault("cuts", [])   # one list, saved with the progress: a resumed run reports them all
    errors, writer, seg_start, seg_t0, start_pts, last_time = [], None, 0, time.perf_counter(), None, 0.0
    frame_seconds: list = []
    seg_frames = max(1, round(segment_seconds * float(info.fps)))
    from tqdm.auto import tqdm  # heavy (pulls in ipywidgets in notebooks): only with a progress bar

    bar = tqdm(total=total, initial=min(done, total), unit="frame", desc=f"video ({mode})", disable=not progress)

    def close_segment():
        nonlocal writer
        if writer is None:
            return
        name = writer.path.name
        if writer.frames:
            writer.close()
            state["segments"].append([name, seg_start, writer.frames])
        else:
            writer.abort()
        writer = None
        state["done"] = sum(s[2] for s in state["segments"])
        state_file = f"state_{state['done']:06d}.pt"
        atomic_write(parts / state_file, lambda f: torch.save({"output": prev_out, **carried}, f))
        old, state["state"] = state.get("state"), state_file
        atomic_write(parts / "progress.json", lambda f: f.write(json.dumps(state, indent=1)), text=True)
        if old and old != state_file:
            (parts / old).unlink(missing_ok=True)

    def finish_output(dest=output) -> list:
        if not state["segments"]:
            return []
        segs = [(parts / name, offset) for name, offset, _ in state["segments"]]
        end = last_time + 1.0 / float(info.fps)
        note = V.join(segs, dest, info.time_base, audio_source=input, start_time=start_pts * info.time_base,
                      end_time=float(start_pts * info.time_base) + end, fps=info.fps)
        return [note] if note else []

    stop_reason = "finished"
    try:
        for i, frame in V.read_frames(input):
            if max_frames is not None and i >= max_frames:
                break
            pts = frame.pts if frame.pts is not None else round(i / (info.fps * info.time_base))  # raw streams
            if start_pts is None:
                start_pts = pts
            rel = pts - start_pts
            if i < done:
                last_time = float(rel * info.time_base)  # the last finished frame's time: where the audio stops
            if i < done - 1:
                continue
            rgb = V.to_rgb(frame, width, height)
            cur = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
            if i < done:
                prev_in = cur
                continue
            warped = mask = bwd = None
            frame_t0 = time.perf_counter()
            if getattr(stylizer, "overlap", False):   # fast mode: the network runs while the flow is computed
                stylizer.prepare(cur)
            if flows is not None and prev_in is not None:
                bwd, fwd, mask = flows(cur, prev_in)
            if shots(i, prev_in, cur, mask):   # a new shot: nothing of the previous one is carried (or measured)
                bwd = mask = None
            elif bwd is not None and not independent:
                warped = FL.warp(prev_out, bwd, stylizer.warp_mode).clamp_(0, 1)
            out = stylizer(cur, warped, mask, prev_out).cpu().clamp_(0, 1)
            if measure and bwd is not None:
                errors.append(FL.warping_error(out, prev_out, bwd, mask))
            if writer is None:
                seg_start, seg_t0 = rel, time.perf_counter()
                writer = V.SegmentWriter(parts / f"seg_{i:06d}.mp4", width, height, info.time_base, info.fps, codec)
            writer.write((out[0] * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy(), rel - seg_start)
            # one assignment: a signal (KeyboardInterrupt) cannot leave the output and the carried state of two frames
            prev_in, prev_out, carried, last_time = (cur, out, getattr(stylizer, "temporal_state", dict)(),
                                                     float(rel * info.time_base))
            bar.update(1)
            frame_seconds.append(time.perf_counter() - frame_t0)
            if frame_seconds[-1] >= 1:      # slow frames: seconds per frame reads better than frames per second
                bar.set_postfix_str(f"{frame_seconds[-1]:.1f} s/frame", refresh=False)
            if on_frame is not None:
                on_frame(i, cur, out)
            if writer.frames >= seg_frames or time.perf_counter() - seg_t0 >= segment_wall_seconds:
                close_segment()
        close_segment()
        notes += finish_output()
        shutil.rmtree(parts, ignore_errors=True)
    except KeyboardInterrupt:
        with shielded():  # a second Ctrl-C or SIGTERM waits until the frames done are a playable file
            stop_reason = "interrupted"
            close_segment()
            notes += finish_output(unfinished_to)
        kept = f" ('{output}', a finished video, was kept)" if unfinished_to != output else ""
        notes.append(f"interrupted after {state['done']} frames; {unfinished_to} has them{kept}. Rerun with --resume "
                     f"(resume=True) to continue from frame {state['done'] + 1}")
    except BaseException:
        try:  # keep what is done: a playable file and a resume point, then report the original error
            with shielded():
                close_segment()
                finish_output(unfinished_to)
        except Exception:
            pass
        raise
    finally:
        bar.close()
        getattr(stylizer, "close", lambda: None)()
    seconds = time.perf_counter() - t0
    new_frames = state["done"] - done
    where = output if stop_reason == "finished" else unfinished_to
    lines = [line for line in (shots.describe(), getattr(stylizer, "summary", str)()) if line]
    at = len(notes) - (stop_reason == "interrupted")        # the "how to resume" line stays the last one
    notes[at:at] = lines
    return VideoResult(where, state["done"], total, seconds, new_frames / seconds if seconds else 0.0,
                       sum(errors) / len(errors) if errors else None, stop_reason, mode, notes, errors,
                       [tuple(c) for c in shots.found], frame_seconds)
