"""The resume record of a video run (:func:`nstedu.video.stylize_video`): ``OUT.parts/progress.json`` holds the
finished segments, the frames done, the settings' fingerprint and whether a finished video at ``OUT`` is to be kept
(then an interrupted run's frames go beside it, never over it)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from . import videoio as V


def _fingerprint(input_path: Path, settings: dict) -> str:
    st = input_path.stat()
    text = json.dumps({"input": str(input_path.resolve()), "bytes": st.st_size, "mtime": st.st_mtime_ns, **settings},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _keeps_output(parts: Path) -> bool:
    """Whether the video at OUT is a finished one: no unfinished run is recorded in ``parts``, or the one recorded
    there kept OUT (its frames went beside it)."""
    try:
        return json.loads((parts / "progress.json").read_text()).get("keep_output", False)
    except FileNotFoundError:
        return True
    except (OSError, ValueError, AttributeError):
        return False


def _load_progress(parts: Path, fingerprint: str, resume: bool, output: Path) -> dict:
    fresh = {"version": 1, "fingerprint": fingerprint, "done": 0, "segments": [], "state": None}
    progress = parts / "progress.json"
    if not resume:
        if progress.is_file():
            print(f"note: starting again; discarding the unfinished run in {parts} (--resume would continue it)")
        shutil.rmtree(parts, ignore_errors=True)
        return fresh
    if not progress.is_file():
        print(f"note: no unfinished run of '{output}' to resume: starting from the first frame")
        return fresh
    saved = json.loads(progress.read_text())
    if saved.get("fingerprint") != fingerprint:
        raise V.VideoError(f"output '{output}': {parts} was made from another input or with other settings; "
                           f"rerun without --resume to start again (or use the same settings)")
    return saved
