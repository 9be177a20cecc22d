"""Files written so that a crash never leaves half of one: :func:`atomic_write` fills a temporary ``.part`` file
beside the target and renames it over the target; :func:`clean_stale_parts` removes the ``.part`` files of writers
that were killed. Every file nstedu writes (images, manifests, checkpoints, video segments) goes through here."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Union

#: A temporary ``.part`` file whose writer is gone, or older than this (seconds), is removed by the next write there.
STALE_PART_SECONDS = 3600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether it exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # someone else's process, or not a pid we can ask about
        pass
    return True


def clean_stale_parts(folder: Union[str, os.PathLike], max_age: float = STALE_PART_SECONDS) -> list[Path]:
    """Remove the temporary ``.NAME.PID.XXXX.part`` files of :func:`atomic_write` in ``folder`` whose writing process
    is gone (killed while saving), and any ``.part`` file older than ``max_age`` seconds. Returns what was removed;
    files being written by a live process are left alone."""
    removed = []
    try:
        candidates = list(Path(folder).glob(".*.part"))
    except OSError:
        return removed
    now = time.time()
    for p in candidates:
        fields = p.name.split(".")  # ['', stem…, pid, random, 'part']
        pid = int(fields[-3]) if len(fields) >= 5 and fields[-3].isdigit() else None
        try:
            stale = (pid is not None and pid != os.getpid() and not _pid_alive(pid)) or now - p.stat().st_mtime > max_age
            if stale:
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    return removed


def atomic_write(path: Union[str, os.PathLike], write: Callable, text: bool = False) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file ``.NAME.PID.XXXX.part`` in the same folder,
    which is flushed to disk, given the usual permissions (mkstemp makes 0600) and renamed over ``path``. Any failure,
    Ctrl-C included, removes the temporary file and leaves ``path`` as it was. A symbolic link is written through
    (its target is replaced, the link kept); stale ``.part`` files of killed writers are cleaned
    (:func:`clean_stale_parts`). Returns the path."""
    given = path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_parts(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=".part", dir=path.parent)
    try:
        with (os.fdopen(fd, "w", newline="", encoding="utf-8") if text else os.fdopen(fd, "wb")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return given
