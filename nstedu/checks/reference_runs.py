"""The capstone's reference runs on the *visible* inputs, computed once per grading worker and handed to each
sandboxed kernel as data (a ``torch.save`` file it reads with ``weights_only=True``).

Every capstone check compares the learner's ``style_transfer`` with nstedu's engine on a tiny problem (3 tasks ×
2 seeds, ~0.6–1.4 s each on one core). Without a hand-over, every sandboxed kernel ran all of them again, per
submission, although the grader's own replay already memoizes them per worker (``capstone._REFERENCES``).

What is handed, and what is not:

* only the runs of the visible seed (0). Its inputs and nstedu are public: anyone can compute these runs offline,
  so reading the file gives a learner nothing new. The hidden seed's runs are never handed: the kernel computes
  them after the learner's function has returned, as before, so a function that reads this file still fails the
  hidden inputs unless it is right;
* the file only fills the kernel's own memo. A learner who forges what the kernel reads (they cannot write the
  file: it lies in a folder the sandbox mounts read-only) fools only their own kernel's run: the verdict comes from
  the grader's replay (:func:`nstedu.checks.record.verify`), which computes its own runs and never reads the file.
"""
from __future__ import annotations

import io
import math
import os
import tempfile

import torch

from ..vgg import get_vgg
from . import capstone

VISIBLE_SEED = 0
FILE = "capstone-references.pt"
TASK_OF = {"texture_synthesis": "texture", "feature_inversion": "inversion", "style_transfer": "transfer"}
_MADE: dict = {}       # tasks -> the file's bytes, made once per grading process


def capstone_references(tasks) -> bytes:
    """The engine's runs of ``tasks`` on the visible inputs, as ``torch.save`` bytes: ``[{task, seed, image,
    losses}]``. Computed through the grader's memo (the replays need the same runs) and made once per process."""
    key = tuple(sorted(tasks))
    if key not in _MADE:
        vgg = get_vgg("caffe", "cpu")
        entries = []
        for task in key:
            photo, painting, start, args = capstone.check_inputs(task, VISIBLE_SEED)
            image, losses = capstone._reference(vgg, photo, painting, start, args)
            entries.append({"task": task, "seed": VISIBLE_SEED, "image": image, "losses": losses})
        buffer = io.BytesIO()
        torch.save(entries, buffer)
        _MADE[key] = buffer.getvalue()
    return _MADE[key]


def hand_in(folder: str, exercises) -> str | None:
    """Grader side: write the visible runs of the capstone ``exercises`` into ``folder`` (which the sandbox mounts
    read-only), unless the file there already holds them. Returns its path, or None when no capstone exercise is
    graded."""
    tasks = sorted({TASK_OF[e] for e in exercises if e in TASK_OF})
    if not tasks:
        return None
    data = capstone_references(tasks)
    path = os.path.join(folder, f"{'-'.join(tasks)}-{FILE}")
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return path
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)       # whole or not at all: a kernel never reads half a file
    return path


def take(path: str) -> int:
    """Kernel side: fill the capstone memo with the runs in ``path`` (read as data: ``weights_only=True``). Entries
    that are not what :func:`capstone_references` writes are skipped (the check then computes those runs itself).
    Returns how many were taken."""
    try:
        entries = torch.load(path, weights_only=True)
    except Exception:
        return 0
    taken = 0
    for e in entries if isinstance(entries, list) else []:
        if not (isinstance(e, dict) and e.get("task") in capstone.TASKS and e.get("seed") == VISIBLE_SEED
                and isinstance(e.get("image"), torch.Tensor) and isinstance(e.get("losses"), list)
                and all(isinstance(v, float) and math.isfinite(v) for v in e["losses"])):
            continue
        photo, painting, start, args = capstone.check_inputs(e["task"], VISIBLE_SEED)
        if tuple(e["image"].shape) != tuple(start.shape) or len(e["losses"]) != args["steps"]:
            continue
        capstone.remember(photo, painting, start, args, e["image"].float(), e["losses"])
        taken += 1
    return taken
