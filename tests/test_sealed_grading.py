"""The sealed grader's parts, without a sandbox: a record made where the learner's code runs is replayed through the
same check in the grader, and only what survives the replay passes (nstedu.checks.record); nstedu's own
implementation earns nothing (nstedu.checks.reference_use); class bodies do not run at definition time; the sandbox
is refused with one line where bubblewrap is missing. The kernel path end to end is in tests/test_classroom.py."""
import json
import math
from pathlib import Path

import pytest
import torch

import nstedu.losses as L
from nstedu.checks import record, sandbox
from nstedu.checks.classroom import refuse_unsealed_autograde
from nstedu.checks.isolate import definitions_from_notebook, safe_definitions
from nstedu.checks.manifest import ASSIGNMENTS
from nstedu.checks.record import record_runs, verify
from nstedu.checks.reference_use import ReferenceWatch, static_reference_use
from nstedu.checks.registry import CHECKS, FUNCTION

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1]


def _through_json(runs):
    return json.loads(record.dumps(runs))          # what comes back from the sandbox: data only


def _grade(exercise, fn, watch=None):
    return verify(exercise, _through_json(record_runs(exercise, fn, SEEDS, watch)), SEEDS)


def _solution(exercise):
    notebook = next(name for name, items in ASSIGNMENTS.items() if any(i.exercise == exercise for i in items))
    namespace, _ = definitions_from_notebook(REPO / "solutions" / f"{notebook}.ipynb")
    return namespace[FUNCTION[exercise]]


FAST = [e for e in CHECKS if e not in ("texture_synthesis", "feature_inversion", "style_transfer")]


@pytest.mark.slow  # every exercise through record and replay: make test-slow (CI); the fast tests below cover the parts
@pytest.mark.parametrize("exercise", FAST)
def test_every_solution_passes_through_record_and_replay(exercise):
    result = _grade(exercise, _solution(exercise), ReferenceWatch())
    assert result.status == "passed", result.hint


@pytest.mark.slow
@pytest.mark.parametrize("exercise", ["texture_synthesis", "feature_inversion", "style_transfer"])
def test_the_capstone_solution_passes_through_record_and_replay(exercise):
    result = _grade(exercise, _solution(exercise), ReferenceWatch())
    assert result.status == "passed", result.hint


def _gram_ok(features):
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def test_a_wrong_function_fails_with_the_sandbox_hint():
    result = _grade("gram_matrix", lambda f: _gram_ok(f) * f.shape[1])
    assert result.status == "failed" and "too large (= C)" in result.hint


def test_a_forged_pass_fails_in_the_replay():
    runs = _through_json(record_runs("gram_matrix", lambda f: _gram_ok(f) * 2, SEEDS))
    assert runs[0]["status"] == "failed"
    forged = [dict(runs[0], seed=s, status="passed", hint="") for s in SEEDS]      # the sandbox lies
    result = verify("gram_matrix", forged, SEEDS)
    assert result.status == "failed" and "could not confirm" in result.hint


def test_outputs_made_on_other_inputs_fail_in_the_replay(monkeypatch):
    """A learner process that tampered with the inputs (here: every random feature doubled) reports a pass on
    them; the grader's own inputs give other Gram matrices."""
    real_randn = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *a, **k: real_randn(*a, **k) * 2)
    runs = _through_json(record_runs("gram_matrix", _gram_ok, SEEDS))
    monkeypatch.setattr(torch, "randn", real_randn)
    assert [r["status"] for r in runs] == ["passed", "passed"]
    assert verify("gram_matrix", runs, SEEDS).status == "failed"


def test_gradients_are_replayed_too():
    """Right values, but the gradient reaches the target: the replay sees the recorded gradients and fails it,
    even when the sandbox's own verdict was forged to "passed"."""
    k = L.DEFAULT_CONTENT_LAYERS[0]

    def not_detached(features, targets):
        return 0.5 * (features[k] - targets[k]).pow(2).sum()

    runs = _through_json(record_runs("content_loss", not_detached, SEEDS))
    assert runs[0]["status"] == "failed" and "flows into the target" in runs[0]["hint"]
    forged = [dict(runs[0], seed=s, status="passed", hint="") for s in SEEDS]
    assert verify("content_loss", forged, SEEDS).status == "failed"


def test_a_missing_hidden_run_is_not_a_pass():
    runs = _through_json(record_runs("gram_matrix", _gram_ok, SEEDS))
    result = verify("gram_matrix", runs[:1], SEEDS)
    assert result.status == "failed" and "complete record" in result.hint


def test_not_implemented_stays_not_implemented():
    def stub(features):
        raise NotImplementedError("your code here")

    result = _grade("gram_matrix", stub)
    assert (result.status, result.hint) == ("not implemented", "your code here")


# ------------------------------------------------------------------------------------------ the reference
@pytest.mark.parametrize("fn, name", [
    (lambda f: L.gram_matrix(f), "nstedu.losses.gram_matrix"),
    (lambda f: getattr(L, "gram_" + "matrix")(f), "nstedu.losses.gram_matrix"),
    (lambda f: list(map(L.gram_matrix, [f]))[0], "nstedu.losses.gram_matrix"),
])
def test_calling_nstedu_at_run_time_earns_nothing(fn, name):
    result = _grade("gram_matrix", fn, ReferenceWatch())
    assert result.status == "failed" and "nstedu's own implementation" in result.hint and name in result.hint


def test_a_callable_the_check_hands_in_is_not_the_reference():
    """Exercise 05's objective is defined in nstedu.checks: calling it is the exercise, not the reference."""
    assert _grade("optimization_step", _solution("optimization_step"), ReferenceWatch()).status == "passed"


CHEAT = '''
import nstedu
import nstedu.losses as L
from nstedu.losses import tv_loss as T, size_scale, DEFAULT_CONTENT_LAYERS
from nstedu.checks.capstone import reference_run as style_transfer

def gram_matrix(f):
    return L.gram_matrix(f)

def tv_loss(x):
    return helper(x)

def helper(x):
    return T(x)

def content_loss(features, targets):
    return features[DEFAULT_CONTENT_LAYERS[0]].sum() * size_scale(3, 4) * len(L.DEFAULT_STYLE_LAYERS)

def style_loss(features, targets, w=None):
    return getattr(L, "style_loss")(features, targets, w)

def optimization_step(x, objective, optimizer):
    return nstedu.run_style_transfer(x)

def luminance_transfer(s, c):
    raise NotImplementedError

from nstedu.losses import luminance_transfer
'''


@pytest.mark.parametrize("graded, found", [
    ("gram_matrix", "nstedu.losses.gram_matrix"), ("tv_loss", "nstedu.losses.tv_loss"),   # via a helper
    ("style_loss", "(nstedu.losses)"), ("optimization_step", "nstedu.transfer.run_style_transfer"),
    ("style_transfer", "nstedu.checks.capstone.reference_run"), ("content_loss", None),  # constants + size_scale
])
def test_the_static_look_follows_aliases_and_helpers(graded, found):
    hit = static_reference_use(safe_definitions(CHEAT)[0], graded)
    assert (hit is None) if found is None else (found in hit)


def test_class_bodies_do_not_run_at_definition():
    source = ("class Patch:\n    from nstedu.checks import registry\n    for k in list(registry.CHECKS):\n"
              "        registry.CHECKS[k] = None\n\nclass Fine:\n    '''doc'''\n    size = 3\n    def f(self):\n"
              "        return 1\n")
    code, dropped = safe_definitions(source)
    assert "Patch" not in code and "class Fine" in code and len(dropped) == 1


# ------------------------------------------------------------------------------------------------ sandbox
def test_no_bubblewrap_is_one_line_and_refuses(monkeypatch):
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox.sandbox_problem.cache_clear()
    try:
        problem = sandbox.sandbox_problem()
        assert "bubblewrap" in problem and "\n" not in problem
        with pytest.raises(sandbox.SandboxUnavailable):
            sandbox.require_sandbox()
        with pytest.raises(SystemExit) as e:
            refuse_unsealed_autograde(["nbgrader", "autograde", "03_gram_and_style"])
        assert str(e.value).startswith("nbgrader autograde: refusing") and "apt-get install bubblewrap" in str(e.value)
        refuse_unsealed_autograde(["nbgrader", "export"])          # other commands need no sandbox
        monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
        assert sandbox.require_sandbox() is False                  # the documented, unsafe opt-out
    finally:
        sandbox.sandbox_problem.cache_clear()


def test_the_sandbox_command_hides_the_course_and_limits_memory(tmp_path, monkeypatch):
    course = tmp_path / "course"
    (course / "submitted" / "bob").mkdir(parents=True)
    monkeypatch.setenv(sandbox.COURSE_ENV, str(course))
    monkeypatch.setenv(sandbox.MEMORY_ENV, "2")
    cmd = sandbox.bwrap_command(["python", "-m", "ipykernel_launcher"], str(tmp_path / "private"),
                                str(course / "submitted" / "bob"))
    text = " ".join(cmd)
    assert "--ro-bind / /" in text and "--unshare-all" in text and "--cap-drop ALL" in text
    assert f"--tmpfs {course.resolve()}" in text                                  # gradebook, others: hidden
    assert cmd.index("--tmpfs", cmd.index(str(course.resolve())) - 1) < cmd.index("--ro-bind", 2)
    assert str(2 * 2 ** 30) in cmd and cmd[-3:] == ["python", "-m", "ipykernel_launcher"]


def test_workers_share_the_cores_and_their_kernels_get_that_share(tmp_path, monkeypatch):
    """N grading workers on C cores: each sandboxed kernel gets C // N OpenMP/MKL threads (oversubscribed OpenMP
    barriers wait on descheduled threads); a user's NSTEDU_CHECK_THREADS wins; unset, torch chooses."""
    monkeypatch.delenv(sandbox.THREADS_ENV, raising=False)
    monkeypatch.setattr(sandbox.os, "cpu_count", lambda: 8)
    cmd = sandbox.bwrap_command(["python"], str(tmp_path / "private"), None)
    assert "OMP_NUM_THREADS" not in cmd and sandbox.kernel_threads() is None
    assert sandbox.share_cpus(3) == 2 and sandbox.os.environ[sandbox.THREADS_ENV] == "2"
    cmd = sandbox.bwrap_command(["python"], str(tmp_path / "private"), None)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert cmd[cmd.index(var) - 1:cmd.index(var) + 2] == ["--setenv", var, "2"]
    assert cmd.index("OMP_NUM_THREADS") < cmd.index("--") < cmd.index("python")
    monkeypatch.setenv(sandbox.THREADS_ENV, "5")
    assert sandbox.share_cpus(3) == 5
    monkeypatch.setenv(sandbox.THREADS_ENV, "0")
    with pytest.raises(ValueError, match="NSTEDU_CHECK_THREADS"):
        sandbox.kernel_threads()


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_limits_are_checked(monkeypatch, value):
    monkeypatch.setenv(sandbox.TIMEOUT_ENV, value)
    with pytest.raises(ValueError, match=sandbox.TIMEOUT_ENV):
        sandbox.check_timeout()


def test_default_limits(monkeypatch):
    monkeypatch.delenv(sandbox.TIMEOUT_ENV, raising=False)
    monkeypatch.delenv(sandbox.MEMORY_ENV, raising=False)
    assert sandbox.check_timeout() == 60 and sandbox.memory_limit_bytes() == 4 * 2 ** 30
    assert math.isfinite(sandbox.check_timeout())


@pytest.mark.slow
@pytest.mark.skipif(not sandbox.shutil.which("bwrap"), reason="bubblewrap is not installed")
def test_a_huge_or_endless_function_fails_its_item_and_grading_goes_on(tmp_path, monkeypatch):
    """`python -m nstedu.checks grade`'s path: one sandboxed kernel; a 16 GB allocation fails its item with the
    memory limit named, an endless loop fails its item at the time limit, and the next item is still graded."""
    import nbformat

    from nstedu.checks.grading import grade_notebook

    monkeypatch.setenv(sandbox.MEMORY_ENV, "1")
    monkeypatch.setenv(sandbox.TIMEOUT_ENV, "10")
    def notebook(name, source):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source)]
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
        items = grade_notebook(tmp_path / f"{name}.ipynb", execute=False)["items"]
        return {r["exercise"]: r for r in items if r["kind"] == "check"}

    items = notebook("04_content_and_tv_losses", "import torch\n\ndef content_loss(features, targets):\n"
                     "    return torch.zeros(4 * 10 ** 9).sum()\n\ndef tv_loss(image):\n"
                     "    dy = image[..., 1:, :] - image[..., :-1, :]\n    dx = image[..., :, 1:] - image[..., :, :-1]\n"
                     "    return dy.pow(2).mean() + dx.pow(2).mean()\n")
    assert items["content_loss"]["status"] == "failed"
    assert "more memory than the grader allows (1 GiB)" in items["content_loss"]["hint"]
    assert items["tv_loss"]["status"] in ("passed", "failed") and "memory" not in items["tv_loss"]["hint"]
    items = notebook("03_gram_and_style", "def gram_matrix(features):\n    while True:\n        pass\n\n"
                     "def style_loss(features, target_grams, layer_weights=None):\n    raise NotImplementedError('later')\n")
    assert items["gram_matrix"]["status"] == "failed" and items["gram_matrix"]["hint"].startswith("took longer than 10 s")
    assert (items["style_loss"]["status"], items["style_loss"]["hint"]) == ("not implemented", "later")   # after it




@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
def test_the_preparation_spares_the_kernel_the_compilers_import():
    """torch.optim imports torch._dynamo on an optimizer's first step (3–4 s of CPU; the capstone's first check timed
    out on a slow CI machine): kernel_prepare patches torch.optim where a check steps an optimizer, and a learner's
    Adam, SGD and L-BFGS then step without it (a fresh process: nothing imported the compiler before)."""
    import subprocess
    import sys

    from nstedu.checks.session import OPTIMIZER_EXERCISES

    code = ("import json, sys, torch\nfrom nstedu.checks.session import kernel_prepare\n"
            "src = json.dumps(['def f(x):\\n    return x'])\nkernel_prepare(src, True)\n"
            "x = torch.ones(3, requires_grad=True)\n"
            "for opt in (torch.optim.Adam([x], lr=0.1), torch.optim.SGD([x], lr=0.1), torch.optim.LBFGS([x], max_iter=2)):\n"
            "    def closure():\n        opt.zero_grad(); loss = (x * x).sum(); loss.backward(); return loss\n"
            "    opt.step(closure); opt.load_state_dict(opt.state_dict())\n"
            "print('torch._dynamo' in sys.modules, torch.is_grad_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
    assert OPTIMIZER_EXERCISES <= set(CHECKS)


def test_a_learners_torch_optim_step_in_the_patched_kernel_is_not_nsteds_implementation(monkeypatch, capsys):
    """The patched step (a function of nstedu.checks.kernel_optim) runs below the learner's optimization_step: the
    reference detector must not count it as nstedu's implementation (it did: the correct submission scored 0)."""
    from nstedu.checks import kernel_optim, session

    undo = []
    monkeypatch.setattr(session, "without_compiler_import", lambda: undo.append(kernel_optim.without_compiler_import()))
    source = ("import torch\n\ndef optimization_step(x, objective, optimizer):\n    optimizer.zero_grad()\n"
              "    loss = objective(x)\n    loss.backward()\n    optimizer.step()\n    with torch.no_grad():\n"
              "        x.clamp_(0, 1)\n    return loss.item()\n")
    try:
        session.kernel_prepare(json.dumps([source]), True)
        assert torch.optim.Adam.step.__code__.co_filename == kernel_optim.__file__      # the patch is on
        capsys.readouterr()
        session.kernel_item("optimization_step", [0])
    finally:
        for u in undo:
            u()
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(session.RECORD_TAG)][-1]
    runs = json.loads(line[len(session.RECORD_TAG):])["runs"]
    assert [r["reference"] for r in runs] == [[]] and runs[0]["status"] == "passed", runs


def _steps(make, n=4):
    """Parameters and optimizer state after ``n`` steps of ``make([x])`` on a small least-squares problem."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=g), torch.randn(6, generator=g)
    x = torch.zeros(4, requires_grad=True)
    opt = make([x])

    def closure():
        opt.zero_grad()
        loss = ((a @ x - b) ** 2).sum()
        loss.backward()
        return loss

    grad_modes = []
    for _ in range(n):
        opt.step(closure)
        grad_modes.append(torch.is_grad_enabled())
    state = [v.clone() for s in opt.state_dict()["state"].values() for v in s.values() if torch.is_tensor(v)]
    return x.detach().clone(), state, grad_modes


@pytest.mark.parametrize("make", [lambda p: torch.optim.Adam(p, lr=0.05), lambda p: torch.optim.AdamW(p, lr=0.05),
                                  lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), lambda p: torch.optim.RMSprop(p),
                                  lambda p: torch.optim.LBFGS(p, max_iter=3, line_search_fn="strong_wolfe")],
                         ids=["Adam", "AdamW", "SGD", "RMSprop", "LBFGS"])
def test_the_patched_optimizers_take_torchs_own_steps(make):
    from nstedu.checks.kernel_optim import DECORATED, without_compiler_import

    reference = _steps(make)
    undo = without_compiler_import()
    try:
        patched = {n: torch.optim.Optimizer.__dict__[n] for n in DECORATED}
        assert all("_dynamo" not in f.__code__.co_names for f in patched.values())   # no compiler on these paths
        assert "_dynamo" not in torch.optim.Adam.step.__code__.co_names
        got = _steps(make)
    finally:
        undo()
    assert "_dynamo" in torch.optim.Optimizer.zero_grad.__code__.co_names         # undone
    assert torch.equal(got[0], reference[0]) and len(got[1]) == len(reference[1])
    assert all(torch.equal(u, v) for u, v in zip(got[1], reference[1]))
    assert got[2] == reference[2] == [True] * 4


# ------------------------------------------------------------- what the grader hands the kernel, and its end
def test_a_forged_reference_in_the_kernel_does_not_change_the_verdict(monkeypatch):
    """The kernel's capstone memo filled with a forged engine run (what a learner could do to their own kernel):
    the kernel's run passes a wrong function, the grader's replay, with its own memo, fails it."""
    from nstedu.checks import capstone

    def wrong(vgg, photo, painting, start, alpha, beta, gamma, steps, lr):
        return start.clone(), [1.0] * steps

    monkeypatch.setattr(capstone, "_REFERENCES", {})
    for seed in SEEDS:
        photo, painting, start, args = capstone.check_inputs("texture", seed)
        capstone.remember(photo, painting, start, args, start, [1.0] * args["steps"])   # forged
    runs = _through_json(record_runs("texture_synthesis", wrong, SEEDS))
    assert [r["status"] for r in runs] == ["passed", "passed"]                 # fooled: its own run only
    calls = []

    def engine(vgg, photo, painting, start, alpha, beta, gamma, steps, lr):   # a cheap stand-in of the engine
        calls.append(1)
        return (start * 0.5 + 0.25).clamp(0, 1), [float(start.sum()) + k for k in range(steps)]

    monkeypatch.setattr(capstone, "reference_run", engine)
    monkeypatch.setattr(capstone, "_REFERENCES", {})                           # the grader's process: its own runs
    result = verify("texture_synthesis", runs, SEEDS)
    assert result.status == "failed" and "could not confirm" in result.hint and calls == [1]


def test_the_handover_folder_is_read_only_in_the_sandbox_command(tmp_path):
    cmd = sandbox.bwrap_command(["python"], str(tmp_path / "private"), None)
    folder = sandbox.handover_folder()
    at = cmd.index(folder)
    assert cmd[at - 1:at + 2] == ["--ro-bind", folder, folder] and at > cmd.index(str(tmp_path / "private"))
    assert at < cmd.index("--")


@pytest.mark.skipif(not sandbox.shutil.which("bwrap"), reason="bubblewrap is not installed")
def test_a_sealed_process_reads_the_handover_but_cannot_write_it(tmp_path):
    import subprocess
    import sys

    if sandbox.sandbox_problem():
        pytest.skip(sandbox.sandbox_problem())
    path = Path(sandbox.handover_folder()) / "probe.txt"
    path.write_text("from the grader")
    code = ("import sys\np = sys.argv[1]\nprint(open(p).read())\ntry:\n    open(p, 'w').write('forged')\n"
            "except OSError as e:\n    print('refused', e.errno)\n")
    (tmp_path / "private").mkdir()
    out = subprocess.run(sandbox.bwrap_command([sys.executable, "-I", "-S", "-c", code, str(path)],
                                               str(tmp_path / "private"), None), capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split("\n")[:2] == ["from the grader", "refused 30"], out.stderr     # EROFS
    assert path.read_text() == "from the grader"


def test_the_sandboxed_kernel_is_killed_at_once(monkeypatch):
    """A graceful exit of a kernel that imported torch spends 1.5–2.7 s tearing it down, per submission, in a
    sandbox that is thrown away anyway: the sandboxed kernel manager always shuts its kernel down at once."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    seen = []

    async def shutdown(self, now=False, restart=False):
        seen.append(now)

    monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
    monkeypatch.setattr(AsyncKernelManager, "shutdown_kernel", shutdown)
    km = sandbox.kernel_manager_class()(kernel_name="python3")
    try:
        asyncio.run(km.shutdown_kernel())
        asyncio.run(km.shutdown_kernel(now=False))
    finally:
        sandbox.shutil.rmtree(km._private, ignore_errors=True)
    assert seen == [True, True]
