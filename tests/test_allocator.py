"""The CPU allocator setting of a run (``nstedu.allocator.steady_allocator``): inside the block a freed 40 MB buffer is
reused without page faults (outside, glibc maps and unmaps it every time: ~10,000 faults per round), the memory goes
back to the kernel when the block ends; in partial mode (the estimate does not fit the available memory, or 2
megapixels) only blocks up to 32 MiB are kept; with ``NSTEDU_MALLOC=system`` nothing changes. Each case runs in a fresh interpreter (mallopt settings are per process)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nstedu.allocator import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc on Linux only (elsewhere the setting does nothing)")


def _huge_pages_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


#: With transparent huge pages always on, a mapped 40 MB block faults in 2 MB at a time: page counts mean nothing.
counts_pages = pytest.mark.skipif(_huge_pages_always(), reason="transparent huge pages are always on here")

ROOT = Path(__file__).resolve().parents[1]
PAGES = 40_000_000 // 4096  # pages of one 40 MB buffer: above glibc's largest mmap threshold (32 MiB)

SCRIPT = """
import json, resource, sys, torch
from nstedu.allocator import steady_allocator, available_memory_gb

def faults(rounds=4, floats=10_000_000):  # minor page faults per round of: allocate 40 MB, write it, free it
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        t = torch.ones(floats)
        del t
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6

need = float(sys.argv[1]) * available_memory_gb() if len(sys.argv) > 1 and sys.argv[1] != "-" else None
pixels = int(sys.argv[2]) if len(sys.argv) > 2 else None
out = {"outside": faults()}
with steady_allocator("cpu", need, pixels):
    faults(4)  # the first rounds grow the heap (to two blocks, at most)
    out["inside"] = faults()
    faults(4, floats=5_000_000)
    out["inside_20mb"] = faults(floats=5_000_000)  # below glibc's largest mmap threshold (32 MiB)
    out["rss_inside"] = rss_mb()
out["rss_after"] = rss_mb()
faults(2)
out["after"] = faults(floats=25_000_000)  # 100 MB
print(json.dumps(out))
"""


def run(*args, **env):
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=environ, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@counts_pages
def test_freed_buffers_are_reused_inside_and_handed_back_after():
    r = run()
    assert r["outside"] > 0.8 * PAGES  # glibc maps every 40 MB buffer anew: each page faults in again
    assert r["inside"] < 0.02 * PAGES  # the heap keeps the freed buffer: no page is faulted in again
    assert r["rss_inside"] - r["rss_after"] > 30  # malloc_trim at the end gave the 40 MB back
    assert r["after"] > 0.8 * 2.5 * PAGES  # and back to glibc's usual: a freed 100 MB block goes back to the kernel


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
@counts_pages
@pytest.mark.parametrize("args", [("0.9",), ("-", "2000000")], ids=["estimate does not fit", "2 megapixels"])
def test_partial_mode_keeps_only_blocks_up_to_32_mib(args):
    # an estimate of 90 % of the available memory (with the fragmentation margin it does not fit), or an image of 2
    # megapixels (the network recomputes its first block: fragmentation): blocks over 32 MiB are mapped as usual
    r = run(*args)
    assert r["inside"] > 0.8 * PAGES
    assert r["inside_20mb"] < 0.02 * PAGES / 2  # smaller ones are kept


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
@counts_pages
def test_nstedu_malloc_system_switches_it_off():
    r = run(NSTEDU_MALLOC="system")
    assert r["inside"] > 0.8 * PAGES


def _recorder(monkeypatch, module):
    """Replace ``module.steady_allocator`` with one that records its arguments and whether the work ran inside it."""
    import contextlib

    seen = []

    @contextlib.contextmanager
    def recording(device, need_gb=None, pixels=None):
        seen.append({"device": str(device), "need": need_gb, "pixels": pixels, "open": True})
        try:
            yield
        finally:
            seen[-1]["open"] = False
    monkeypatch.setattr(module, "steady_allocator", recording)
    return seen


def test_the_optimizer_loop_runs_inside_it_with_its_memory_estimate(monkeypatch):
    from nstedu import transfer
    from nstedu.env import estimate_memory_gb

    seen = _recorder(monkeypatch, transfer)
    inside = []
    r = transfer.run_style_transfer("grace_hopper", "starry_night", size=48, steps=3, progress=False, device="cpu",
                                    callback=lambda info: inside.append(seen[-1]["open"]), callback_every=1)
    h, w = r.tensor.shape[-2:]
    assert [s["device"] for s in seen] == ["cpu"] and inside == [True, True, True] and not seen[0]["open"]
    assert seen[0]["need"] == pytest.approx(estimate_memory_gb(w, h, 100))  # L-BFGS: its history counts
    assert seen[0]["pixels"] == w * h


def test_fast_training_runs_inside_it(monkeypatch, tmp_path):
    from nstedu.env import estimate_memory_gb
    from nstedu.fast import training

    seen = _recorder(monkeypatch, training)
    inside = []
    training.train_fast("starry_night", steps=2, size=32, batch_size=2, width=4, res_blocks=1, progress=False,
                        checkpoint=tmp_path / "m.pth", callback=lambda step, terms: inside.append(seen[-1]["open"]))
    assert inside == [True, True] and not seen[0]["open"]
    assert seen[0]["need"] == pytest.approx(2 * estimate_memory_gb(32, 32, 0)) and seen[0]["pixels"] == 32 * 32
