"""Build the course website (Jupyter Book v1) from the lessons, executed once.

    python tools/build_site.py            # FULL mode: real figures; slow on a CPU (run by hand: `make site`)
    python tools/build_site.py --quick    # quick mode (NSTEDU_QUICK=1), for CI (`make site-quick`)

Steps: execute every lesson (tools/run_notebooks.py) into ``OUT/src/notebooks``, copy the exercise notebooks (to
read; never the solutions), write ``intro.md``, ``_config.yml`` (from ``site/``) and the table of contents, copy
MathJax (from the ``sphinx-mathjax-offline`` package) so the site needs no CDN, then ``jupyter-book build``.
The HTML is in ``OUT/_build/html`` (default OUT: ``build/site`` for full mode, ``build/site-quick`` for quick mode).
Exit status 1 if a lesson raised or the book did not build.
"""
from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from run_notebooks import LESSONS, execute, table  # noqa: E402

EXERCISES = sorted((REPO / "exercises").glob("*.ipynb"))


BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]*)\)")


def _mathjax(dest: Path) -> None:
    """MathJax 3 from the sphinx-mathjax-offline package, copied verbatim to the site (``html_extra_path``: files in
    ``_static`` would all be added to every page by Jupyter Book)."""
    import importlib.util

    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise SystemExit("the site needs MathJax offline: pip install sphinx-mathjax-offline (or -e '.[site]')")
    shutil.copytree(Path(spec.origin).parent / "static" / "mathjax", dest, dirs_exist_ok=True)


def _favicon_ico(dest: Path) -> None:
    """``/favicon.ico``, the picture of ``site/favicon.svg`` drawn with PIL: a page without an icon link (the
    redirecting ``index.html``) makes the browser ask for it, and a 404 is a console error (the site test saw it
    on some runs and not on others)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    draw.rounded_rectangle((0, 0, 63, 63), radius=12, fill="#1f3b73")
    wave = [(8 + 48 * t / 40, 44 - 14 * math.sin(math.pi * 2 * t / 40)) for t in range(41)]  # the SVG's two arcs
    draw.line(wave, fill="#f2c14e", width=6, joint="curve")
    draw.ellipse((42, 12, 54, 24), fill="#f2c14e")
    dest.parent.mkdir(parents=True, exist_ok=True)
    im.save(dest, sizes=[(16, 16), (32, 32), (64, 64)])


def _offline(nb) -> None:
    """The Colab badge is an image on colab.research.google.com: keep the link, as text, so pages load nothing
    from other hosts."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = BADGE.sub(r"[Open in Colab](\1)", cell.source)


def write_book_files(src: Path, quick: bool, lessons, exercises) -> None:
    note = ("This build ran in **quick mode** (tiny images, few steps: a test build); next to each noisy figure "
            "the full-mode reference is shown." if quick else
            "The lessons ran in **full mode** on a CPU, so the figures are the real results.")
    (src / "intro.md").write_text((REPO / "site" / "intro.md").read_text().replace("{{ mode_note }}", note))
    shutil.copy(REPO / "site" / "_config.yml", src / "_config.yml")
    shutil.copy(REPO / "site" / "favicon.svg", src / "favicon.svg")
    toc = ["format: jb-book", "root: intro", "parts:", "  - caption: Lessons", "    chapters:"]
    toc += [f"      - file: notebooks/{p.stem}" for p in lessons]
    toc += ["  - caption: Exercises (to run in JupyterLab or Colab)", "    chapters:"]
    toc += [f"      - file: exercises/{p.stem}" for p in exercises]
    (src / "_toc.yml").write_text("\n".join(toc) + "\n")
    _mathjax(src / "_extra" / "mathjax")
    _favicon_ico(src / "_extra" / "favicon.ico")


def _reusable(path: Path, reuse: Path | None):
    """An executed copy of ``path`` in ``reuse`` (written by nbval, see conftest.py) that is newer than the lesson
    and has no error output, or None."""
    import nbformat

    copy = reuse / path.name if reuse else None
    if copy is None or not copy.is_file() or copy.stat().st_mtime < path.stat().st_mtime:
        return None
    nb = nbformat.read(str(copy), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    if not outputs or any(o.get("output_type") == "error" for o in outputs):
        return None
    return nb


def build(out: Path, quick: bool, lessons=LESSONS, exercises=EXERCISES, timeout: int = 1800,
          reuse: Path | None = None) -> int:
    import nbformat

    from run_notebooks import _strip_widgets

    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    (src / "exercises").mkdir(parents=True)
    rows = []
    for path in lessons:
        nb = _reusable(path, reuse) if quick else None
        if nb is not None:
            print(f"reusing {reuse / path.name} (executed by nbval)", flush=True)
            _strip_widgets(nb)
            seconds, error = 0.0, ""
        else:
            print(f"executing {path.name} ({'quick' if quick else 'full'} mode) …", flush=True)
            nb, seconds, error = execute(path, quick, timeout)
        rows.append((path.name, seconds, error))
        _offline(nb)
        nbformat.write(nb, str(src / "notebooks" / path.name))
    for path in exercises:
        nb = nbformat.read(str(path), as_version=4)
        _offline(nb)
        nbformat.write(nb, str(src / "exercises" / path.name))
    write_book_files(src, quick, lessons, exercises)
    print(table(rows, quick))
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(src), "--path-output",
                           str(out), "--all"], text=True, capture_output=True)
    print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    print(f"jupyter-book build: {time.perf_counter() - t0:.0f} s → {out / '_build' / 'html' / 'index.html'}")
    failed = [r for r in rows if r[2]]
    if failed:
        print(f"{len(failed)} lesson(s) raised: {', '.join(r[0] for r in failed)}", file=sys.stderr)
    return 1 if failed or proc.returncode != 0 else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python tools/build_site.py", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="execute in quick mode (CI)")
    p.add_argument("--out", type=Path, help="output folder (default build/site or build/site-quick)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    p.add_argument("--reuse", type=Path, help="quick mode: use lessons already executed by nbval from this folder "
                                              "(`make test-nb` writes build/executed-quick) when they are up to date")
    args = p.parse_args(argv)
    out = args.out or REPO / "build" / ("site-quick" if args.quick else "site")
    return build(out.resolve(), args.quick, timeout=args.timeout, reuse=args.reuse)


if __name__ == "__main__":
    sys.exit(main())
