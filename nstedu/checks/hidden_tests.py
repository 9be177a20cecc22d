"""nbgrader's hidden tests without a false "checksum has changed!" warning for every untouched submission.

``nbgrader generate_assignment`` stores each locked cell in the gradebook *with* its ``### BEGIN HIDDEN TESTS``
block and the checksum of that full source, then strips the block from the student release (nbgrader's
``ComputeChecksums`` → ``SaveCells`` → ``ClearHiddenTests`` order). At ``nbgrader autograde``, ``OverwriteCells``
compares the submitted cell, which cannot hold the hidden block, with the stored checksum: it differs for every
cell with hidden tests, so nbgrader warns "Attribute 'checksum' for cell … has changed!" on every submission, and
a real tampering warning drowns among them (jupyter/nbgrader issue #1961, open).

:class:`OverwriteCellsKeepingHiddenTests` puts the stored source back first when the submitted cell is *exactly*
the released one (the stored source with its hidden block stripped, as ``ClearHiddenTests`` strips it). Any other
change to a locked cell still gets nbgrader's warning and is overwritten as before. The course's
``nbgrader_config.py`` uses it in place of ``OverwriteCells``.
"""
from __future__ import annotations

import nbformat
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells


def released_source(source: str, clear: ClearHiddenTests) -> str:
    """``source`` as the student release shows it: the hidden-tests block removed (nbgrader's own code)."""
    cell = nbformat.v4.new_code_cell(source)
    clear._remove_hidden_test_region(cell)
    return cell.source


class OverwriteCellsKeepingHiddenTests(OverwriteCells):
    """nbgrader's ``OverwriteCells``, but an unchanged released cell with hidden tests is not reported as changed."""

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None:
            try:
                stored = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                stored = None   # nbgrader's own code below reports it
            if stored is not None and stored.locked and cell.source != stored.source:
                clear = ClearHiddenTests(parent=self)   # same configuration (delimiters) as generate_assignment's
                if cell.source == released_source(stored.source, clear):
                    cell.source = stored.source
        return super().preprocess_cell(cell, resources, cell_index)
