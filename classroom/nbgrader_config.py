# nbgrader configuration of the nstedu course. `make classroom CLASS=DIR` copies it into a course folder together
# with source/<assignment>/<assignment>.ipynb (the solution notebooks); see docs/instructors.md.
import os

from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds,
                                    IgnorePattern, LimitOutput, OverwriteKernelspec, SaveAutoGrades)
from nbconvert.preprocessors import ClearMetadataPreprocessor

from nstedu.checks.classroom import SandboxedExecute, refuse_unsealed_autograde
from nstedu.checks.hidden_tests import OverwriteCellsKeepingHiddenTests

c = get_config()  # noqa: F821  (provided by nbgrader when it reads this file)

c.CourseDirectory.course_id = "nstedu"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# The student release: stubs like those of exercises/, written answers replaced by a prompt.
c.ClearSolutions.code_stub = {"python": '# YOUR CODE HERE\nraise NotImplementedError("your code here")'}
c.ClearSolutions.text_stub = "_Your answer here._"

# Autograding: every submission runs in its own kernel sealed by bubblewrap (read-only system, this course folder
# and its gradebook hidden, no network, NSTEDU_CHECK_MEMORY_GB of memory), then its check cells are re-graded by
# sealed checks whose records are replayed in nbgrader's own process (nstedu.checks.classroom.SandboxedExecute).
# Without bubblewrap `nbgrader autograde` refuses to start (NSTEDU_UNSAFE_NO_SANDBOX=1 overrides: unsafe).
os.environ.setdefault("NSTEDU_QUICK", "1")            # demo cells on tiny images: a class is graded in minutes
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("NSTEDU_CHECK_TIMEOUT", "60")    # seconds per check (visible + hidden inputs)
os.environ.setdefault("NSTEDU_CHECK_MEMORY_GB", "4")   # the sandboxed kernel's memory
os.environ["NSTEDU_COURSE_ROOT"] = c.CourseDirectory.root   # hidden from the learner's code
# os.environ.setdefault("NSTEDU_HIDDEN_SEED", "…")     # your own hidden inputs (docs/instructors.md)
refuse_unsealed_autograde()
c.OverwriteCells.add_missing_cells = True
# nbgrader's OverwriteCells warns "checksum has changed!" on every untouched cell with hidden tests (nbgrader #1961):
# this subclass puts the hidden tests back first when the cell is exactly the released one.
c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                      OverwriteCellsKeepingHiddenTests, CheckCellMetadata]
c.SandboxedExecute.timeout = 60                          # seconds per notebook cell
c.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
