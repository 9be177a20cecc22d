"""What each exercise notebook must contain: its graded items, in order, with their points.

A ``check`` item is autograded: ``CHECKS[exercise]`` runs on the learner's function ``FUNCTION[exercise]``. A
``written`` item is a short answer an instructor grades by hand (nbgrader's formgrader). In the solution notebooks
these are nbgrader grade cells: ``check_<exercise>`` test cells and ``q_<topic>`` answer cells, with the same
points (``tests/test_exercises.py`` keeps the two in step). The grader counts every item listed here, so a deleted
cell scores 0 ("not found" / "not run"), never "100 % of what is left".
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class Item(NamedTuple):
    grade_id: str        # nbgrader grade id of the cell: check_<exercise> or q_<topic>
    kind: str            # "check" (autograded) or "written" (graded by hand)
    points: float
    exercise: str = ""   # for checks: the key of CHECKS


def _check(exercise: str, points: float) -> Item:
    return Item(f"check_{exercise}", "check", points, exercise)


def _written(topic: str, points: float) -> Item:
    return Item(f"q_{topic}", "written", points)


#: notebook file stem -> its graded items
ASSIGNMENTS: dict[str, list[Item]] = {
    "03_gram_and_style": [_check("gram_matrix", 2), _check("style_loss", 3), _written("gram_layout", 2)],
    "04_content_and_tv_losses": [_check("content_loss", 2), _check("tv_loss", 2), _written("alpha_beta", 2)],
    "05_optimization_step": [_check("optimization_step", 3), _written("lbfgs_clamp", 2)],
    "07_colour_preservation": [_check("luminance_transfer", 3)],
    "10_capstone": [_check("texture_synthesis", 3), _check("feature_inversion", 3), _check("style_transfer", 4)],
    "11_harder_track": [_check("lbfgs_step", 4), _check("masked_gram_matrix", 3), _check("match_color_histogram", 4)],
    "12_sliced_wasserstein": [_check("sliced_wasserstein", 4), _written("swd_sorting", 2)],
}


def assignment_for(path) -> str | None:
    """The assignment a notebook file belongs to, by its file name (``…/03_gram_and_style.ipynb``)."""
    stem = Path(path).stem
    return stem if stem in ASSIGNMENTS else None
