# nbgrader configuration of the nstedu course. `make classroom CLASS=DIR` copies it into a course folder together
# with source/<assignment>/<assignment>.ipynb (the solution notebooks); see docs/instructors.md.
import os

from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds, Execute,
                                    IgnorePattern, LimitOutput, OverwriteKernelspec, SaveAutoGrades)
from nbconvert.preprocessors import ClearMetadataPreprocessor

from nstedu.checks.classroom import GradeInGraderProcess
from nstedu.checks.hidden_tests import OverwriteCellsKeepingHiddenTests

c = get_config()  # noqa: F821  (provided by nbgrader when it reads this file)

c.CourseDirectory.course_id = "nstedu"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# The student release: stubs like those of exercises/, written answers replaced by a prompt.
c.ClearSolutions.code_stub = {"python": '# YOUR CODE HERE\nraise NotImplementedError("your code here")'}
c.ClearSolutions.text_stub = "_Your answer here._"

# Autograding. Demo cells run on tiny images (quick mode) so a class is graded in minutes; a test cell the student
# deleted is put back and run; every check cell is re-graded in this process (GradeInGraderProcess), so nothing
# done in the student's kernel can change a verdict.
os.environ.setdefault("NSTEDU_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
c.OverwriteCells.add_missing_cells = True
# nbgrader's OverwriteCells warns "checksum has changed!" on every untouched cell with hidden tests (nbgrader #1961):
# this subclass puts the hidden tests back first when the cell is exactly the released one.
c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                      OverwriteCellsKeepingHiddenTests, CheckCellMetadata]
c.Execute.timeout = 600
c.Autograde.autograde_preprocessors = [Execute, GradeInGraderProcess, IgnorePattern, ClearMetadataPreprocessor,
                                       LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
