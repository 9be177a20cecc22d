"""Which check grades which exercise: :data:`CHECKS` (exercise name → its check) and :data:`FUNCTION` (exercise
name → the learner's function the check is given). Grading, nbgrader's hidden tests and the classroom preprocessor
all read these two tables."""
from __future__ import annotations

from .capstone import check_feature_inversion, check_style_transfer, check_texture_synthesis
from .colour import check_luminance_transfer
from .content_tv import check_content_loss, check_tv_loss
from .gram_style import check_gram_matrix, check_style_loss
from .harder import check_lbfgs_step, check_masked_gram_matrix, check_match_color_histogram
from .optimization import check_optimization_step
from .style_stats import check_sliced_wasserstein

#: exercise name -> its check. The function a check is given has the exercise's name, except the capstone's three
#: tasks, which all check the learner's ``style_transfer`` (see ``FUNCTION``).
CHECKS = {"gram_matrix": check_gram_matrix, "content_loss": check_content_loss, "style_loss": check_style_loss,
          "tv_loss": check_tv_loss, "optimization_step": check_optimization_step,
          "luminance_transfer": check_luminance_transfer,
          "texture_synthesis": check_texture_synthesis, "feature_inversion": check_feature_inversion,
          "style_transfer": check_style_transfer,
          "lbfgs_step": check_lbfgs_step, "masked_gram_matrix": check_masked_gram_matrix,
          "match_color_histogram": check_match_color_histogram, "sliced_wasserstein": check_sliced_wasserstein}

#: exercise name -> the name of the learner's function it checks
FUNCTION = {name: name for name in CHECKS} | {"texture_synthesis": "style_transfer",
                                             "feature_inversion": "style_transfer",
                                             "sliced_wasserstein": "sliced_wasserstein_loss"}
