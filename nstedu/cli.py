"""Command line: ``nstedu stylize``, ``nstedu samples``, ``nstedu info`` (also ``python -m nstedu``).

Other modules add their own sub-commands through :data:`COMMANDS` (name -> (add_arguments, run)).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .losses import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS

#: Extra sub-commands registered by other modules: name -> (help, add_arguments(parser), run(args) -> int)
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {}

EPILOG = """examples:
  nstedu stylize photo.jpg starry_night -o out.png
  nstedu stylize chelsea great_wave -o cat.png --size 384 --steps 500 --style-weight 2000
  nstedu stylize photo.jpg a.jpg,b.jpg --style-blend 0.6,0.4 -o blend.png
  nstedu stylize photo.jpg starry_night --style-strength 60% --preserve-colors luminance -o soft.png
  nstedu stylize photo.jpg starry_night --mask person.png --mask-invert --mask-feather 8 -o bg.png
  nstedu stylize photo.jpg starry_night --size 1920 --multiscale -o print.png
  nstedu batch photos/ --style starry_night,great_wave -o out/     # resumable, writes out/manifest.csv
  nstedu samples            # bundled images you can name instead of a path
"""


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_transfer_arguments(p: argparse.ArgumentParser) -> None:
    """The optimization options shared by ``stylize`` and ``batch`` (jcjohnson/neural-style's names)."""
    g = p.add_argument_group("output and size")
    g.add_argument("--size", "-s", type=int, default=None, metavar="PX",
                   help="longest side of the output in pixels (default: 512 on CUDA, 256 on CPU)")
    g.add_argument("--style-scale", type=float, default=1.0, metavar="F",
                   help="size of the style image relative to the output: <1 bigger strokes, >1 smaller (default 1.0)")
    g = p.add_argument_group("loss weights (α/β = content/style; 1e-3 balanced, 5e-3 more content, 5e-4 more style)")
    g.add_argument("--content-weight", type=float, default=1.0, metavar="α", help="content loss weight (default 1.0)")
    g.add_argument("--style-weight", type=float, default=1e3, metavar="β", help="style loss weight (default 1000)")
    g.add_argument("--tv-weight", type=float, default=None, metavar="γ",
                   help="total-variation smoothing weight; 0 disables (default: the engine's)")
    g.add_argument("--style-blend", type=_floats, default=None, metavar="W1,W2",
                   help="weights for several comma-separated style images, e.g. 0.6,0.4 (default: equal)")
    g = p.add_argument_group("network")
    g.add_argument("--content-layers", type=_names, default=list(DEFAULT_CONTENT_LAYERS), metavar="L1,L2",
                   help=f"comma-separated VGG-19 layers for the content loss (default {','.join(DEFAULT_CONTENT_LAYERS)})")
    g.add_argument("--style-layers", type=_names, default=list(DEFAULT_STYLE_LAYERS), metavar="L1,L2",
                   help=f"comma-separated VGG-19 layers for the style loss (default {','.join(DEFAULT_STYLE_LAYERS)})")
    g.add_argument("--pooling", choices=("max", "avg"), default="max", help="pooling layers of VGG-19 (default max)")
    g.add_argument("--weights", default="caffe", metavar="SRC",
                   help="VGG-19 weights: caffe (offline, default), torchvision (downloads once) or a .pth file")
    g = p.add_argument_group("optimization")
    g.add_argument("--steps", "-n", type=int, default=300, metavar="N", help="loss evaluations (default 300)")
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="lbfgs (default) or adam")
    g.add_argument("--lr", type=float, default=None,
                   help="step size (default 1.0 for lbfgs; 0.02 for adam on pixels in [0,1]; ×0.96 every 100 steps)")
    g.add_argument("--init", choices=("content", "noise", "style"), default="content", help="start image (default content)")
    g.add_argument("--seed", type=int, default=0, help="random seed for the noise init (default 0)")
    g.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    from . import control, multiscale

    control.add_arguments(p)      # --style-strength, --preserve-colors, --contrast, --sharpness
    multiscale.add_arguments(p)   # --multiscale, --levels, --steps-per-scale


def config_from_args(args) -> dict:
    cfg = dict(size=args.size, steps=args.steps, content_weight=args.content_weight, style_weight=args.style_weight,
               content_layers=tuple(args.content_layers), style_layers=tuple(args.style_layers), optimizer=args.optimizer,
               lr=args.lr, init=args.init, seed=args.seed, device=args.device, weights=args.weights, pooling=args.pooling,
               style_scale=args.style_scale, style_blend=args.style_blend, progress=not args.quiet)
    if args.tv_weight is not None:
        cfg["tv_weight"] = args.tv_weight
    from . import control

    cfg.update(control.config_from_args(args))
    return cfg


def _cmd_stylize(args) -> int:
    from .images import save_image
    from .transfer import run_style_transfer

    if (args.style is None) == (args.style_option is None):
        raise ValueError("give the style image(s) once: as the second argument or with --style")
    styles = _names(args.style or args.style_option)
    cfg = config_from_args(args)
    callback, every = None, 10
    if args.save_every:
        from pathlib import Path

        out = Path(args.output)
        every = args.save_every

        def callback(info):
            save_image(info.image, out.with_name(f"{out.stem}_{info.step:04d}{out.suffix}"))
    from . import control, multiscale

    style = styles if len(styles) > 1 else styles[0]
    kwargs = dict(callback=callback, callback_every=every, mask=control.mask_from_args(args), **cfg)
    if args.multiscale:
        result = multiscale.run_from_args(args, args.content, style, **kwargs)
    else:
        result = run_style_transfer(args.content, style, **kwargs)
    save_image(result.image, args.output)
    losses = result.final_losses() if result.history["step"] else {}
    extra = f" ({result.message})" if result.message else ""
    print(f"saved {args.output}: {result.image.width}×{result.image.height}, {len(result.history['step'])} steps, "
          f"{result.seconds:.1f} s on {result.device}, {result.stop_reason}{extra}; "
          + ", ".join(f"{k} {v:.4g}" for k, v in losses.items()))
    return 0


def _cmd_samples(args) -> int:
    from . import samples

    for s in samples.list():
        print(f"{s['name']:<14} {s['kind']:<8} {s['title']} — {s['credit']} ({s['licence']})")
    print("\nUse a name wherever a path is expected, e.g. `nstedu stylize chelsea starry_night -o cat.png`.")
    return 0


def _cmd_info(args) -> int:
    from .env import info

    for k, v in info().items():
        print(f"{k:<20} {v}")
    return 0


# ---------------------------------------------------------------------------- `nstedu video` (issue 17) ----
def _add_video_args(p: argparse.ArgumentParser) -> None:
    p.description = ("Stylize a video without flicker: each frame starts from the previous stylized frame moved by the "
                     "optical flow (Ruder et al. 2016). Examples:\n"
                     "  nstedu video clip.mp4 --style starry_night -o out.mp4 --size 256 --steps 100\n"
                     "  nstedu video clip.mp4 --fast starry_night_cpu -o out.mp4 --size 640\n"
                     "  nstedu video clip.mp4 --fast starry_night_cpu --independent -o flicker.mp4   # per-frame baseline\n"
                     "  nstedu video clip.mp4 --style starry_night -o out.mp4 --resume             # after Ctrl-C\n"
                     "Needs the video extra: pip install \"nstedu[video]\".")
    p.add_argument("input", metavar="IN", help="the video to stylize (anything FFmpeg reads: .mp4, .mov, .mkv, …)")
    p.add_argument("--style", default=None, help="style image (path or sample name): optimization mode, per frame")
    p.add_argument("--fast", default=None, metavar="MODEL", help="a fast-style model file or shipped name: fast mode")
    p.add_argument("-o", "--output", default="out.mp4", help="output video, .mp4, .mov or .mkv (default out.mp4)")
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
                   help="optimization: weight of the temporal loss (default 1e10; see nstedu.video)")
    p.add_argument("--blend", type=float, default=None, metavar="B",
                   help="fast: share of the warped previous frame kept on reliable pixels, 0–1 (default 0.5)")
    p.add_argument("--flow", choices=("dis", "farneback"), default="dis", help="optical flow method (default dis)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, …")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _cmd_video(args) -> int:
    from .video import BLEND, TEMPORAL_WEIGHT, stylize_video

    kwargs = dict(size=args.size, max_frames=args.max_frames, independent=args.independent, resume=args.resume,
                  progress=not args.quiet, flow_method=args.flow, device=args.device)
    if args.fast is not None:
        kwargs.update(fast=args.fast, blend=BLEND if args.blend is None else args.blend)
    else:
        kwargs.update(style=args.style, steps=args.steps, style_weight=args.style_weight, optimizer=args.optimizer,
                      content_weight=args.content_weight,
                      temporal_weight=TEMPORAL_WEIGHT if args.temporal_weight is None else args.temporal_weight)
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
    print(f"{'saved' if result.stop_reason == 'finished' else 'interrupted; saved'} {result.output}: "
          f"{result.frames}/{result.total} frames, {result.seconds:.1f} s ({result.fps:.2f} frames/s, {result.mode} mode)")
    return 0 if result.stop_reason == "finished" else 130


COMMANDS["video"] = ("stylize a video clip without flicker (needs nstedu[video])", _add_video_args, _cmd_video)
# ------------------------------------------------------------------------------------ end of `nstedu video` ----


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nstedu", description="Neural style transfer (Gatys et al.) on a frozen VGG-19.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("stylize", help="stylize one photo", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Stylize CONTENT with STYLE by optimizing the pixels (Gatys et al. 2015).", epilog=EPILOG)
    p.add_argument("content", help="content photo: a path or a sample name (see `nstedu samples`)")
    p.add_argument("style", nargs="?", default=None,
                   help="style image(s): a path or sample name; several comma-separated are blended (or use --style)")
    p.add_argument("--style", dest="style_option", default=None, metavar="S1[,S2]",
                   help="the style image(s), as an option: --style a.jpg,b.jpg --style-blend 0.6,0.4")
    p.add_argument("-o", "--output", default="out.png", help="output file, .png or .jpg (default out.png)")
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="also save the current image every N steps as OUTPUT_NNNN.png (default: never)")
    add_transfer_arguments(p)
    from .control import add_mask_arguments

    add_mask_arguments(p)         # --mask FILE, --mask-invert, --mask-feather PX
    p.set_defaults(func=_cmd_stylize)
    sub.add_parser("samples", help="list the bundled sample images").set_defaults(func=_cmd_samples)
    sub.add_parser("info", help="versions, device and weights found").set_defaults(func=_cmd_info)
    for name, (help_text, add_args, run) in COMMANDS.items():
        q = sub.add_parser(name, help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter)
        add_args(q)
        q.set_defaults(func=run)
    return parser


def _load_plugins() -> None:
    """Import the modules that register extra sub-commands (each is optional)."""
    import importlib

    for mod in ("nstedu.batch", "nstedu.fast", "nstedu.fast_train"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def main(argv=None) -> int:
    _load_plugins()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .images import ImageError
    from .vgg import WeightsError

    try:
        return args.func(args)
    except (ImageError, WeightsError, ValueError, FileNotFoundError) as e:
        print(f"nstedu {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nstedu {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
