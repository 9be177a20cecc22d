"""nbgrader integration: the verdict of every check cell comes from nbgrader's own process, not from the kernel.

``nbgrader autograde`` executes a submission in a kernel the student's code controls, then scores each test cell
by whether it raised. Anything in that kernel can be patched (``checks.hidden_test = lambda *a: True``), so the
course's ``nbgrader_config.py`` adds :class:`GradeInGraderProcess` right after nbgrader's ``Execute`` step: it takes
the student's *definitions* out of the notebook (:func:`nstedu.checks.isolate.definitions_from_cells`), runs each
check cell's check here, with the visible and the hidden random inputs, and rewrites the cell's outputs so that
nbgrader's ``SaveAutoGrades`` sees an error exactly when this verdict is "failed". A test cell the student deleted
is put back by nbgrader (``OverwriteCells.add_missing_cells = True``) and graded the same way.
"""
from __future__ import annotations

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from .core import hidden_seed, quietly
from .isolate import definitions_from_cells, run_guarded
from .registry import CHECKS, FUNCTION

PREFIX = "check_"


class GradeInGraderProcess(Preprocessor):
    """Re-grade every ``check_<exercise>`` grade cell of an executed notebook in this (the grader's) process."""

    enabled = Bool(True, help="nbconvert skips preprocessors that are not enabled").tag(config=True)

    def preprocess(self, nb, resources):
        namespace = None
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            grade_id = meta.get("grade_id", "")
            exercise = grade_id[len(PREFIX):] if grade_id.startswith(PREFIX) else ""
            if cell.cell_type != "code" or not meta.get("grade") or exercise not in CHECKS:
                continue
            if namespace is None:
                namespace, _ = definitions_from_cells([c.source for c in nb.cells if c.cell_type == "code"], "submission")
            fn = namespace.get(FUNCTION[exercise])
            if not callable(fn):
                status, hint = "not found", f"no function `{FUNCTION[exercise]}` in the notebook"
            else:
                result = quietly(run_guarded, exercise, fn)
                if result:
                    result = quietly(run_guarded, exercise, fn, hidden_seed())
                status, hint = result.status, result.hint
            outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "error"]
            verdict = "PASSED" if status == "passed" else f"{status.upper()}: {hint}"
            outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                                  text=f"[grader] {exercise}: {verdict}\n"))
            if status != "passed":
                outputs.append(nbformat.v4.new_output("error", ename="GraderCheckFailed", evalue=f"{exercise}: {hint}",
                                                      traceback=[f"GraderCheckFailed: {exercise} ({status}): {hint}"]))
            cell.outputs = outputs
            self.log.info("graded %s in the grader's process: %s", exercise, status)
        return nb, resources
