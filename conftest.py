"""pytest configuration for the whole repository.

With ``NSTEDU_SAVE_EXECUTED=DIR`` set, every notebook nbval runs is also written to ``DIR`` with the outputs nbval
collected (run it with matplotlib's inline backend to keep the figures). ``make test-nb`` does this for the lessons
so that ``make site-quick`` (``tools/build_site.py --quick --reuse DIR``) builds the website without running every
lesson a second time.
"""
import os
from pathlib import Path

_EXECUTED = {}


def pytest_runtest_teardown(item):
    target = os.environ.get("NSTEDU_SAVE_EXECUTED")
    outputs = getattr(item, "test_outputs", None)
    if not target or outputs is None or not hasattr(item, "cell") or not hasattr(item.parent, "nb"):
        return
    item.cell.outputs = list(outputs)            # the cell object belongs to the parent's notebook
    _EXECUTED[str(item.parent.fspath)] = item.parent.nb


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("NSTEDU_SAVE_EXECUTED")
    if not target or not _EXECUTED:
        return
    import nbformat

    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    for path, nb in _EXECUTED.items():
        nbformat.write(nb, str(out / Path(path).name))
