"""Score fast-model candidates (e.g. tools/stability_sweep.py's snapshots) with the whole video pipeline on the CPU.

    python tools/score_candidates.py RESULTS.json MODEL.pth ... [--clips dev|heldout]

Each model runs `stylize_video` with the blend, hold and detail of the model it was fine-tuned from on the clips (the
file itself, never a tuned version it may name; --blend and --detail try others, recorded as NAME~bB~dD), and is
scored as `benchmarks/bench_video.py --real fast` scores the shipped models: the independent (Farnebaeck) warping
error and the style distance against the *original* model's independent frames. Clips: *dev* the two shipped real
clips (nstedu.clips), *heldout* benchmarks/heldout/. Results are appended to RESULTS.json as they come (a rerun skips
what is there).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import _video_real as VR  # noqa: E402
from bench_video import against  # noqa: E402
from nstedu import clips  # noqa: E402
from nstedu.fast.network import read_model_file  # noqa: E402
from nstedu.video_frames import default_blend, default_detail, default_hold  # noqa: E402


def clip_list(which: str):
    if which == "dev":
        cut_clip, cut = clips.real_clip_with_cut()
        return [("real", clips.real_clip(), []), ("real_cut", cut_clip, [cut])]
    return [(p.stem, p, []) for p in sorted(VR.HELD_OUT.glob("*.mp4"))]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("results", type=Path)
    p.add_argument("models", nargs="+")
    p.add_argument("--clips", default="dev", choices=("dev", "heldout"))
    p.add_argument("--tmp", type=Path, default=Path("/tmp/score_tmp"))
    p.add_argument("--blend", type=float, help="this blend instead of the init model's (the key gets '~bB')")
    p.add_argument("--detail", type=int, choices=(0, 1), help="keep the detail (1) or not (0) instead of the init model's")
    a = p.parse_args(argv)
    a.tmp.mkdir(parents=True, exist_ok=True)
    results = json.loads(a.results.read_text()) if a.results.exists() else {}
    tag = "".join(f"~{c}{v:g}" for c, v in (("b", a.blend), ("d", a.detail)) if v is not None)
    settings = {}                   # model -> (init model, blend, hold, detail): read once, the same on every clip
    for model in a.models:
        init = read_model_file(model)["meta"].get("sweep", {}).get("init", model)
        init_meta = read_model_file(init)["meta"]
        settings[model] = (init, default_blend(init_meta, init) if a.blend is None else a.blend,
                           default_hold(init_meta, init),
                           default_detail(init_meta, init) if a.detail is None else bool(a.detail))
    for name, clip, cuts in clip_list(a.clips):
        for model in a.models:
            init, blend, hold, detail = settings[model]
            key = f"{Path(model).stem}{tag}|{name}"
            base_key = f"{init}/independent|{name}"
            if key in results and base_key in results:
                continue
            # tuned=False: each run uses the file it names (a shipped model's file may ask for its tuned version)
            runs = [("temporal", {"fast": model, "blend": blend, "hold": hold, "detail": detail, "tuned": False})]
            if base_key not in results:
                runs.insert(0, ("independent", {"fast": init, "independent": True, "tuned": False}))
            print(f"{key} (blend {blend}, hold {hold}, detail {detail})", flush=True)
            rows = VR.compare(clip, {}, a.tmp, cuts=cuts, every=2, runs=runs)
            if "independent" in rows:
                r = rows["independent"]
                results[base_key] = dict(ind=r["ind"].mean, style=r["style"], change=r["change"], still=r["still"][0])
            base, t = results[base_key], rows["temporal"]
            cut, sd, _ = against(base["ind"], base["style"], t["ind"].mean, t["style"], 0.60)
            results[key] = dict(ind=t["ind"].mean, style=t["style"], change=t["change"], still=t["still"][0],
                                reduction=cut, style_change=sd)
            print(f"  => reduction {results[key]['reduction']:.1%}, style {results[key]['style_change']:+.1%}", flush=True)
            a.results.write_text(json.dumps(results, indent=1))

if __name__ == "__main__":
    main()
