"""Make an nbgrader course folder from the solution notebooks: ``python tools/classroom.py init DIR``.

DIR gets ``nbgrader_config.py`` (from ``classroom/``) and ``source/<assignment>/<assignment>.ipynb`` for every
graded exercise notebook (``nstedu.checks.manifest.ASSIGNMENTS``), copied from ``solutions/``. Then, in DIR:
``nbgrader generate_assignment 03_gram_and_style`` writes the student release; see docs/instructors.md.
Re-running ``init`` refreshes the config and the sources and keeps everything else (gradebook, submissions).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def init(course: Path, solutions: Path = REPO / "solutions", assignments=None) -> list[Path]:
    from nstedu.checks.manifest import ASSIGNMENTS

    names = list(assignments or ASSIGNMENTS)
    unknown = [n for n in names if n not in ASSIGNMENTS]
    if unknown:
        raise SystemExit(f"unknown assignment(s) {unknown}: choose from {', '.join(ASSIGNMENTS)}")
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "classroom" / "nbgrader_config.py", course / "nbgrader_config.py")
    written = []
    for name in names:
        src = solutions / f"{name}.ipynb"
        if not src.is_file():
            raise SystemExit(f"{src}: solution notebook not found")
        dest = course / "source" / name / f"{name}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
        written.append(dest)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python tools/classroom.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="create or refresh a course folder")
    i.add_argument("course", type=Path, help="the course folder (e.g. ~/nst-class)")
    i.add_argument("--assignments", nargs="+", help="only these assignments (default: all)")
    args = p.parse_args(argv)
    for path in init(args.course, assignments=args.assignments):
        print(f"wrote {path}")
    print(f"next: cd {args.course} && nbgrader generate_assignment <assignment>   (see docs/instructors.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
