"""The command line, ``nstedu COMMAND …`` (also ``python -m nstedu``): every sub-command is one row of
:data:`COMMANDS` — its help line, a function that adds its arguments and a function that runs it.

The options that set a :class:`~nstedu.config.TransferConfig` field (``nstedu stylize``, ``nstedu batch``) or a
:class:`~nstedu.fast.FastConfig` field (``nstedu fast-train``) are generated from the fields themselves (name,
type, default, help), so the command line cannot drift from the Python API; :func:`options_markdown` writes the
same options as the table in README.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Callable

from . import allocator, batch, cli_video, multiscale, samples, transfer
from .arguments import count, exit_status, join_negative_values, one_line_warnings, signals_as_interrupt, started, value_flags
from .cli_options import (GROUPS, _fraction, _names, _numbers, add_config_arguments,  # noqa: F401 (re-exported)
                          config_from_args, config_options, options_markdown)
from .env import info
from .fast import FastConfig, FastStylizer, available_models, export_model, train_fast
from .images import ImageError
from .masks import Mask
from .outputs import SaveFailed, check_file_output, check_output, same_file, save_or_rescue, save_result, snapshot_saver
from .vgg import WeightsError

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


# ----------------------------------------------------------------------------------- stylize and batch
def _add_high_resolution(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("high resolution (coarse-to-fine)")
    g.add_argument("--multiscale", action="store_true",
                   help="optimize at small sizes first, each result upsampled to start the next (for --size 1000 and up)")
    g.add_argument("--levels", type=int, default=None, metavar="N",
                   help=f"number of scales, each half the next (default: down to ≥ {multiscale.MIN_SIZE} px)")
    g.add_argument("--steps-per-scale", type=_numbers(int), default=None, metavar="N1,N2",
                   help=f"evaluations per scale, coarse to fine (default: --steps split 1/{multiscale.LEVEL_RATIO} per finer level)")


def _steps_per_scale(args):
    """``--steps-per-scale`` as :func:`~nstedu.multiscale.stylize_multiscale` takes it: a number, a list or None."""
    steps = args.steps_per_scale
    return steps[0] if steps is not None and len(steps) == 1 else steps


def _add_stylize(p: argparse.ArgumentParser) -> None:
    p.description, p.epilog = "Stylize CONTENT with STYLE by optimizing the pixels (Gatys et al. 2015).", EPILOG
    p.add_argument("content", help="content photo: a path or a sample name (see `nstedu samples`)")
    p.add_argument("style", nargs="?", default=None,
                   help="style image(s): a path or sample name; several comma-separated are blended (or use --style)")
    p.add_argument("--style", dest="style_option", default=None, metavar="S1[,S2]",
                   help="the style image(s), as an option: --style a.jpg,b.jpg --style-blend 0.6,0.4")
    p.add_argument("-o", "--output", default="out.png", help="output file, .png or .jpg (default out.png)")
    p.add_argument("--save-every", type=count("--save-every"), default=0, metavar="N",
                   help="also save the current image every N steps as OUTPUT_NNNN.png (default: never)")
    add_config_arguments(p)
    _add_high_resolution(p)
    g = p.add_argument_group("mask (selective styling)")
    g.add_argument("--mask", default=None, metavar="FILE",
                   help="greyscale image, the photo's aspect ratio: white = style, black = keep the photo")
    g.add_argument("--mask-invert", action="store_true", help="style the black part instead")
    g.add_argument("--mask-feather", type=float, default=0.0, metavar="PX",
                   help="soften the mask edge with a Gaussian blur of this radius in output pixels (default 0)")
    g.add_argument("--mask-no-composite", action="store_true",
                   help="do not paste the photo back where the mask is black (lets some style bleed across the edge)")


def _run_stylize(args) -> int:
    if (args.style is None) == (args.style_option is None):
        raise ValueError("give the style image(s) once: as the second argument or with --style")
    styles = _names(args.style or args.style_option)
    if not styles:
        raise ValueError("no style image given: the style is empty (give a path or a sample name)")
    inputs = {"content image": args.content, "style image": styles, "mask": args.mask}
    out = check_output(args.output, inputs=inputs)  # before the work, not after it
    callback = snapshot_saver(out) if args.save_every else None
    mask = None if args.mask is None else Mask(args.mask, feather=args.mask_feather, invert=args.mask_invert,
                                               composite=not args.mask_no_composite)
    style = styles if len(styles) > 1 else styles[0]
    kwargs = dict(callback=callback, callback_every=args.save_every or 10, mask=mask, **config_from_args(args))
    if args.multiscale:
        if args.size is None:
            raise ValueError("--multiscale needs --size (the final longest side, e.g. --size 1920)")
        result = multiscale.stylize_multiscale(args.content, style, levels=args.levels,
                                               steps_per_scale=_steps_per_scale(args), **kwargs)
    else:
        result = transfer.run_style_transfer(args.content, style, **kwargs)
    if result.stop_reason == "non-finite" and not result.history["step"]:  # the photo back unchanged is no result
        raise ValueError(f"the loss was never finite ({result.message.split(';')[0]}): lower --content-weight, "
                         f"--style-weight or --tv-weight; nothing was written")
    finished = result.stop_reason not in ("interrupted", "stopped")
    where = save_result(result.image, out, finished)  # an interrupted run never replaces a finished output
    if where != out:
        print(f"nstedu stylize: the run was interrupted, so '{out}' (a finished result) was kept; this result is in "
              f"'{where}'", file=sys.stderr)
    losses = result.final_losses() if result.history["step"] else {}
    extra = f" ({result.message})" if result.message else ""
    print(f"saved {where}: {result.image.width}×{result.image.height}, {len(result.history['step'])} steps, "
          f"{result.seconds:.1f} s on {result.device}, {result.stop_reason}{extra}; "
          + ", ".join(f"{k} {v:.4g}" for k, v in losses.items()))
    return 130 if result.stop_reason == "interrupted" else 0


def _add_batch(p: argparse.ArgumentParser) -> None:
    p.description = ("Stylize every photo in INPUT_DIR with one setting; OUT_DIR/manifest.csv records each result.\n"
                     "Finished outputs are skipped, so an interrupted run resumes; unreadable files are skipped.")
    p.epilog = ("examples:\n  nstedu batch photos/ --style starry_night -o out/ --size 384\n"
                "  nstedu batch photos/ --style a.jpg,b.jpg -o out/                  # every photo × each style\n"
                "  nstedu batch photos/ --style a.jpg,b.jpg --style-blend 0.6,0.4 -o out/   # one blended style\n")
    p.add_argument("input_dir", metavar="INPUT_DIR", help="folder of photos (.jpg, .png, .webp, … directly inside it)")
    p.add_argument("--style", required=True, metavar="A[,B]",
                   help="style image(s): paths or sample names; several comma-separated → every photo with each style")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder (created; holds manifest.csv)")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="output image format (default png)")
    p.add_argument("--overwrite", action="store_true", help="redo every photo even if its output exists")
    add_config_arguments(p)
    _add_high_resolution(p)


def _run_batch(args) -> int:
    report = batch.run_batch(args.input_dir, _names(args.style), args.output, blend=args.style_blend is not None,
                             multiscale=args.multiscale, levels=args.levels, steps_per_scale=_steps_per_scale(args),
                             ext="." + args.format, overwrite=args.overwrite, **config_from_args(args))
    print(f"{len(report.done)} stylized, {len(report.skipped)} already done, {len(report.failed)} skipped as unreadable "
          f"in {report.seconds:.1f} s; manifest: {report.manifest}")
    return 1 if report.failed and not report.done and not report.skipped else 0


# ---------------------------------------------------------------------------------------- fast transfer
def _add_fast(p: argparse.ArgumentParser) -> None:
    p.description = ("Stylize CONTENT with a trained network in one forward pass (Johnson et al. 2016). Examples:\n"
                     "  nstedu fast photo.jpg -o out.png                  # the shipped starry_night model\n"
                     "  nstedu fast chelsea --model mine.pth --size 1024 -o cat.png\n"
                     "Train a model with `nstedu fast-train`.")
    p.add_argument("content", help="photo to stylize: a path or a sample name (see `nstedu samples`)")
    p.add_argument("--model", "-m", default="starry_night",
                   help=f"a model file or a shipped model name (default starry_night; shipped: {', '.join(available_models()) or 'none'})")
    p.add_argument("-o", "--output", default="out.png", help="output file, .png or .jpg (default out.png)")
    p.add_argument("--size", "-s", type=int, default=None, metavar="PX", help="longest side of the output (default: the photo's)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, …")


def _run_fast(args) -> int:
    check_output(args.output, inputs={"content image": args.content, "model": args.model})
    stylizer = FastStylizer.load(args.model, args.device)
    t0 = time.perf_counter()
    img = stylizer(args.content, args.size)
    save_or_rescue(img, args.output)
    print(f"saved {args.output}: {img.width}×{img.height} in {time.perf_counter() - t0:.2f} s on {stylizer.device} "
          f"(model {args.model}, style {stylizer.meta.get('style', '?')})")
    return 0


def _add_fast_train(p: argparse.ArgumentParser) -> None:
    p.description = ("Train a fast style-transfer network for STYLE (Johnson et al. 2016). Examples:\n"
                     "  # CPU, the bundled photos: the recipe of the shipped starry_night model (~16 min, 2 cores)\n"
                     "  OMP_NUM_THREADS=1 nstedu fast-train starry_night --out starry.pth --size 128 --steps 500 \\\n"
                     "        --lr 3e-3 --style-weight 20\n"
                     "  # GPU, COCO (Johnson et al.'s setting)\n"
                     "  nstedu fast-train my_style.jpg --images coco/train2014 --out mine.pth --device cuda \\\n"
                     "        --size 256 --steps 40000 --width 32\n"
                     "  nstedu fast photo.jpg --model starry.pth -o out.png\n"
                     "Re-running the same command continues from --out (use --restart to start over).")
    p.add_argument("style", help="style image: a path or a sample name (e.g. starry_night)")
    p.add_argument("--images", default=None, metavar="DIR", help="folder of training photos (default: the bundled photos)")
    p.add_argument("--out", "-o", required=True, metavar="PTH", help="checkpoint to write and resume (.pth)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint at --out")
    p.add_argument("--export", default=None, metavar="PTH", help="also write an inference-only copy here (~⅓ the size)")
    add_config_arguments(p, FastConfig)


def _run_fast_train(args) -> int:
    check_file_output(args.out, f"--out '{args.out}'", inputs={"style image": args.style})  # before training
    if args.export:
        check_file_output(args.export, f"--export '{args.export}'", inputs={"style image": args.style})
        if same_file(args.export, args.out):
            raise ValueError(f"--export '{args.export}' is the --out checkpoint: give another file name")
    r = train_fast(args.style, args.images, checkpoint=args.out, resume=not args.restart,
                   **config_from_args(args, FastConfig))
    h = r.history
    print(f"saved {r.checkpoint}: step {h['step'][-1] if h['step'] else 0}/{args.steps}, {r.stop_reason}, {r.seconds:.0f} s; "
          + (f"loss {h['total'][0]:.4g} → {h['total'][-1]:.4g}" if h["total"] else ""))
    if r.stop_reason != "finished":
        print(f"nstedu fast-train: interrupted; rerun the same command to continue from '{r.checkpoint}'", file=sys.stderr)
        return 130
    if args.export:
        export_model(args.out, args.export)
        print(f"exported {args.export}")
    return 0


# ----------------------------------------------------------------------------------------------- others
def _no_arguments(p: argparse.ArgumentParser) -> None:
    pass


def _run_samples(args) -> int:
    for s in samples.list():
        print(f"{s['name']:<14} {s['kind']:<8} {s['title']} — {s['credit']} ({s['licence']})")
    print("\nUse a name wherever a path is expected, e.g. `nstedu stylize chelsea starry_night -o cat.png`.")
    return 0


def _run_info(args) -> int:
    for k, v in {**info(), "cpu_allocator": allocator.describe()}.items():
        print(f"{k:<20} {v}")
    return 0


# -------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Command:
    """One sub-command: ``help`` (one line in ``nstedu --help``), ``add_arguments(parser)``, ``run(args) -> int``."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "stylize": Command("stylize one photo", _add_stylize, _run_stylize),
    "batch": Command("stylize every photo in a folder (resumable, with manifest.csv)", _add_batch, _run_batch),
    "fast": Command("stylize a photo in one pass with a trained network", _add_fast, _run_fast),
    "fast-train": Command("train a fast style-transfer network for one style", _add_fast_train, _run_fast_train),
    "samples": Command("list the bundled sample images", _no_arguments, _run_samples),
    "info": Command("versions, device and weights found", _no_arguments, _run_info),
    "video": Command("stylize a video clip without flicker (needs nstedu[video])", cli_video.add_arguments, cli_video.run),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nstedu", description="Neural style transfer (Gatys et al.) on a frozen VGG-19.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.value_flags = set()  # options that take a value: "--style-blend -1,2" is read as its value
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
        parser.value_flags |= value_flags(p)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else list(argv), parser.value_flags))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    started()  # from here on Ctrl-C is a KeyboardInterrupt, handled below (the best image is kept)
    with signals_as_interrupt():  # SIGTERM, SIGHUP: like Ctrl-C, exit status 128 + the signal
        return exit_status(_run(args))


def _run(args) -> int:
    """Run the parsed command: every error a user can cause is one line and an exit status (2: bad input, 1: the
    result could not be written where asked, or the system refused a file, 130: interrupted)."""
    try:
        with one_line_warnings(f"nstedu {args.command}"):
            return args.func(args)
    except SaveFailed as e:  # the work is done but could not be written where asked: it was saved elsewhere
        print(f"nstedu {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (ImageError, WeightsError, ValueError, FileNotFoundError) as e:
        print(f"nstedu {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the system refused a file during the work (disk full, read-only, name too long, …)
        where = f"'{e.filename}': " if e.filename else ""
        print(f"nstedu {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nstedu {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
