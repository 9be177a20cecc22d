"""``bench_quality.py --style-loss gram,meanstd,swd,mrf`` (issue 26): the 9 pairs stylized with each style statistic
(``TransferConfig.style_loss``) at α/β = 1e-3, every run scored with *all* the measures — Gram distance (what
``gram`` optimizes), sliced Wasserstein distance of the features (what ``swd`` optimizes, along other directions),
the CIELAB colour distance to the painting (no network), content distance — and its seconds. Records go to
``benchmarks/style_losses.json``, the table to RESULTS.md, one grid per statistic to
``benchmarks/style_losses_<stat>.jpg``. ``--calibrate-style``: the measurement behind
``nstedu.style_stats.BALANCE`` (the style term at the photo, Gram's / each statistic's, median over the pairs).
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from _results import write_section
from nstedu import metrics, samples
from nstedu import style_stats as S
from nstedu.config import TransferConfig
from nstedu.images import atomic_write, load_image, pil_to_tensor, resize_longest
from nstedu.objective import Objective, prepare_style_targets
from nstedu.transfer import run_style_transfer

HERE = Path(__file__).resolve().parent
JSON = HERE / "style_losses.json"
RATIO = 1e-3


def key(stat: str, photo: str, painting: str, size: int) -> str:
    return f"{stat}|{photo}|{painting}|{RATIO:g}|{size}"


def run_one(stat, photo, painting, size, steps, device, vgg, out_dir: Path, image_path) -> dict:
    kw = {"steps": steps} if steps else {}
    t = time.perf_counter()
    r = run_style_transfer(photo, image_path(painting), size=size, style_weight=1.0 / RATIO, style_loss=stat,
                           progress=False, device=device, **kw)
    seconds = time.perf_counter() - t
    q = metrics.measure(r.image, samples.path(photo), image_path(painting), vgg, all_measures=True)
    path = out_dir / f"style_{stat}_{photo}_{Path(painting).stem}_{size}.png"
    r.image.save(path)
    return {"content": q.content, "gram": q.style, "gram_layers": dict(q.layers), "swd": q.swd,
            "swd_layers": dict(q.swd_layers), "colour": q.colour, "seconds": seconds, "image": str(path),
            "evaluations": len(r.history["step"]), "load": os.getloadavg()[0]}


def photo_row(photo, painting, size, vgg, image_path) -> dict:
    """The measures of the photo itself (the start image): how far every statistic starts from the painting."""
    p = samples.load_content(photo, size)
    q = metrics.measure(p, samples.path(photo), image_path(painting), vgg, all_measures=True)
    return {"content": q.content, "gram": q.style, "swd": q.swd, "colour": q.colour}


def table(records: dict, stats, pairs, size: int) -> str:
    rows = ["| pair | statistic | content | Gram distance | SWD | colour ΔE | seconds |", "|---|---|---|---|---|---|---|"]
    wins = {m: {s: 0 for s in stats} for m in ("gram", "swd", "colour", "content")}
    for photo, painting in pairs:
        recs = {s: records.get(key(s, photo, painting, size)) for s in stats}
        done = {s: r for s, r in recs.items() if r}
        for m in wins:
            if len(done) == len(stats):
                wins[m][min(done, key=lambda s: done[s][m])] += 1
        ph = records.get(key("photo", photo, painting, size))
        if ph:
            rows.append(f"| {photo} × {painting} | *(the photo)* | {ph['content']:.3f} | {ph['gram']:.3f} | "
                        f"{ph['swd']:.3f} | {ph['colour']:.1f} | |")
        for s, r in done.items():
            best = {m: r[m] == min(d[m] for d in done.values()) for m in ("gram", "swd", "colour")}
            cell = {m: (f"**{r[m]:.3f}**" if best[m] else f"{r[m]:.3f}") if m != "colour" else
                    (f"**{r[m]:.1f}**" if best[m] else f"{r[m]:.1f}") for m in best}
            rows.append(f"| {photo} × {painting} | `{s}` | {r['content']:.3f} | {cell['gram']} | {cell['swd']} | "
                        f"{cell['colour']} | {r['seconds']:.0f} |")
    complete = sum(all(records.get(key(s, p, q, size)) for s in stats) for p, q in pairs)
    lines = [f"Lowest per pair (bold; {complete} of {len(pairs)} pairs complete), pairs won by each statistic:"]
    names = {"gram": "Gram distance", "swd": "sliced Wasserstein distance", "colour": "colour distance",
             "content": "content distance (closest to the photo)"}
    for m, w in wins.items():
        lines.append(f"- {names[m]}: " + ", ".join(f"`{s}` {n}" for s, n in w.items()))
    means = []
    full = [(p, q) for p, q in pairs if all(records.get(key(s, p, q, size)) for s in stats)]
    for s in stats:  # over the complete pairs only, so that every statistic is summarized on the same pairs
        rs = [records[key(s, p, q, size)] for p, q in full]
        if rs:
            means.append(f"| `{s}` | {len(rs)} | " + " | ".join(f"{statistics.median(r[m] for r in rs):.3f}"
                                                            for m in ("content", "gram", "swd", "colour"))
                         + f" | {statistics.median(r['seconds'] for r in rs):.0f} |")
    summary = ["| statistic | pairs | content | Gram distance | SWD | colour ΔE | seconds |", "|---|---|---|---|---|---|---|"]
    return f"Medians over the {len(full)} complete pairs:\n\n" + "\n".join(summary + means) + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(rows)


def grids(records: dict, stats, pairs, size: int, image_path, tile: int = 128) -> list[Path]:
    """One sheet per statistic: rows = pairs; photo, painting, result."""
    out = []
    for s in stats:
        sheet = Image.new("RGB", (3 * tile, len(pairs) * tile), "white")
        for i, (photo, painting) in enumerate(pairs):
            cells = [samples.path(photo), image_path(painting), (records.get(key(s, photo, painting, size)) or {}).get("image")]
            for j, src in enumerate(cells):
                if src and Path(src).is_file():
                    im = resize_longest(load_image(src), tile)
                    sheet.paste(im, (j * tile + (tile - im.width) // 2, i * tile + (tile - im.height) // 2))
        path = HERE / f"style_losses_{s}.jpg"
        atomic_write(path, lambda f, sheet=sheet: sheet.save(f, "JPEG", quality=85))
        out.append(path)
    return out


def calibrate(pairs, size, vgg, image_path) -> str:
    """The style term of each statistic at the photo (its content start image), BALANCE = 1: Gram's / its."""
    ratios = {s: [] for s in S.STYLE_LOSSES[1:]}
    for photo, painting in pairs:
        c = pil_to_tensor(samples.load_content(photo, size))
        vals = {}
        for stat in S.STYLE_LOSSES:
            cfg = TransferConfig(size=size, style_loss=stat)
            obj = Objective(vgg, c, prepare_style_targets(image_path(painting), vgg, cfg, size, "cpu"), cfg)
            with torch.no_grad():
                vals[stat] = float(obj(c)[1]["style"]) / S.BALANCE[stat]
        for s in ratios:
            ratios[s].append(vals["gram"] / vals[s])
    return "; ".join(f"{s}: median {statistics.median(v):.2f} (range {min(v):.2f}–{max(v):.2f})" for s, v in ratios.items())


def main(args, pairs, size, steps, device, vgg, out_dir: Path, image_path, load_records, add_record) -> None:
    if args.calibrate_style:
        text = calibrate(pairs, size, vgg, image_path)
        print(text)
        return
    stats = [s.strip() for s in args.style_loss.split(",")]
    for s in stats:
        S.check_style_loss(s)
    json_path = out_dir / "style_losses.json" if args.quick else JSON
    records = load_records(json_path)
    for photo, painting in ([] if args.report else pairs):  # pair by pair: an interrupted run leaves complete rows
        if key("photo", photo, painting, size) not in records:
            records = add_record(json_path, key("photo", photo, painting, size), photo_row(photo, painting, size, vgg, image_path))
        for s in stats:
            if not args.redo and key(s, photo, painting, size) in records:
                continue
            rec = run_one(s, photo, painting, size, steps, str(device), vgg, out_dir, image_path)
            records = add_record(json_path, key(s, photo, painting, size), rec)
            print(f"{s:8s} {photo} × {painting}: content {rec['content']:.3f} gram {rec['gram']:.3f} swd {rec['swd']:.3f} "
                  f"colour {rec['colour']:.1f} ({rec['seconds']:.0f} s, load {rec['load']:.1f})", flush=True)
    records = load_records(json_path)
    loads = [r["load"] for k, r in records.items() if "load" in r and k.endswith(f"|{size}")]
    text = (f"{len(pairs)} photo × painting pairs at {size} px, α/β = {RATIO:g}, nstedu defaults"
            f"{f' with {steps} steps' if steps else ''} and `style_loss` = {', '.join(stats)}; every result scored with "
            "every measure of `nstedu.metrics` (`measure(..., all_measures=True)`): content distance (relu4_2), Gram "
            "distance (mean relative Gram error over relu1_1…relu5_1), SWD (mean relative sliced Wasserstein distance "
            "over the same layers, 4·C directions of its own), colour ΔE (sliced Wasserstein distance of the pixel "
            "colours in CIELAB). Lower is closer. Seconds were measured niced on a shared 2-core machine (1-minute load "
            + (f"{min(loads):.1f}–{max(loads):.1f} during the runs" if loads else "not recorded")
            + "): compare them only roughly; `bench_iteration.py --style-losses` measures the cost per iteration side "
            "by side. Grids: `benchmarks/style_losses_<statistic>.jpg`.\n\n" + table(records, stats, pairs, size))
    print(text)
    if not args.quick:
        grids(records, stats, pairs, size, image_path)
        write_section(f"bench_quality: style statistics ({device.type})", text)
