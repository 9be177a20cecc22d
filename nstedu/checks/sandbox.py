"""The sealed process a submission's code runs in: bubblewrap around a Jupyter kernel, one per submission.

Every grading path (``nbgrader autograde`` with the course's config, ``python -m nstedu.checks grade``) runs a
learner's notebook and checks only in a kernel started by :class:`SandboxedKernelManager`:

* ``bwrap`` (Debian/Ubuntu package ``bubblewrap``) with the whole file system **read-only**, a private ``/tmp``,
  no network and new PID/IPC/UTS namespaces (``--unshare-all``), killed with the grader (``--die-with-parent``);
* the course folder (``NSTEDU_COURSE_ROOT``: gradebook, solutions, the other students' files) and any path in
  ``NSTEDU_SANDBOX_HIDE`` are replaced by empty folders; the submission's own folder stays visible, read-only;
* the kernel talks to the grader over Unix sockets in a private folder (ZeroMQ ``ipc``), so it needs no network,
  and no other kernel's connection file is visible;
* data the grader hands to every kernel (the capstone's reference runs on the visible inputs) lies in a folder of
  the grader's that the sandbox mounts read-only (:func:`handover_folder`);
* a memory limit (``NSTEDU_CHECK_MEMORY_GB``, default 4: the data segment, where tensors live) and, per check,
  a time limit (``NSTEDU_CHECK_TIMEOUT``, default 60 s, enforced by the grader: :mod:`nstedu.checks.session`).

Where bubblewrap cannot run, grading refuses with one line (:func:`require_sandbox`) unless
``NSTEDU_UNSAFE_NO_SANDBOX=1`` says to run the learner's code unsealed (documented as unsafe).
"""
from __future__ import annotations

import functools
import multiprocessing.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ..vgg import get_vgg
from ..weights import cache_dir
from .core import GRADING_ENV

UNSAFE_ENV = "NSTEDU_UNSAFE_NO_SANDBOX"
COURSE_ENV = "NSTEDU_COURSE_ROOT"
HIDE_ENV = "NSTEDU_SANDBOX_HIDE"
TIMEOUT_ENV = "NSTEDU_CHECK_TIMEOUT"
MEMORY_ENV = "NSTEDU_CHECK_MEMORY_GB"
THREADS_ENV = "NSTEDU_CHECK_THREADS"


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create a sandbox on this machine (the message is one line)."""


def _number(env: str, default: float) -> float:
    value = os.environ.get(env, "").strip()
    try:
        number = float(value) if value else default
    except ValueError:
        raise ValueError(f"{env}={value!r}: expected a number") from None
    if not number > 0:
        raise ValueError(f"{env}={value!r}: must be > 0")
    return number


def check_timeout() -> float:
    """Seconds one check (visible and hidden inputs) may take: ``NSTEDU_CHECK_TIMEOUT``, default 60."""
    return _number(TIMEOUT_ENV, 60.0)


def memory_limit_bytes() -> int:
    """The sandboxed kernel's data-segment limit: ``NSTEDU_CHECK_MEMORY_GB`` GiB, default 4."""
    return int(_number(MEMORY_ENV, 4.0) * 2 ** 30)


def kernel_threads() -> int | None:
    """CPU threads of each sandboxed kernel (OpenMP/MKL): ``NSTEDU_CHECK_THREADS``, default torch's own choice.
    ``autograde``/``grade --workers N`` set it to the CPU count / N: N kernels each with every core's threads
    oversubscribe the machine, and OpenMP's barriers then wait on descheduled threads."""
    return int(_number(THREADS_ENV, 1.0)) if os.environ.get(THREADS_ENV, "").strip() else None


def share_cpus(workers: int) -> int:
    """Give each of ``workers`` grading processes (and the kernels they start) its share of the CPUs: sets
    ``NSTEDU_CHECK_THREADS`` unless the user did, and returns the threads per worker."""
    if not os.environ.get(THREADS_ENV, "").strip():
        os.environ[THREADS_ENV] = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    return kernel_threads()


def use_share() -> None:
    """In a grading worker: torch's threads = :func:`kernel_threads` (the replay runs the reference in the worker)."""
    threads = kernel_threads()
    if threads:
        torch.set_num_threads(threads)


def unsafe() -> bool:
    return os.environ.get(UNSAFE_ENV, "").strip() not in ("", "0")


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """None when bubblewrap works here, else one line saying what is missing."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return ("bubblewrap is not installed (the `bwrap` command): install it (Debian/Ubuntu: apt-get install "
                "bubblewrap) — or set NSTEDU_UNSAFE_NO_SANDBOX=1 to grade without a sandbox (unsafe)")
    try:
        proc = subprocess.run([bwrap, *_isolation(), "--", sys.executable, "-c", "print('ok')"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bubblewrap cannot start a sandbox here ({e})"
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return (f"bubblewrap cannot create a sandbox here ({why}): user namespaces may be disabled "
                "(see docs/instructors.md)")
    return None


def require_sandbox() -> bool:
    """True when learner code will run sealed; raises :class:`SandboxUnavailable` (one line) when it cannot and
    ``NSTEDU_UNSAFE_NO_SANDBOX`` is not set; False (after a warning) when it is set."""
    if unsafe():
        print(f"WARNING: {UNSAFE_ENV} is set: learner code runs WITHOUT a sandbox (it can write your files and the "
              "gradebook)", file=sys.stderr)
        return False
    problem = sandbox_problem()
    if problem:
        raise SandboxUnavailable(f"refusing to run learner code unsealed: {problem}")
    return True


def _isolation() -> list[str]:
    return ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm",
            "--tmpfs", "/run", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]


def hidden_paths() -> list[str]:
    """Folders the learner's code must not see: the course folder and ``NSTEDU_SANDBOX_HIDE`` (``os.pathsep``-
    separated), those that exist."""
    paths = [os.environ.get(COURSE_ENV, "")] + os.environ.get(HIDE_ENV, "").split(os.pathsep)
    return [str(Path(p).resolve()) for p in paths if p.strip() and Path(p).is_dir()]


@functools.lru_cache(maxsize=1)
def _warm_caches() -> tuple[str, str]:
    """matplotlib's font cache and nstedu's dequantized VGG weights, made here once (the grader may write them) and
    read by every sandboxed kernel through the read-only file system: each kernel would otherwise rebuild both."""
    import matplotlib  # a dependency of nstedu, imported only when a sandbox is built
    import matplotlib.font_manager  # noqa: F401  (builds the font cache in matplotlib's config folder)

    get_vgg("caffe", "cpu")     # writes the dequantized weights to the cache (where it can)
    return matplotlib.get_configdir(), str(cache_dir())


@functools.lru_cache(maxsize=1)
def handover_folder() -> str:
    """A folder of this grading process that every sandbox it starts sees **read-only**, at the same path: data the
    grader hands to the kernels (:mod:`nstedu.checks.reference_runs`). Removed when the process ends."""
    path = tempfile.mkdtemp(prefix="nstedu-handover-")
    # removed at exit, also in a process pool's worker (which leaves with os._exit: no atexit there)
    multiprocessing.util.Finalize(None, shutil.rmtree, args=(path, True), exitpriority=0)
    return path


_LIMITER = ("import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_DATA, (n, n)); "
            "os.execv(sys.argv[2], sys.argv[2:])")


def bwrap_command(cmd: list[str], private: str, cwd: str | None) -> list[str]:
    """``cmd`` wrapped in bubblewrap: read-only system, hidden course, ``private`` writable, ``cwd`` visible
    (read-only); run under the memory limit."""
    args = [shutil.which("bwrap") or "bwrap", *_isolation()]
    for path in hidden_paths():
        args += ["--tmpfs", path]
    if cwd:
        where = str(Path(cwd).resolve())
        args += ["--ro-bind", where, where, "--chdir", where]
    args += ["--bind", private, private]      # after the folder above: it may lie inside it
    args += ["--ro-bind", handover_folder(), handover_folder()]
    home = os.path.join(private, "home")
    os.makedirs(home, exist_ok=True)
    mpl, weights = _warm_caches()
    args += ["--setenv", "HOME", home, "--setenv", "MPLCONFIGDIR", mpl, "--setenv", "NSTEDU_CACHE_DIR", weights,
             "--setenv", "IPYTHONDIR", os.path.join(home, "ipython"), "--setenv", "TMPDIR", "/tmp",
             "--setenv", GRADING_ENV, "1", "--unsetenv", "JPY_PARENT_PID"]  # its parent is bwrap: no polling
    threads = kernel_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if threads else ():
        args += ["--setenv", var, str(threads)]
    args.append("--")
    return args + [sys.executable, "-I", "-S", "-c", _LIMITER, str(memory_limit_bytes()), *cmd]


@functools.lru_cache(maxsize=1)
def kernel_manager_class():
    """``SandboxedKernelManager``: a kernel manager whose kernels run in :func:`bwrap_command`, reached over ``ipc``
    sockets in a private folder (used by :class:`nstedu.checks.classroom.SandboxedExecute` and the ``grade``
    command). Made on first use: jupyter_client is optional (the classroom and notebook extras)."""
    from jupyter_client.manager import AsyncKernelManager  # optional (classroom extras): only grading needs it

    class SandboxedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._private = tempfile.mkdtemp(prefix="nstedu-sandbox-")
            self.transport = "ipc"
            self.ip = os.path.join(self._private, "kernel")
            self.connection_file = os.path.join(self._private, "kernel.json")
            self.sealed = require_sandbox()
            if self.sealed:   # a signal would reach bwrap, not the kernel: interrupt with a message instead
                self.kernel_spec.interrupt_mode = "message"

        async def _async_pre_start_kernel(self, **kw):
            cmd, kw = await super()._async_pre_start_kernel(**kw)
            kw["env"] = {**(kw.get("env") or os.environ), GRADING_ENV: "1"}
            if self.sealed:
                cmd = bwrap_command(list(cmd), self._private, kw.get("cwd"))
            return cmd, kw

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            """Always at once (SIGKILL to the sandbox): it is thrown away, and a graceful exit of a kernel that
            imported torch spends 1.5–2.7 s tearing down its modules (per submission)."""
            await super().shutdown_kernel(now=True, restart=restart)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                shutil.rmtree(self._private, ignore_errors=True)

    return SandboxedKernelManager
