r"""Autograder for the course exercises (in the spirit of CS231n's ``rel_error`` checks, with diagnoses).

Each ``check_*`` runs your function and nstedu's reference on several random inputs, prints a verdict with
the largest ``rel_error = max |a - b| / (|a| + |b|)`` and, when the answer is wrong, tries the common mistakes
(a Gram matrix off by C·H·W, F^T F instead of F F^T, the wrong content layer, a target that is not detached,
total variation in one direction only, …) to give a targeted hint::

    from nstedu import checks
    checks.check_gram_matrix(gram_matrix)      # gram_matrix: PASSED — 5/5 random inputs, max rel_error 3.1e-08

A function that still raises ``NotImplementedError`` prints "not implemented yet" instead of raising, so an
exercise notebook runs top to bottom. Every check returns a :class:`CheckResult`.

Grading (:mod:`nstedu.checks.grading`): ``python -m nstedu.checks grade exercises/03_*.ipynb`` takes the
functions out of each notebook and runs every expected check *in the grader's own process* (a deleted check cell
or a printed "PASSED" changes nothing). nbgrader's hidden tests call :func:`hidden_test`, which runs the check in
a fresh Python process (:mod:`nstedu.checks.isolate`).
"""
from __future__ import annotations

from .capstone import check_capstone, check_feature_inversion, check_style_transfer, check_texture_synthesis
from .colour import LUMA_BT601, LUMA_BT709, check_luminance_transfer, luminance_closed_form, reference_luminance_transfer
from .content_tv import check_content_loss, check_tv_loss
from .core import TOL, CheckResult, content_layer, quietly, rel_error, style_layers
from .gram_style import check_gram_matrix, check_style_loss
from .harder import check_lbfgs_step, check_masked_gram_matrix, check_match_color_histogram
from .optimization import check_optimization_step
from .style_stats import check_sliced_wasserstein, reference_sliced_wasserstein

from .grading import _call_pattern, grade_notebook, main
from .isolate import hidden_test
from .registry import CHECKS, FUNCTION
from .core import leave_to_grader

# In a grader's sandboxed kernel (NSTEDU_GRADING=1) the check cells only say that the grader checks them: the
# verdict comes from the sealed checks (nstedu.checks.session), so nothing here runs twice or can be patched.
(check_gram_matrix, check_style_loss, check_content_loss, check_tv_loss, check_optimization_step,
 check_luminance_transfer, check_capstone, check_texture_synthesis, check_feature_inversion, check_style_transfer,
 check_lbfgs_step, check_masked_gram_matrix, check_match_color_histogram, check_sliced_wasserstein,
 hidden_test) = map(leave_to_grader, (
    check_gram_matrix, check_style_loss, check_content_loss, check_tv_loss, check_optimization_step,
    check_luminance_transfer, check_capstone, check_texture_synthesis, check_feature_inversion, check_style_transfer,
    check_lbfgs_step, check_masked_gram_matrix, check_match_color_histogram, check_sliced_wasserstein, hidden_test))

_CALL = _call_pattern()  # matches a check call in a notebook's source: check_<exercise>(

__all__ = ["CheckResult", "rel_error", "TOL", "CHECKS", "FUNCTION", "grade_notebook", "main", "hidden_test", "quietly",
           "content_layer", "style_layers",
           "check_gram_matrix", "check_style_loss", "check_content_loss", "check_tv_loss", "check_optimization_step",
           "check_luminance_transfer", "luminance_closed_form", "reference_luminance_transfer", "LUMA_BT601",
           "LUMA_BT709", "check_capstone", "check_texture_synthesis", "check_feature_inversion",
           "check_style_transfer", "check_lbfgs_step", "check_masked_gram_matrix", "check_match_color_histogram",
           "check_sliced_wasserstein", "reference_sliced_wasserstein"]
