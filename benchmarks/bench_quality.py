"""Quality benchmark (issue 12): does the default result look like the painting *and* keep the photo?

For photo × painting pairs whose palettes differ strongly (held-out paintings in ``benchmarks/pairs/`` plus the
package's shipwreck, starry_night and great_wave) and each α/β ∈ {5e-3, 1e-3, 5e-4}, the defaults of
``nstedu.run_style_transfer`` are scored with :mod:`nstedu.metrics` (content distance at relu4_2, style distance
and its five per-layer errors relu1_1 … relu5_1; lower is closer). With ``--peer PATH`` the same pairs are run
through a local checkout of neural-style-pt (ProGamerGov), as its own process, with its own defaults (1000
L-BFGS iterations, random init, content weight 5, style weight 100, relu layers) and the same Caffe VGG-19
weights (written once to a temporary ``vgg19-*.pth`` in its torchvision layout); nothing of it is copied here.

Targets (issue 12): at α/β = 1e-3 relu1_1 ≤ 0.05 and relu2_1 … relu4_1 ≤ 0.10 on every pair; content distance
5e-3 < 1e-3 < 5e-4 and style distance the reverse on every pair; not dominated by the peer (worse in both
distances) on any pair, dominating it on at least half.

    python benchmarks/bench_quality.py                          # 256 px on CPU / 512 on CUDA, all pairs
    python benchmarks/bench_quality.py --peer ~/neural-style-pt # also the peer, pair by pair
    python benchmarks/bench_quality.py --sizes 256,512,1024     # size invariance (issue 12 §5)
    python benchmarks/bench_quality.py --long 10000             # a 10,000-evaluation run at 64 px (issue 12 §4)
    python benchmarks/bench_quality.py --quick                  # smoke run: 2 pairs, 64 px, 20 steps, no RESULTS.md
    python benchmarks/bench_quality.py --style-loss gram,meanstd,swd,mrf  # what is style? (issue 26, _style_losses.py)

Results are kept in ``benchmarks/quality.json`` (so the peer, ~8 min per pair at 256 px on a CPU, can run in a
separate invocation: ``--only peer``); the table goes to ``benchmarks/RESULTS.md`` and the images to
``benchmarks/quality_grid.jpg``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import write_section  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from nstedu import metrics, samples  # noqa: E402
from nstedu.images import atomic_write, load_image, resize_longest  # noqa: E402
from nstedu.env import resolve_device  # noqa: E402
from nstedu.transfer import run_style_transfer  # noqa: E402

PAIRS_DIR = HERE / "pairs"
#: photo × painting, palettes far apart: a dark seascape, a red/green interior, a bright abstract, a gouache,
#: a woodblock print, a blue church, a night terrace, Starry Night, The Great Wave.
PAIRS = [("astronaut", "shipwreck"), ("chelsea", "night_cafe"), ("coffee", "composition_viii"),
         ("rocket", "durer_lion"), ("grace_hopper", "hokusai_poppies"), ("astronaut", "church_at_auvers"),
         ("rocket", "cafe_terrace"), ("chelsea", "starry_night"), ("coffee", "great_wave")]
RATIOS = (5e-3, 1e-3, 5e-4)
RESULTS_JSON = HERE / "quality.json"
GRID = HERE / "quality_grid.jpg"
LAYER_COLUMNS = [k.replace("relu", "r") for k in metrics.STYLE_LAYERS]
TARGET_FIRST, TARGET_MID = 0.05, 0.10


def image_path(name: str) -> str:
    if os.path.isfile(name):
        return name
    """A painting in benchmarks/pairs/ or a bundled sample, as a file path."""
    p = PAIRS_DIR / f"{name}.jpg"
    return str(p if p.is_file() else samples.path(name))


def key(system: str, photo: str, painting: str, ratio: float | None, size: int) -> str:
    return f"{system}|{photo}|{painting}|{'-' if ratio is None else f'{ratio:g}'}|{size}"


def load_records(path: Path = RESULTS_JSON) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def add_record(path: Path, name: str, rec: dict) -> dict:
    """Add one result to the JSON file, re-reading it first (a peer run in another process may have written to it);
    returns all records."""
    records = load_records(path)
    records[name] = rec
    atomic_write(path, lambda f: f.write(json.dumps(records, indent=1, sort_keys=True)), text=True)
    return records


def record(q: metrics.Quality, seconds: float, image: str | None) -> dict:
    return {"content": q.content, "style": q.style, "layers": dict(q.layers), "seconds": seconds, "image": image}


# --------------------------------------------------------------------------------------------- our runs
def run_ours(photo: str, painting: str, ratio: float, size: int, steps: int | None, device: str, vgg, out_dir: Path):
    kw = {"steps": steps} if steps else {}
    t = time.perf_counter()
    r = run_style_transfer(photo, image_path(painting), size=size, style_weight=1.0 / ratio, progress=False,
                           device=device, **kw)
    seconds = time.perf_counter() - t
    q = metrics.measure(r.image, samples.path(photo), image_path(painting), vgg)
    path = out_dir / f"nstedu_{photo}_{Path(painting).stem}_{ratio:g}_{size}.png"
    r.image.save(path)
    return record(q, seconds, str(path)), r


# -------------------------------------------------------------------------------------------- the peer
def peer_weights(directory: Path) -> Path:
    """The Caffe VGG-19 of nstedu in torchvision's layout (``features.N.weight``), named so that the peer's
    model selector recognises a VGG-19 (its file name must contain 'vgg' and '19')."""
    from nstedu.vgg import LAYER_NAMES, load_caffe_state_dict

    path = directory / "vgg19-caffe-nstedu.pth"
    if not path.is_file():
        sd = {}
        for k, v in load_caffe_state_dict().items():
            name, kind = k.split(".")
            sd[f"features.{LAYER_NAMES.index(name)}.{kind}"] = v.contiguous()
        torch.save(sd, path)
    return path


def run_peer(peer: Path, photo: str, painting: str, size: int, device, weights: Path, vgg, out_dir: Path,
             iterations: int | None = None):
    """neural-style-pt with its defaults (``-seed 0`` for repeatability; intermediate saves off), scored alike."""
    script = peer / "neural_style.py"
    if not script.is_file():
        raise SystemExit(f"--peer '{peer}': no neural_style.py there (expected a neural-style-pt checkout)")
    out = (out_dir / f"peer_{photo}_{Path(painting).stem}_{size}.png").resolve()  # the peer runs in its own folder
    gpu = ["-gpu", "0", "-backend", "cudnn"] if device.type == "cuda" else ["-gpu", "c", "-backend", "nn"]
    cmd = [sys.executable, str(script), "-content_image", str(samples.path(photo)), "-style_image", image_path(painting),
           "-image_size", str(size), *gpu, "-disable_check", "-model_file", str(weights), "-output_image", str(out),
           "-save_iter", "0", "-print_iter", "0", "-seed", "0"]
    if iterations:
        cmd += ["-num_iterations", str(iterations)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=peer, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode != 0 or not out.is_file():
        raise SystemExit(f"peer failed on {photo} × {painting}:\n{proc.stderr[-2000:]}")
    q = metrics.measure(out, samples.path(photo), image_path(painting), vgg)
    return record(q, seconds, str(out))


# ---------------------------------------------------------------------------------------------- report
def verdicts(records: dict, pairs, size: int) -> list[str]:
    """Lines saying which targets hold, pair by pair, and on how many pairs each was measured."""
    lines, first_bad, order_bad = [], [], []
    dominated, dominating, compared, first_n, order_n = [], 0, 0, 0, 0
    for photo, painting in pairs:
        rows = {ratio: records.get(key("nstedu", photo, painting, ratio, size)) for ratio in RATIOS}
        mid = rows[1e-3]
        if mid is None:
            continue
        first_n += 1
        if mid["layers"]["relu1_1"] > TARGET_FIRST or any(mid["layers"][k] > TARGET_MID for k in metrics.STYLE_LAYERS[1:4]):
            first_bad.append(f"{photo} × {painting}")
        if all(v is not None for v in rows.values()):
            order_n += 1
            cds, sds = [rows[r]["content"] for r in RATIOS], [rows[r]["style"] for r in RATIOS]
            if not (cds[0] < cds[1] < cds[2] and sds[0] > sds[1] > sds[2]):
                order_bad.append(f"{photo} × {painting}")
        peer = records.get(key("peer", photo, painting, None, size))
        if peer is not None:
            compared += 1
            if mid["content"] > peer["content"] and mid["style"] > peer["style"]:
                dominated.append(f"{photo} × {painting}")
            dominating += mid["content"] < peer["content"] and mid["style"] < peer["style"]
    n = len(pairs)
    lines.append(f"- α/β = 1e-3: relu1_1 ≤ {TARGET_FIRST} and relu2_1…relu4_1 ≤ {TARGET_MID} ({first_n} of {n} pairs measured): "
                 + ("**met**" if not first_bad else f"NOT met on {', '.join(first_bad)}"))
    lines.append(f"- ordering 5e-3 < 1e-3 < 5e-4 in content distance and the reverse in style distance ({order_n} of {n} "
                 "pairs measured at all three ratios): " + ("**met**" if not order_bad else f"NOT met on {', '.join(order_bad)}"))
    if compared:
        ok = not dominated and 2 * dominating >= compared
        lines.append(f"- against neural-style-pt ({compared} pairs): nstedu at 1e-3 dominated on {len(dominated)}"
                     f"{' (' + ', '.join(dominated) + ')' if dominated else ''}, dominating on {dominating}: "
                     + ("**met**" if ok else "NOT met"))
    return lines


def table(records: dict, pairs, size: int) -> str:
    head = ("| pair | system | α/β | content | style | " + " | ".join(LAYER_COLUMNS) + " | seconds |\n"
            "|---|---|---|---|---|" + "---|" * len(LAYER_COLUMNS) + "---|")
    rows = [head]
    for photo, painting in pairs:
        entries = [("nstedu", r) for r in RATIOS] + [("neural-style-pt", None)]
        for system, ratio in entries:
            rec = records.get(key("nstedu" if ratio is not None else "peer", photo, painting, ratio, size))
            if rec is None:
                continue
            layers = " | ".join(f"{rec['layers'][k]:.3f}" for k in metrics.STYLE_LAYERS)
            rows.append(f"| {photo} × {painting} | {system} | {'defaults' if ratio is None else f'{ratio:g}'} | "
                        f"{rec['content']:.3f} | {rec['style']:.3f} | {layers} | {rec['seconds']:.0f} |")
    return "\n".join(rows)


def grid(records: dict, pairs, size: int, path: Path = GRID, tile: int = 128) -> Path:
    """Rows: pairs; columns: photo, painting, α/β = 5e-3, 1e-3, 5e-4 and (when run) neural-style-pt."""
    has_peer = any(key("peer", p, s, None, size) in records for p, s in pairs)
    cols = 5 + has_peer
    sheet = Image.new("RGB", (cols * tile, len(pairs) * tile), "white")
    for i, (photo, painting) in enumerate(pairs):
        cells = [samples.path(photo), image_path(painting)]
        cells += [(records.get(key("nstedu", photo, painting, r, size)) or {}).get("image") for r in RATIOS]
        if has_peer:
            cells.append((records.get(key("peer", photo, painting, None, size)) or {}).get("image"))
        for j, src in enumerate(cells):
            if src and Path(src).is_file():
                im = resize_longest(load_image(src), tile)
                sheet.paste(im, (j * tile + (tile - im.width) // 2, i * tile + (tile - im.height) // 2))
    atomic_write(path, lambda f: sheet.save(f, "JPEG", quality=85))
    return path


# ------------------------------------------------------------------------------------------ size mode
def size_invariance(pair, sizes, device, vgg, out_dir: Path, steps=(300, 100), ratio: float = 1e-3) -> tuple[list, str]:
    """Converged runs of one pair at each of ``sizes`` (increasing): one coarse-to-fine chain (``nstedu.multiscale``)
    with ``steps[0]`` evaluations at the first size and ``steps[1]`` at each larger one, every level scored with
    :mod:`nstedu.metrics`. Returns the rows (size, Quality, seconds, last-10 % loss change) and verdict lines: do
    content and style distance stay within ±15 % of their mean across the sizes?"""
    from nstedu.multiscale import stylize_multiscale

    photo, painting = pair
    rows, t0 = [], [time.perf_counter()]

    def on_level(size, r):
        seconds = time.perf_counter() - t0[0]
        h = r.history["total"]
        tail = (min(h[: max(1, int(0.9 * len(h)))]) - r.best_loss) / r.best_loss  # improvement in the last 10 %
        q = metrics.measure(r.image, samples.path(photo), image_path(painting), vgg)
        r.image.save(out_dir / f"sizes_{photo}_{Path(painting).stem}_{size}.png")
        rows.append((size, q, seconds, tail))
        print(f"{photo} × {painting} {size} px: content {q.content:.3f} style {q.style:.3f} "
              f"(layers {' '.join(f'{v:.3f}' for v in q.layers.values())}; {seconds:.0f} s, last 10 % of the "
              f"evaluations lowered the loss by {100 * tail:.2f} %)", flush=True)
        t0[0] = time.perf_counter()

    stylize_multiscale(photo, image_path(painting), sizes=sizes, steps_per_scale=[steps[0]] + [steps[1]] * (len(sizes) - 1),
                       style_weight=1.0 / ratio, progress=False, device=str(device), on_level=on_level)
    layers = list(rows[0][1].layers)
    lines = [f"{photo} × {painting}; the last 10 % of each level's evaluations lowered its loss by "
             + ", ".join(f"{100 * tail:.2f} %" for *_, tail in rows) + ".", "",
             "| size | content distance | style distance | " + " | ".join(layers) + " | seconds |",
             "|---" * (len(layers) + 4) + "|"]
    lines += [f"| {size} px | {q.content:.3f} | {q.style:.3f} | " + " | ".join(f"{v:.3f}" for v in q.layers.values())
              + f" | {seconds:.0f} |" for size, q, seconds, _ in rows]
    lines.append("")
    for what in ("content", "style"):
        vals = [getattr(q, what) for _, q, _, _ in rows]
        mean = sum(vals) / len(vals)
        dev = max(abs(v - mean) for v in vals) / mean
        lines.append(f"- {photo} × {painting}, {what} distance " + " / ".join(f"{v:.3f}" for v in vals)
                     + f" at {' / '.join(map(str, sizes))} px: ±{100 * dev:.0f} % around the mean → "
                     + ("within ±15 %" if dev <= 0.15 else "**not** within ±15 %"))
    return rows, "\n".join(lines)


def long_run(steps: int, size: int, device) -> str:
    """One long L-BFGS run with the defaults (issue 12 §4): does it spend its whole budget with finite losses?"""
    import math

    import numpy as np

    photo, painting = "chelsea", "starry_night"
    t = time.perf_counter()
    r = run_style_transfer(photo, painting, size=size, steps=steps, progress=False, device=str(device))
    h = np.array(r.history["total"])
    best = np.minimum.accumulate(h)
    rise = max(0.0, float(np.max((h[1:] - best[:-1]) / best[:-1]))) if len(h) > 1 else 0.0
    marks = [k for k in (100, 1000, 2000, 5000, 10000, 20000) if k < len(h)] + [len(h)]
    return (f"{photo} × {painting}, {size} px, L-BFGS defaults, budget {steps} evaluations: stop reason "
            f"**{r.stop_reason}** after {len(h)} evaluations ({time.perf_counter() - t:.0f} s); all losses finite: "
            f"{all(math.isfinite(v) for v in h)}; {r.message or 'no warnings'}. Loss {h[0]:.4g} at the start, best "
            + ", ".join(f"{best[k - 1]:.6g} by {k}" for k in marks)
            + f" (best at evaluation {r.best_step}); largest rise of any evaluation above the best before it: "
              f"{100 * rise:.2g} %.")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 pairs, 64 px, 20 steps; nothing written to benchmarks/")
    ap.add_argument("--size", type=int, default=None, help="longest side (default 512 on CUDA, 256 otherwise)")
    ap.add_argument("--steps", type=int, default=None, help="evaluations per run (default: the engine's default)")
    ap.add_argument("--pairs", type=int, default=None, help="use only the first N pairs")
    ap.add_argument("--peer", type=Path, default=None, help="path of a local neural-style-pt checkout")
    ap.add_argument("--peer-iterations", type=int, default=None, help="override the peer's 1000 iterations (quick runs)")
    ap.add_argument("--only", choices=("nstedu", "peer"), default=None, help="run only one system (results merge in quality.json)")
    ap.add_argument("--sizes", default=None, help="size-invariance mode: e.g. 256,512,1024 (α/β = 1e-3, multi-scale)")
    ap.add_argument("--long", type=int, default=None, metavar="STEPS",
                    help="long-run mode: one run of STEPS evaluations at --size (default 64 px) with the defaults")
    ap.add_argument("--ratios", default=None, help="comma-separated α/β values to run (default 5e-3,1e-3,5e-4)")
    ap.add_argument("--redo", action="store_true", help="run again what quality.json already holds")
    ap.add_argument("--report", action="store_true", help="run nothing: the table, grid and verdicts from quality.json")
    ap.add_argument("--style-loss", default=None, metavar="S1,S2",
                    help="style statistics mode: the pairs at α/β = 1e-3 with each style_loss, all measures")
    ap.add_argument("--calibrate-style", action="store_true", help="measure nstedu.style_stats.BALANCE and exit")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out-dir", type=Path, default=Path("outputs/bench_quality"), help="where result images go")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    vgg = metrics.get_vgg("caffe", device, "max")
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = PAIRS[: 2 if args.quick else args.pairs or len(PAIRS)]

    if args.long:
        text = long_run(args.long, args.size or 64, device)
        print(text)
        if not args.quick:
            write_section(f"bench_quality: long run ({device.type})", text)
        return

    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
        blocks = []
        for pair in pairs[: args.pairs or (1 if args.quick else 2)]:
            _, text = size_invariance(pair, sizes, device, vgg, out_dir, (20, 10) if args.quick else (300, 100))
            blocks.append(text)
        first, more = (20, 10) if args.quick else (300, 100)
        text = (f"Size invariance at α/β = 1e-3: one coarse-to-fine chain per pair, {first} evaluations at {sizes[0]} px "
                f"and {more} at each larger size (the result of each level is the start of the next), every level scored "
                "with `nstedu.metrics`.\n\n" + "\n\n".join(blocks))
        print(text)
        if not args.quick:
            write_section(f"bench_quality: sizes ({device.type})", text)
        return

    size = args.size or (64 if args.quick else 512 if device.type == "cuda" else 256)
    steps = args.steps or (20 if args.quick else None)
    if args.style_loss or args.calibrate_style:
        import _style_losses

        return _style_losses.main(args, pairs, size, steps, device, vgg, out_dir, image_path, load_records, add_record)
    json_path = out_dir / "quality.json" if args.quick else RESULTS_JSON
    records = load_records(json_path)
    weights_dir = Path(tempfile.mkdtemp(prefix="nstedu-peer-")) if args.peer else None
    ratios = [float(r) for r in args.ratios.split(",")] if args.ratios else RATIOS
    for photo, painting in ([] if args.report else pairs):
        if args.only != "peer":
            for ratio in ratios:
                if not args.redo and key("nstedu", photo, painting, ratio, size) in records:
                    continue
                rec, _ = run_ours(photo, painting, ratio, size, steps, str(device), vgg, out_dir)
                records = add_record(json_path, key("nstedu", photo, painting, ratio, size), rec)
                print(f"nstedu {photo} × {painting} α/β={ratio:g}: content {rec['content']:.3f} style {rec['style']:.3f} "
                      f"relu1_1 {rec['layers']['relu1_1']:.3f} ({rec['seconds']:.0f} s)", flush=True)
        if args.peer and args.only != "nstedu" and (args.redo or key("peer", photo, painting, None, size) not in records):
            rec = run_peer(args.peer.expanduser().resolve(), photo, painting, size, device, peer_weights(weights_dir),
                           vgg, out_dir, args.peer_iterations or (20 if args.quick else None))
            records = add_record(json_path, key("peer", photo, painting, None, size), rec)
            print(f"peer   {photo} × {painting}: content {rec['content']:.3f} style {rec['style']:.3f} "
                  f"relu1_1 {rec['layers']['relu1_1']:.3f} ({rec['seconds']:.0f} s)", flush=True)
    records = load_records(json_path)
    grid_path = grid(records, pairs, size, out_dir / "quality_grid.jpg" if args.quick else GRID)
    text = (f"{len(pairs)} photo × painting pairs at {size} px, nstedu defaults"
            f"{f' with {steps} steps' if steps else ''} at each α/β, scored with `nstedu.metrics` (relative errors, "
            "lower is closer: content at relu4_2, style = mean of relu1_1…relu5_1). neural-style-pt rows: its own "
            "defaults and the same Caffe weights. Images: `benchmarks/quality_grid.jpg` (photo, painting, 5e-3, "
            "1e-3, 5e-4, peer).\n\n" + table(records, pairs, size) + "\n\n" + "\n".join(verdicts(records, pairs, size)))
    print(text)
    print(f"grid: {grid_path}")
    if not args.quick:
        write_section(f"bench_quality ({device.type})", text)


if __name__ == "__main__":
    main()
