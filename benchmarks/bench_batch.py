"""Batch vs separate runs (issue 6): per-image time of `nstedu batch` on a catalog of 20 photos against 20
separate `nstedu stylize` processes with the same settings (target: batch ≥ 1.3× faster per image).

The batch loads Python, torch and the VGG-19 once and computes the style targets once; every separate run pays
for them again. The gain is therefore that fixed cost over the time of one optimization: the report also gives
the measured per-process overhead so the ratio can be read off for other sizes and step counts.

    python benchmarks/bench_batch.py                          # 20 photos, 128 px, 100 steps (≈ 12 min on 2 cores)
    python benchmarks/bench_batch.py --size 256 --steps 100   # larger (≈ 35 min)
    python benchmarks/bench_batch.py --quick                  # 3 photos, 40 px, 3 steps; no RESULTS.md
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import ImageOps

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import write_section  # noqa: E402

from nstedu import samples  # noqa: E402

STYLE = "starry_night"


def make_catalog(folder: Path, n: int) -> list[Path]:
    """``n`` different photos from the bundled ones: originals, mirrored, and two crops of each."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = [samples.load(name) for name in samples.names("content")]
    variants = [lambda im: im, ImageOps.mirror,
                lambda im: im.crop((0, 0, im.width * 3 // 4, im.height * 3 // 4)),
                lambda im: im.crop((im.width // 4, im.height // 4, im.width, im.height))]
    paths = []
    for i in range(n):
        img = variants[(i // len(photos)) % len(variants)](photos[i % len(photos)])
        paths.append(folder / f"photo{i:02d}.jpg")
        img.save(paths[-1], quality=92)
    return paths


def nstedu(*args) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nstedu", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run, no RESULTS.md")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.size, args.steps = 3, 40, 3
    settings = ["--size", str(args.size), "--steps", str(args.steps), "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = make_catalog(tmp / "catalog", args.images)
        # interpreter + imports + VGG-19 + style targets + one evaluation: the fixed cost of a separate run
        overhead = min(nstedu("stylize", str(photos[0]), STYLE, "-o", str(tmp / "o.png"), "--size", str(args.size),
                              "--steps", "1", "-q") for _ in range(2))
        t_batch = nstedu("batch", str(tmp / "catalog"), "--style", STYLE, "-o", str(tmp / "batch"), *settings)
        t_single = sum(nstedu("stylize", str(p), STYLE, "-o", str(tmp / "single" / f"{p.stem}.png"), *settings)
                       for p in photos)
        with open(tmp / "batch" / "manifest.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == args.images and all(r["status"] == "ok" for r in rows), rows
        per_opt = sum(float(r["seconds"]) for r in rows) / len(rows)
    n = args.images
    ratio = t_single / t_batch
    text = (f"{n} photos (bundled photos, mirrored and cropped) × {STYLE}, {args.size} px, {args.steps} L-BFGS "
            f"evaluations each, CPU.\n\n"
            f"| how | total seconds | seconds per image |\n|---|---|---|\n"
            f"| `nstedu batch` (one process; VGG-19 and style targets once) | {t_batch:.1f} | {t_batch / n:.2f} |\n"
            f"| {n} × `nstedu stylize` (one process each) | {t_single:.1f} | {t_single / n:.2f} |\n\n"
            f"Batch is **{ratio:.2f}×** faster per image — target ≥ 1.3×: {'met' if ratio >= 1.3 else 'NOT met'}. "
            f"One separate run's fixed cost (Python, torch, VGG-19 weights, style targets; a 1-step run) is "
            f"{overhead:.1f} s; one optimization in the batch takes {per_opt:.2f} s, so the expected ratio at other "
            f"settings is ≈ (t + {overhead:.1f}) / t for an optimization of t seconds.\n")
    print(text)
    if not args.quick:
        write_section("bench_batch", text)


if __name__ == "__main__":
    main()
