"""Execute course notebooks, time each one, and optionally keep the executed copies or write the references.

    python tools/run_notebooks.py                       # every lesson in FULL mode, a table of wall times
    python tools/run_notebooks.py --quick               # the same in quick mode (NSTEDU_QUICK=1)
    python tools/run_notebooks.py --write-references    # full mode; each full_mode_reference() call saves its figure
    python tools/run_notebooks.py --out build/site/src  # keep the executed notebooks (the website uses them)

``make time-notebooks`` writes the table to ``benchmarks/notebook_times.md``; ``make references`` regenerates
``nstedu/data/references/``. A notebook that raises is reported (and the run's exit status is 1); the others go on.
The kernel runs in each notebook's folder, with matplotlib's inline backend (figures become PNG outputs).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LESSONS = sorted((REPO / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "[interactive widget: open this notebook in JupyterLab or Colab to use it]"


def _strip_widgets(nb) -> None:
    """Widget views need a live kernel (and JavaScript from a CDN): keep a plain-text note instead."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET in data:
                out["data"] = {"text/plain": WIDGET_NOTE}
    nb.metadata.pop("widgets", None)


def execute(path: Path, quick: bool, timeout: int, write_references=False):
    """Run one notebook in a fresh kernel: ``(executed notebook, seconds, first error or "")``.
    ``write_references``: True (into nstedu/data/references) or a folder — full_mode_reference() saves there."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from nstedu.env import environment

    nb = nbformat.read(str(path), as_version=4)
    paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    refs = None if not write_references else "1" if write_references is True else str(Path(write_references).resolve())
    error = ""
    t0 = time.perf_counter()
    try:  # MPLBACKEND unset: the kernel's inline backend, figures as PNG outputs
        with environment(MPLBACKEND=None, PYTHONPATH=os.pathsep.join(paths), NSTEDU_QUICK="1" if quick else None,
                         NSTEDU_WRITE_REFERENCES=refs):
            NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as e:
        error = str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__
    seconds = time.perf_counter() - t0
    _strip_widgets(nb)
    return nb, seconds, error


def table(rows, quick: bool) -> str:
    import torch

    mode = "quick (NSTEDU_QUICK=1)" if quick else "full"
    lines = [f"Notebook wall times, {mode} mode — {platform.node() or 'this machine'}, {os.cpu_count()} CPUs, "
             f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}", "",
             "| notebook | minutes | result |", "|---|---:|---|"]
    for name, seconds, error in rows:
        lines.append(f"| `{name}` | {seconds / 60:.1f} | {'error: ' + error if error else 'ok'} |")
    total = sum(r[1] for r in rows)
    lines += [f"| **all** | **{total / 60:.1f}** | |", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python tools/run_notebooks.py", description=__doc__.split("\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every lesson in notebooks/)")
    p.add_argument("--quick", action="store_true", help="quick mode (NSTEDU_QUICK=1) instead of full mode")
    p.add_argument("--write-references", action="store_true",
                   help="save each full_mode_reference() figure into nstedu/data/references (full mode only)")
    p.add_argument("--references-dir", type=Path, help="with --write-references: save them here instead")
    p.add_argument("--out", type=Path, help="write the executed notebooks into this folder")
    p.add_argument("--table", type=Path, help="also write the timing table (markdown) to this file")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    args = p.parse_args(argv)
    if args.write_references and args.quick:
        p.error("--write-references needs full mode (drop --quick)")
    import nbformat

    paths = args.notebooks or LESSONS
    missing = [str(x) for x in paths if not x.is_file()]
    if missing:
        p.error(f"notebook(s) not found: {', '.join(missing)}")
    rows = []
    for path in paths:
        print(f"running {path.name} ({'quick' if args.quick else 'full'} mode) …", flush=True)
        refs = (args.references_dir or True) if args.write_references else False
        nb, seconds, error = execute(path.resolve(), args.quick, args.timeout, refs)
        rows.append((path.name, seconds, error))
        print(f"  {seconds / 60:.1f} min" + (f" — ERROR: {error}" if error else ""), flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(args.out / path.name))
    text = table(rows, args.quick)
    print(text)
    if args.table:
        sys.path.insert(0, str(REPO))
        from nstedu.images import atomic_write

        atomic_write(args.table, lambda f: f.write(text), text=True)
    return 1 if any(r[2] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
