"""``nstedu video IN --style S -o OUT.mp4 [--fast MODEL]``: the video sub-command's options and runner (a row of
:data:`nstedu.cli.COMMANDS`; the work is :func:`nstedu.video.stylize_video`)."""
from __future__ import annotations

import argparse
import sys

from .video import BLEND, TEMPORAL_WEIGHT, TOLERANCE, stylize_video


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Stylize a video without flicker: each frame starts from the previous stylized frame moved by the "
                     "optical flow (Ruder et al. 2016). Examples:\n"
                     "  nstedu video clip.mp4 --style starry_night -o out.mp4 --size 256 --steps 100\n"
                     "  nstedu video clip.mp4 --fast starry_night_cpu -o out.mp4 --size 640\n"
                     "  nstedu video clip.mp4 --fast starry_night_cpu --independent -o flicker.mp4   # per-frame baseline\n"
                     "  nstedu video clip.mp4 --style starry_night -o out.mp4 --resume             # after Ctrl-C\n"
                     "Needs the video extra: pip install \"nstedu[video]\".")
    p.add_argument("input", metavar="IN", help="the video to stylize (anything FFmpeg reads: .mp4, .mov, .mkv, .webm, …)")
    p.add_argument("--style", default=None, help="style image (path or sample name): optimization mode, per frame")
    p.add_argument("--fast", default=None, metavar="MODEL", help="a fast-style model file or shipped name: fast mode")
    p.add_argument("-o", "--output", default="out.mp4", help="output video, .mp4, .mov, .mkv or .webm (default out.mp4)")
    p.add_argument("--size", "-s", type=int, default=None, metavar="PX",
                   help="longest side of the frames (default: the source's with --fast, 256 on CPU / 512 on CUDA otherwise)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--independent", action="store_true", help="stylize every frame on its own (flickers; for comparison)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last finished frame")
    p.add_argument("--steps", "-n", type=int, default=100, metavar="N", help="optimization: loss evaluations per frame (default 100)")
    p.add_argument("--style-weight", type=float, default=1e3, metavar="β", help="optimization: style loss weight (default 1000)")
    p.add_argument("--content-weight", type=float, default=1.0, metavar="α", help="optimization: content loss weight (default 1)")
    p.add_argument("--tv-weight", type=float, default=None, metavar="γ", help="optimization: total-variation weight")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="optimization: lbfgs (default) or adam")
    p.add_argument("--temporal-weight", type=float, default=None, metavar="λ",
                   help=f"optimization: weight of the temporal loss (default {TEMPORAL_WEIGHT:g}; see nstedu.video)")
    p.add_argument("--blend", type=float, default=None, metavar="B",
                   help=f"fast: share of the warped previous frame kept on reliable pixels, 0–1 (default: the model's "
                        f"own, else {BLEND:g}; starry_night_cpu: 0.65, starry_night: 0.8)")
    p.add_argument("--hold", action=argparse.BooleanOptionalAction, default=None,
                   help="fast: keep the output of pixels whose input has not changed instead of blending them "
                        "(default: as the model's file asks; starry_night_cpu: on)")
    p.add_argument("--detail", action=argparse.BooleanOptionalAction, default=None,
                   help="fast: give the blended strokes their detail back (nstedu.video_blend; default: as the "
                        "model's file asks, on unless it says otherwise)")
    p.add_argument("--video-model", action=argparse.BooleanOptionalAction, default=None,
                   help="fast: use the shipped model's video-tuned version (MODEL_video, trained for stability; "
                        "default: as the model's file asks; both shipped models: on; nstedu/models/README.md)")
    p.add_argument("--cuts", default="auto", metavar="auto|none|F,F",
                   help="scene cuts: detect them (auto, the default), none, or the frames that start a new shot "
                        "(e.g. 120,233); the first frame of a shot is stylized as a first frame")
    p.add_argument("--tolerance", type=float, default=None, metavar="T",
                   help=f"optimization: frames after a shot's first stop when the loss improves by less than T "
                        f"(relative, over 10 evaluations; default {TOLERANCE:g}; 0 = always --steps)")
    p.add_argument("--flow", choices=("dis", "farneback"), default="dis", help="optical flow method (default dis)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, …")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--verbose", "-v", action="store_true", help="also list each scene cut with its scores")


def run(args) -> int:
    kwargs = dict(size=args.size, max_frames=args.max_frames, independent=args.independent, resume=args.resume,
                  progress=not args.quiet, flow_method=args.flow, device=args.device, cuts=args.cuts)
    if args.fast is not None:
        kwargs.update(fast=args.fast, blend=args.blend, tuned=args.video_model, hold=args.hold, detail=args.detail)
    else:
        kwargs.update(style=args.style, steps=args.steps, style_weight=args.style_weight, optimizer=args.optimizer,
                      content_weight=args.content_weight,
                      temporal_weight=TEMPORAL_WEIGHT if args.temporal_weight is None else args.temporal_weight,
                      tolerance=TOLERANCE if args.tolerance is None else args.tolerance)
        if args.tv_weight is not None:
            kwargs["tv_weight"] = args.tv_weight
    if (args.style is None) == (args.fast is None):
        raise ValueError("give --style IMAGE (optimization mode) or --fast MODEL (fast mode), one of the two")
    try:
        result = stylize_video(args.input, args.output, **kwargs)
    except ImportError as e:  # PyAV or OpenCV missing: say which extra to install, in one line
        raise ValueError(str(e)) from None
    for note in result.notes:
        print(note, file=sys.stderr)
    if args.verbose:
        for frame, scores in result.cuts:
            how = "given" if scores is None else (f"{scores['unreliable']:.0%} of the pixels not explained by the "
                                                  f"flow, colour histogram distance {scores['histogram']:.2f}")
            print(f"  cut before frame {frame}: {how}", file=sys.stderr)
    rate = f"{result.fps:.2f} frames/s" if result.fps >= 1 or not result.fps else f"{1 / result.fps:.1f} s per frame"
    print(f"{'saved' if result.stop_reason == 'finished' else 'interrupted; saved'} {result.output}: "
          f"{result.frames}/{result.total} frames, {result.seconds:.1f} s ({rate}, {result.mode} mode)")
    return 0 if result.stop_reason == "finished" else 130
