"""Stylize a whole folder of photos with one consistent setting: ``nstedu batch INPUT_DIR --style a.jpg -o OUT``.

* The VGG-19 and the style targets (Gram matrices) are computed **once** and reused for every photo (the
  targets depend on the style image and the size, not on the photo — except with colour preservation, which
  adapts the style to each photo: then only the network is reused).
* Several styles (``--style a.jpg,b.jpg``) stylize every photo with each style; with ``--style-blend 0.6,0.4``
  they are blended into one style instead.
* ``OUT/manifest.csv`` has one row per (photo, style): input, style, output, status, seconds, final losses and
  the settings (JSON). It is rewritten atomically (temporary file + rename) after every photo.
* **Resumable**: a photo counts as done when the manifest says it finished *and* its output is a readable image of
  the recorded size (only its header is read), so an interrupted or crashed run continues where it stopped and an
  empty or foreign file with the right name is redone. A file that is not a readable image is reported, recorded
  with ``status=error`` and skipped; the others go on. A setting that cannot work stops the batch before any photo.
* The output folder may not be the input folder (the outputs would be read as photos by the next run).

    from nstedu.batch import run_batch
    report = run_batch("photos/", ["starry_night"], "out/", size=256, steps=200)
"""
from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image
from tqdm.auto import tqdm

from . import objective, transfer
from .config import TransferConfig
from .env import DeviceMemoryError, default_size, resolve_device
from .images import IMAGE_EXTENSIONS, ImageError, atomic_write, image_files, save_image  # noqa: F401 (re-exported)
from .multiscale import stylize_multiscale
from .outputs import FolderLock, check_output, check_output_folder, same_file, save_or_rescue
from .samples import load_style
from .vgg import get_vgg

MANIFEST = "manifest.csv"
COLUMNS = ("input", "style", "output", "size", "status", "seconds", "loss_total", "loss_content", "loss_style", "loss_tv",
           "message", "settings")
#: Settings that do not change the result and are not compared when resuming.
_NOT_SETTINGS = ("progress", "device")


@dataclass
class BatchReport:
    """What happened: outputs written now, skipped (already done), failed (bad inputs), and the manifest path."""

    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    manifest: Optional[Path] = None
    seconds: float = 0.0


def find_images(folder) -> list[Path]:
    """Image files directly inside ``folder`` (by extension), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder '{folder}' not found (or not a folder)")
    return image_files(folder)


def style_name(style) -> str:
    """Short name of one style (file stem or sample name) or of a blend (``a+b``)."""
    if isinstance(style, (list, tuple)):
        return "+".join(style_name(s) for s in style)
    return Path(str(style)).stem


def output_names(inputs: Sequence[Path], styles: Sequence, ext: str = ".png") -> dict:
    """``{(input, style_name): output file name}``: ``photo_style.png`` (``photo_jpg_style.png`` if two inputs
    share a stem)."""
    stems = [p.stem for p in inputs]
    names = {}
    for p in inputs:
        stem = p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}"
        for s in styles:
            names[(p.name, style_name(s))] = f"{stem}_{style_name(s)}{ext}"
    return names


def settings_json(config, extra: Optional[dict] = None) -> str:
    """The settings that shape the result, as sorted JSON (compared when resuming)."""
    d = {k: v for k, v in config.to_dict().items() if k not in _NOT_SETTINGS}
    d.update(extra or {})
    return json.dumps(d, sort_keys=True)


def read_manifest(path) -> dict:
    """``{(input, style): row}`` from a manifest (empty if there is none)."""
    path = Path(path)
    if not path.exists():
        return {}
    if not path.is_file():
        raise ValueError(f"manifest '{path}': is not a file; move it away or use another output folder")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return {(r["input"], r["style"]): r for r in csv.DictReader(f)}
    except UnicodeDecodeError as e:
        raise ValueError(f"manifest '{path}': not UTF-8 text (byte {e.start}); move it away or use --overwrite") from None
    except (KeyError, csv.Error) as e:
        raise ValueError(f"manifest '{path}': not an nstedu manifest ({type(e).__name__}: {e}); move it away or "
                         f"use --overwrite") from None


def write_manifest(path, rows: dict) -> None:
    """Write all rows atomically (:func:`nstedu.images.atomic_write`)."""
    def write(f):
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows.values():
            w.writerow(row)

    atomic_write(path, write, text=True)


def _check_settings(rows: dict, keys, settings: str) -> None:
    new = json.loads(settings)
    for key in keys:
        row = rows.get(key)
        if row and row.get("status") == "ok" and row.get("settings") and row["settings"] != settings:
            old = json.loads(row["settings"])
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(f"the output folder holds results made with other settings ({', '.join(diff)}); "
                             f"use another output folder or --overwrite")


def finished(target: Path, row: Optional[dict]) -> bool:
    """True when ``row`` (the manifest's) says ``target`` finished and ``target`` is a readable image of the recorded
    size (its header only: cheap)."""
    if not row or row.get("status") != "ok" or row.get("output") != target.name:
        return False
    try:
        with Image.open(target) as img:
            size = f"{img.width}x{img.height}"
    except (OSError, ValueError, SyntaxError):  # missing, empty, truncated, not an image
        return False
    return not row.get("size") or row["size"] == size


def _style_list(styles) -> list:
    """``styles`` as a list: a string is comma-separated names (never read letter by letter)."""
    if isinstance(styles, (str, Path)):
        return [s.strip() for s in str(styles).split(",") if s.strip()]
    if not isinstance(styles, (list, tuple)):
        raise TypeError(f"styles must be a list of style images (or a comma-separated string), got {type(styles).__name__}")
    return list(styles)


def run_batch(input_dir, styles: Sequence, output_dir, config=None, *, blend: bool = False, multiscale: bool = False,
              levels: Optional[int] = None, steps_per_scale=None, ext: str = ".png", overwrite: bool = False,
              log=None, **overrides) -> BatchReport:
    """Stylize every image in ``input_dir`` with every style in ``styles`` (or with their blend if ``blend``),
    writing ``output_dir/<photo>_<style>.png`` and ``output_dir/manifest.csv``. Returns a :class:`BatchReport`.

    ``config``/``overrides``: :class:`~nstedu.config.TransferConfig` fields, the same for every photo.
    ``multiscale`` (with ``levels``, ``steps_per_scale``) uses :func:`nstedu.multiscale.stylize_multiscale`.
    Outputs that exist are skipped (resume) unless ``overwrite``. A KeyboardInterrupt stops the batch after
    recording what is finished (the photo in progress is not saved) and is re-raised."""
    cfg = replace(config or TransferConfig(), **overrides).validate()
    log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    styles = _style_list(styles)
    if not styles:
        raise ValueError("no style given (--style a.jpg[,b.jpg])")
    blend = blend or cfg.style_blend is not None
    if cfg.style_blend is not None and len(cfg.style_blend) != len(styles):
        raise ValueError(f"--style-blend has {len(cfg.style_blend)} weight(s) for {len(styles)} style image(s): give "
                         f"one weight per style")
    ext = "." + str(ext).lstrip(".")
    styles = [list(styles)] if blend and len(styles) > 1 else list(styles)
    labels = [style_name(s) for s in styles]
    if len(set(labels)) < len(labels):
        raise ValueError(f"two styles have the same name ({', '.join(labels)}): outputs are named after the style "
                         f"file, so rename one")
    inputs = find_images(input_dir)
    for s in {s for group in styles for s in (group if isinstance(group, list) else [group])}:
        load_style(s)  # a missing or unreadable style is refused once, up front, not once per photo
    if Path(output_dir).exists() and same_file(output_dir, input_dir):
        raise ValueError(f"output folder '{output_dir}' is the input folder: the outputs would be read as photos by "
                         f"the next run; give another folder (e.g. '{Path(output_dir) / 'stylized'}')")
    out = check_output_folder(output_dir)
    check_output(out / f"x{ext}", f"output format '{ext}'")  # before the work, not after the first photo
    with FolderLock(out):  # a second run on the same folder is refused (it would redo and clobber this one's work)
        return _run(inputs, styles, out, cfg, multiscale, levels, steps_per_scale, ext, overwrite, log)


def _run(inputs, styles, out: Path, cfg, multiscale, levels, steps_per_scale, ext, overwrite, log) -> BatchReport:
    manifest = out / MANIFEST
    rows = {} if overwrite else read_manifest(manifest)
    names = output_names(inputs, styles, ext)
    settings = settings_json(cfg, dict(multiscale=dict(levels=levels, steps_per_scale=steps_per_scale)) if multiscale else {})
    if not overwrite:
        _check_settings(rows, names, settings)

    device = resolve_device(cfg.device)
    size = cfg.size or default_size(device)
    cfg = replace(cfg, size=size)
    vgg = get_vgg(cfg.weights, device, cfg.pooling)  # loaded once (and cached for every photo)
    per_photo_targets = cfg.preserve_colors is not None  # the style is adapted to each photo
    cache: dict = {}

    def targets_for(style, at_size):
        key = (str(style), at_size)
        if key not in cache:
            cache[key] = objective.prepare_style_targets(style, vgg, replace(cfg, size=at_size), at_size, device)
        return cache[key]

    report = BatchReport(manifest=manifest)
    t_start = time.perf_counter()
    jobs = [(p, s) for p in inputs for s in styles]
    bar = tqdm(jobs, desc="catalog", unit="image", disable=not cfg.progress)
    photo_cfg = replace(cfg, progress=False)
    try:
        for path, style in bar:
            key = (path.name, style_name(style))
            target = out / names[key]
            bar.set_postfix_str(names[key], refresh=False)
            if not overwrite and finished(target, rows.get(key)):
                report.skipped.append(target)
                continue
            t0 = time.perf_counter()
            try:
                if multiscale:
                    result = stylize_multiscale(path, style if per_photo_targets else None, photo_cfg, levels=levels,
                                                steps_per_scale=steps_per_scale,
                                                targets_at=None if per_photo_targets else (lambda s, st=style: targets_for(st, s)))
                else:
                    result = transfer.run_style_transfer(path, style if per_photo_targets else None, photo_cfg,
                                                         style_targets=None if per_photo_targets else targets_for(style, size))
            except (ImageError, DeviceMemoryError) as e:  # a bad photo must not stop the catalog: record it, go on
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                if not isinstance(e, ImageError):
                    msg = f"{type(e).__name__}: {msg}"
                log(f"skipped {path.name}: {msg}")
                rows[key] = dict(input=path.name, style=key[1], output="", status="error", message=msg, settings=settings)
                write_manifest(manifest, rows)
                report.failed.append(path)
                continue
            if result.stop_reason in ("interrupted", "stopped"):
                raise KeyboardInterrupt  # the photo in progress is unfinished: do not save it
            save_or_rescue(result.image, target)
            losses = result.final_losses() if result.history["step"] else {}
            rows[key] = dict(input=path.name, style=key[1], output=target.name, status="ok",
                             size=f"{result.image.width}x{result.image.height}",
                             seconds=f"{time.perf_counter() - t0:.2f}", message=result.message, settings=settings,
                             **{f"loss_{k}": f"{v:.6g}" for k, v in losses.items()})
            write_manifest(manifest, rows)
            report.done.append(target)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t_start
    if not manifest.exists():
        write_manifest(manifest, rows)
    return report
