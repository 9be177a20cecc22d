r"""Autograder for the course exercises (in the spirit of CS231n's ``rel_error`` checks, with diagnoses).

Each ``check_*`` runs your function and nstedu's reference on several random inputs, prints a verdict with
the largest ``rel_error = max |a - b| / (|a| + |b|)`` and, when the answer is wrong, tries the common mistakes
(a Gram matrix off by C·H·W, F^T F instead of F F^T, the wrong content layer, a target that is not detached,
total variation in one direction only, …) to give a targeted hint::

    from nstedu import checks
    checks.check_gram_matrix(gram_matrix)      # gram_matrix: PASSED — 5/5 random inputs, max rel_error 3.1e-08

A function that still raises ``NotImplementedError`` prints "not implemented yet" instead of raising, so an
exercise notebook runs top to bottom. Every check returns a :class:`CheckResult`.

Grading: ``python -m nstedu.checks grade exercises/03_*.ipynb`` executes notebooks (quick mode) and prints a
score per exercise.
"""
from __future__ import annotations

from .colour import LUMA_BT601, LUMA_BT709, check_luminance_transfer, luminance_closed_form, reference_luminance_transfer
from .content_tv import check_content_loss, check_tv_loss
from .core import GRADE_FILE_ENV, TOL, CheckResult, rel_error
from .gram_style import check_gram_matrix, check_style_loss
from .optimization import check_optimization_step

from .grading import CHECKS, _call_pattern, grade_notebook, main

_CALL = _call_pattern()  # matches a check call in a notebook's source: check_<exercise>(

__all__ = ["CheckResult", "rel_error", "TOL", "GRADE_FILE_ENV", "CHECKS", "grade_notebook", "main",
           "check_gram_matrix", "check_style_loss", "check_content_loss", "check_tv_loss", "check_optimization_step",
           "check_luminance_transfer", "luminance_closed_form", "reference_luminance_transfer", "LUMA_BT601", "LUMA_BT709"]
