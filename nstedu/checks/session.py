"""Grade one submission in its sandboxed kernel: the learner's definitions are loaded there, every check runs on a
recorder there, and the verdict is reached here, in the grader's process, by replaying the record.

Two sides, one module:

* kernel side (runs in the sandbox, :mod:`nstedu.checks.sandbox`): :func:`kernel_prepare` loads the notebook's
  *definitions* into a fresh namespace (:func:`nstedu.checks.isolate.definitions_from_cells`) and starts a
  :class:`~nstedu.checks.reference_use.ReferenceWatch` (and takes the capstone's visible engine runs the grader
  handed in: :mod:`nstedu.checks.reference_runs`); :func:`kernel_item` runs one check on a recorder of the
  learner's function (visible and hidden inputs) and prints the record as one tagged JSON line;
* grader side: :func:`grade_items` sends those two calls as cells through an ``nbclient`` client whose kernel is
  sandboxed, one check at a time under the time limit (an endless loop costs one time-out: the kernel is
  replaced by a fresh one with the definitions reloaded), and turns each record into a :class:`CheckResult` with
  :func:`nstedu.checks.record.verify` plus the static look for nstedu's own implementation.
"""
from __future__ import annotations

import json
import math
import sys
import time

from .core import CheckResult, hidden_seed
from .definitions import definitions_from_cells, safe_definitions
from .kernel_optim import without_compiler_import
from .record import dumps, record_runs, verify
from .reference_runs import hand_in as hand_in_references, take as take_references
from .reference_use import ReferenceWatch, static_reference_use
from .registry import CHECKS, FUNCTION
from .sandbox import check_timeout, handover_folder, memory_limit_bytes

_CHECKS = dict(CHECKS)     # taken before any learner definition loads in this process (a class body could edit CHECKS)
RECORD_TAG = "NSTEDU-RECORD "
TIMED_OUT = "took longer than"     # how a time-out's hint starts
_STATE: dict = {}


# ----------------------------------------------------------------------------------------- kernel side
#: the exercises whose checks step a torch.optim optimizer (torch.optim imports torch._dynamo on the first step,
#: unless patched: kernel_prepare)
OPTIMIZER_EXERCISES = frozenset({"optimization_step", "lbfgs_step", "texture_synthesis", "feature_inversion",
                                 "style_transfer"})


def kernel_prepare(sources_json: str, optimizers: bool = False, references: str | None = None) -> None:
    """In the sandboxed kernel: the learner's definitions in a fresh namespace, and the reference watch.

    With ``optimizers``, torch.optim is patched not to import torch._dynamo on an optimizer's first step
    (:mod:`nstedu.checks.kernel_optim`: 3–4 s of CPU per kernel, which also counted against the first such check's
    time limit: the capstone's timed out on a slow CI machine). ``references``: the file of the capstone's runs on the
    visible inputs that the grader hands in (:mod:`nstedu.checks.reference_runs`), read before any learner code."""
    if optimizers:
        without_compiler_import()
    if references:
        take_references(references)
    _STATE["watch"] = ReferenceWatch()     # before the definitions load: it lists nstedu's own code objects
    _STATE["namespace"], _STATE["problems"] = definitions_from_cells(json.loads(sources_json), "your notebook")


def kernel_item(exercise: str, seeds: list) -> None:
    """In the sandboxed kernel: run ``CHECKS[exercise]`` on a recorder of the learner's function, print the record."""
    name = FUNCTION[exercise]
    fn = _STATE.get("namespace", {}).get(name)
    if not callable(fn):
        runs = [{"seed": seeds[0], "status": "not found", "hint": f"no function `{name}` in the notebook",
                 "rel_error": None, "calls": [], "reference": []}]
    else:
        runs = record_runs(exercise, fn, seeds, _STATE.get("watch"), _CHECKS[exercise])
    sys.stdout.flush()
    sys.stdout.write(RECORD_TAG + dumps({"exercise": exercise, "runs": runs}) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------- grader side
def _failed(exercise: str, hint: str, status: str = "failed") -> CheckResult:
    return CheckResult(exercise, status, 0, 0, math.nan, hint)


def _record_from(cell, exercise: str):
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
                   and o.get("name") == "stdout")
    lines = [ln for ln in text.split("\n") if ln.startswith(RECORD_TAG)]
    for line in reversed(lines):
        try:
            data = json.loads(line[len(RECORD_TAG):])
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("exercise") == exercise and isinstance(data.get("runs"), list):
            return data["runs"]
    return None


def _memory_hint(hint: str) -> str:
    if "can't allocate memory" in hint or "MemoryError" in hint or "Cannot allocate memory" in hint:
        return f"your function needed more memory than the grader allows ({memory_limit_bytes() / 2 ** 30:g} GiB)"
    return hint


def _run(client, code: str, timeout: float):
    """Execute ``code`` as a cell in the client's kernel within ``timeout`` s: ``(cell, seconds, answered)``."""
    import nbformat  # optional (the classroom extras): only grading needs it
    from nbclient.exceptions import CellTimeoutError, DeadKernelError  # optional, as nbformat

    cell = nbformat.v4.new_code_cell(code)
    saved = client.timeout, client.allow_errors
    client.timeout, client.allow_errors = max(1, int(math.ceil(timeout))), True
    start = time.monotonic()
    answered = True
    client.nb.cells.append(cell)    # nbclient stores the executed cell at its index: a temporary last cell
    try:
        client.execute_cell(cell, len(client.nb.cells) - 1, store_history=False)
    except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as e:
        answered = False
        cell.setdefault("outputs", []).append({"output_type": "error", "ename": type(e).__name__, "evalue": str(e),
                                               "traceback": []})
    finally:
        client.nb.cells.pop()
        client.timeout, client.allow_errors = saved
    return cell, time.monotonic() - start, answered


def _sync(call):
    """Run ``call()`` (which may return an awaitable, as an AsyncKernelManager's methods do) to completion."""
    from jupyter_core.utils import ensure_async, run_sync  # optional, as nbformat

    async def go():
        return await ensure_async(call())

    return run_sync(go)()


def _revive(client, prepare: str) -> bool:
    """After a time-out (or a crash): a new sandboxed kernel with the definitions loaded again. (An interrupt is not
    enough: a learner's loop may catch KeyboardInterrupt.)"""
    try:   # a new kernel (and client): the old one is shut down with its sandbox
        _sync(lambda: client.km.shutdown_kernel(now=True))
        client.kc.stop_channels()
        client.km, client.kc = client.create_kernel_manager(), None
        client.start_new_kernel()
        client.start_new_kernel_client()
    except Exception as e:
        client.log.error("the sandboxed kernel could not be restarted: %r", e)
        return False
    _, _, ok = _run(client, prepare, 300)
    return ok


def definitions_source(sources) -> str:
    """The definitions a grader would run, of all code cells, as one source (for the static look)."""
    return "\n\n".join(code for code in (safe_definitions(s, f"cell {k + 1}")[0] for k, s in enumerate(sources))
                       if code.strip())


def grade_items(client, sources: list[str], exercises, timeout: float | None = None) -> dict:
    """Grade ``exercises`` of a notebook whose code cells are ``sources`` in ``client``'s (sandboxed) kernel:
    ``{exercise: CheckResult}``. Each check gets ``timeout`` s (default :func:`sandbox.check_timeout`)."""
    limit = check_timeout() if timeout is None else timeout
    seeds = [0, hidden_seed()]
    static = definitions_source(sources)
    optimizers = bool(OPTIMIZER_EXERCISES.intersection(exercises))
    try:      # data, in a folder the sandbox reads only; a speed-up: without it the kernel computes the runs itself
        references = hand_in_references(handover_folder(), exercises)
    except (OSError, RuntimeError) as e:
        client.log.warning("the capstone's reference runs were not handed to the kernel: %r", e)
        references = None
    prepare = ("from nstedu.checks.session import kernel_prepare as _nstedu_prepare\n"
               f"_nstedu_prepare({json.dumps(json.dumps(list(sources)))}, {optimizers}, {references!r})")
    _, _, ready = _run(client, prepare, max(120, limit))
    results = {}
    for exercise in exercises:
        if not ready:
            results[exercise] = _failed(exercise, "the grader's kernel stopped answering before this check")
            continue
        used = static_reference_use(static, FUNCTION[exercise])
        cell, seconds, answered = _run(client, f"from nstedu.checks.session import kernel_item as _nstedu_item\n"
                                               f"_nstedu_item({exercise!r}, {seeds!r})", limit)
        runs = _record_from(cell, exercise)
        if used:
            results[exercise] = _failed(exercise, f"`{used.split(' ')[0]}` is nstedu's own implementation "
                                                  f"({used.split('(', 1)[-1].rstrip(')')}): the reference this exercise "
                                                  "is compared with earns no credit — write it with torch operations")
        elif runs is None:
            errors = [f"{o.get('ename')}: {o.get('evalue')}"[:300] for o in cell.get("outputs", [])
                      if o.get("output_type") == "error"]
            if seconds >= limit - 0.5:
                why = f"{TIMED_OUT} {limit:g} s (the time limit per check): an endless loop, or far too much work?"
            elif answered and errors:
                why = f"the check could not run with your notebook's definitions ({errors[-1]})"
            else:
                why = "the check did not report: the kernel died (too much memory?)"
            results[exercise] = _failed(exercise, why)
            ready = _revive(client, prepare)
        elif runs and runs[0].get("status") == "not found":
            results[exercise] = _failed(exercise, str(runs[0].get("hint")), "not found")
        else:
            result = verify(exercise, runs, seeds)
            results[exercise] = CheckResult(result.exercise, result.status, result.passed, result.total,
                                            result.rel_error, _memory_hint(result.hint))
    return results


def timed_out(results: dict) -> list[str]:
    """The exercises whose check ran over the time limit (the notebook is then not run for feedback: one time-out
    is all an endless loop may cost)."""
    return [k for k, r in results.items() if r.hint.startswith(TIMED_OUT)]


NOT_RUN = ("[grader] the notebook was not run for feedback: the check of `{}` ran over the time limit (an endless "
           "loop would hang every cell that calls it)")


def exercises_in(nb) -> list[str]:
    """The exercises of a notebook's nbgrader check cells (``check_<exercise>``), in order."""
    found = []
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if cell.cell_type == "code" and grade_id.startswith("check_") and grade_id[6:] in CHECKS:
            found.append(grade_id[6:])
    return found
