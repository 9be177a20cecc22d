"""nbgrader integration: each submission runs sealed in its own sandboxed kernel, and its verdicts are reached in
nbgrader's process from a record of what the learner's functions returned.

The course's ``nbgrader_config.py`` puts :class:`SandboxedExecute` where nbgrader's ``Execute`` was. For each
submission it

1. executes the notebook in a kernel started by :func:`nstedu.checks.sandbox.kernel_manager_class` (bubblewrap:
   read-only system, the course folder and gradebook hidden, no network, memory limit); the check cells there only
   say that the grader checks them (no double work, nothing to patch);
   — but first, before any cell of the learner's has run, loads the learner's *definitions* into a fresh namespace
   of that kernel and runs every check cell's check on a recorder, one check at a time under the time limit
   (:mod:`nstedu.checks.session`); if a check ran over the limit, the notebook is not run (one time-out per
   endless loop, not one per cell that calls it);
3. replays each record through the same check here and rewrites the check cell's outputs: a ``[grader] …`` line,
   and an error exactly when the verdict is not "passed", which is what nbgrader's ``SaveAutoGrades`` scores.

A check cell the student deleted is put back by nbgrader (``OverwriteCells.add_missing_cells = True``) and graded
the same way. Nothing a submission does reaches another submission, the gradebook or nbgrader's process.
"""
from __future__ import annotations

import sys

import nbformat
from nbgrader.preprocessors import Execute

from .sandbox import SandboxUnavailable, kernel_manager_class, require_sandbox
from .session import NOT_RUN, exercises_in, grade_items, timed_out


def verdict_outputs(cell, exercise: str, result) -> list:
    """The check cell's outputs with the grader's verdict: its own error outputs dropped, a ``[grader]`` line
    added, and an error when the check did not pass."""
    outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "error"]
    verdict = "PASSED" if result.status == "passed" else f"{result.status.upper()}: {result.hint}"
    outputs.append(nbformat.v4.new_output("stream", name="stdout", text=f"[grader] {exercise}: {verdict}\n"))
    if result.status != "passed":
        outputs.append(nbformat.v4.new_output("error", ename="GraderCheckFailed", evalue=f"{exercise}: {result.hint}",
                                              traceback=[f"GraderCheckFailed: {exercise} ({result.status}): "
                                                         f"{result.hint}"]))
    return outputs


class SandboxedExecute(Execute):
    """nbgrader's ``Execute`` in a sandboxed kernel, followed by the sealed checks of every check cell."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", kernel_manager_class())
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources, km=None):
        self._sources = [c.source for c in nb.cells if c.cell_type == "code"]
        self._exercises = exercises_in(nb)
        self._verdicts, self._skip, self._noted = {}, [], False
        nb, resources = super().preprocess(nb, resources, km)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            exercise = grade_id[len("check_"):]
            if cell.cell_type == "code" and grade_id.startswith("check_") and exercise in self._verdicts:
                result = self._verdicts[exercise]
                cell.outputs = verdict_outputs(cell, exercise, result)
                self.log.info("graded %s in the sandbox: %s", exercise, result.status)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        if index == 0:   # the kernel is up and no cell of the learner's has run: the sealed checks first
            self._verdicts = grade_items(self, self._sources, self._exercises)
            self._skip = timed_out(self._verdicts)
        if self._skip:       # not run: the first code cell says why
            if cell.cell_type == "code":
                note = [] if self._noted else [nbformat.v4.new_output("stream", name="stdout",
                                                                      text=NOT_RUN.format(self._skip[0]) + "\n")]
                cell.outputs, self._noted = note, True
            return cell, resources
        return super().preprocess_cell(cell, resources, index)


class GradeInGraderProcess:  # pragma: no cover - kept so that an old course config fails with a clear message
    """Removed: it loaded learner code into nbgrader's own process. Re-run ``make classroom CLASS=…``."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("nstedu.checks.classroom.GradeInGraderProcess was removed (it ran learner code in "
                           "nbgrader's process): re-run `make classroom CLASS=<course>` to refresh nbgrader_config.py")


def refuse_unsealed_autograde(argv=None) -> None:
    """Called by the course's ``nbgrader_config.py``: ``nbgrader autograde`` stops with one line when the sandbox
    cannot be had (and ``NSTEDU_UNSAFE_NO_SANDBOX`` is not set)."""
    argv = sys.argv if argv is None else argv
    if len(argv) > 1 and argv[1] == "autograde":
        try:
            require_sandbox()
        except SandboxUnavailable as e:
            raise SystemExit(f"nbgrader autograde: {e}") from None
