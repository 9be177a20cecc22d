"""Where results go, so that nothing a user owns is lost. One rule for every command (``stylize``, ``batch``,
``fast``, ``fast-train``, ``video``) and the API functions that write:

* before the work, every output path is checked: resolved (symbolic links followed) and refused if it is one of the
  inputs (:func:`check_not_input`), a name the file system takes, a folder that accepts files (:func:`check_output`,
  :func:`check_file_output`, :func:`check_output_folder`);
* after it, a result that cannot be written is rescued to a fallback folder (:func:`save_or_rescue`,
  :func:`write_or_rescue`), and an existing output is replaced only by a *finished* result: an interrupted run's
  picture goes beside it (:func:`partial_path`, :func:`save_result`);
* a shared output folder is locked against a second run (:class:`FolderLock`).

    out = check_output("result.png", inputs={"content image": "photo.png"})   # before minutes of work
    ...
    save_result(image, out, finished=True)            # disk full? -> saved in ~/.cache/nstedu/rescued, SaveFailed
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import tempfile
import time
import warnings
from pathlib import Path
from typing import Union

from PIL import Image

from .images import SAVE_FORMATS, ImageError, atomic_write, save_image

try:
    import fcntl
except ImportError:  # Windows: no advisory file locks; the folder lock is skipped there
    fcntl = None

LOCK_NAME = ".nstedu.lock"
PathLike = Union[str, os.PathLike]


class SaveFailed(OSError):
    """The result could not be written where asked; ``rescued`` is where it was saved instead (None: nowhere)."""

    def __init__(self, message: str, rescued: Path | None = None):
        super().__init__(message)
        self.rescued = rescued

    def __str__(self) -> str:
        return self.args[0]


def _writable_folder(folder: Path, label: str) -> None:
    """``ImageError`` unless ``folder`` (created if missing) accepts a new file: tried, not guessed (root ignores
    permission bits, a read-only file system does not)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ImageError(f"{label}: '{existing}' is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".nstedu-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ImageError(f"{label}: cannot write in folder '{folder}' ({e.strerror or e})") from None


def _resolved(path: PathLike) -> Path:
    """``path`` with every symbolic link followed and made absolute (the file need not exist)."""
    return Path(os.path.realpath(os.fspath(path)))


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name one file: equal once resolved, or (both existing) the same inode (hard links)."""
    try:
        if _resolved(a) == _resolved(b):
            return True
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_not_input(output: PathLike, inputs: dict, label: str | None = None) -> None:
    """``ImageError`` when ``output`` (resolved, links followed) is one of ``inputs`` (``{what: path or anything}``;
    only paths are compared): nstedu never writes over its own inputs."""
    label = label or f"output '{output}'"
    for what, src in inputs.items():
        for one in (src if isinstance(src, (list, tuple)) else [src]):
            if isinstance(one, (str, os.PathLike)) and os.path.exists(one) and same_file(output, one):
                raise ImageError(f"{label} is the {what} '{one}': it would be overwritten; choose another output name")


def _check_name(path: Path, label: str) -> None:
    """``ImageError`` when the file system cannot take ``path``'s name (too long, or a NUL byte)."""
    if "\0" in str(path):
        raise ImageError(f"{label}: the name contains a NUL byte")
    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    longest = max((len(part.encode("utf-8", "surrogateescape")) for part in path.parts), default=0)
    if longest > limit - 32:  # room for the temporary .NAME.PID.XXXX.part file written first
        raise ImageError(f"{label}: a name in the path has {longest} bytes; this file system takes at most {limit} "
                         f"(and nstedu needs {limit - 32} or fewer): use a shorter name")


def check_file_output(path: PathLike, label: str | None = None, inputs: dict | None = None) -> Path:
    """Check any output file (a model, a video, a manifest) before the work: a name the file system takes, not a
    folder, not one of ``inputs``, in a folder that exists (or can be made) and accepts files."""
    path = Path(path)
    label = label or f"output '{path}'"
    _check_name(path, label)
    if path.is_dir():
        raise ImageError(f"{label}: is a folder; give a file name")
    check_not_input(path, inputs or {}, label)
    _writable_folder(path.parent if str(path.parent) else Path("."), label)
    return path


def check_output(path: PathLike, label: str | None = None, inputs: dict | None = None) -> Path:
    """Check an output image path before the work: a known extension PIL can write, a name the file system takes,
    not a folder, not one of ``inputs`` (:func:`check_not_input`), a folder that exists (or can be made) and accepts
    files. Returns the path; :class:`~nstedu.images.ImageError` otherwise."""
    path = Path(path)
    label = label or f"output '{path}'"
    suffix = path.suffix.lower()
    known = ", ".join(sorted(SAVE_FORMATS))
    _check_name(path, label)
    if path.is_dir():
        raise ImageError(f"{label}: is a folder; give a file name such as '{path / 'out.png'}'")
    if not suffix:
        raise ImageError(f"{label}: has no extension; add one of {known}")
    Image.init()
    if SAVE_FORMATS.get(suffix) not in Image.SAVE:
        raise ImageError(f"{label}: cannot write '{path.suffix}' images (use one of {known})")
    return check_file_output(path, label, inputs)


def partial_path(path: PathLike) -> Path:
    """Where an unfinished result goes when ``path`` already holds a finished one: ``NAME.partial.EXT`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def result_path(path: PathLike, finished: bool) -> Path:
    """``path`` for a finished result, or when nothing is there yet; else :func:`partial_path` (a finished output
    is replaced only by a finished result)."""
    return Path(path) if finished or not os.path.lexists(path) else partial_path(path)


def save_result(img, path: PathLike, finished: bool, quality: int = 95) -> Path:
    """Save a result by :func:`result_path`'s rule (with :func:`save_or_rescue`); returns where it went."""
    return save_or_rescue(img, result_path(path, finished), quality)


def write_or_rescue(path: PathLike, write, label: str = "result") -> Path:
    """:func:`~nstedu.images.atomic_write` of any file (a model checkpoint, …); if that fails, the same bytes go
    to a :func:`rescue_folders` folder and :class:`SaveFailed` names both paths (the work is never lost)."""
    with signals_held():
        return _write_or_rescue(Path(path), write, label)


def _write_or_rescue(path: Path, write, label: str) -> Path:
    try:
        return atomic_write(path, write)
    except Exception as e:  # disk full, read-only, file too large: keep the work
        reason = (e.strerror if isinstance(e, OSError) else None) or str(e) or type(e).__name__
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for folder in rescue_folders():
        copy = folder / f"{path.stem[:100] or label}-{stamp}-{os.getpid()}{path.suffix[:16]}"
        try:
            atomic_write(copy, write)
        except Exception:  # try the next folder
            continue
        raise SaveFailed(f"could not write '{path}' ({reason}); the {label} was saved to {copy}", copy)
    raise SaveFailed(f"could not write '{path}' ({reason}), nor a copy in {' or '.join(map(str, rescue_folders()))}")


def check_output_folder(folder: PathLike, label: str | None = None) -> Path:
    """Check (and create) an output folder before the work: not an existing file, and writable."""
    folder = Path(folder)
    label = label or f"output folder '{folder}'"
    if folder.exists() and not folder.is_dir():
        raise ImageError(f"{label}: is an existing file, not a folder; give a folder name")
    _writable_folder(folder, label)
    return folder


def rescue_folders() -> list[Path]:
    """Where a result that could not be written is saved instead: the user cache, then the temporary folder."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [Path(cache) / "nstedu" / "rescued", Path(tempfile.gettempdir()) / "nstedu-rescued"]


@contextlib.contextmanager
def signals_held():
    """Within: Ctrl-C, SIGTERM and SIGHUP wait (recorded, not lost) until the block ends, so that a second Ctrl-C or a
    ``kill`` while a finished result is being written cannot abort the write; each then gets its own handler right
    after it. Only in the main thread (Python runs signal handlers nowhere else); a no-op elsewhere."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list = []
    saved = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) not in (signal.SIG_IGN, None):
            saved[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for sig in pending:
            handler = saved[sig]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(sig)


def save_or_rescue(img, path: PathLike, quality: int = 95) -> Path:
    """:func:`~nstedu.images.save_image`, and if the write fails (disk full, file too large, read-only, …) save
    the image in a :func:`rescue_folders` folder instead (as PNG, or JPEG if even that fails) and raise
    :class:`SaveFailed` naming both paths, so the caller can report it in one line and exit non-zero."""
    with signals_held():
        return _save_or_rescue(img, Path(path), quality)


def _save_or_rescue(img, path: Path, quality: int) -> Path:
    try:
        return save_image(img, path, quality)
    except Exception as e:  # whatever stopped the write (OSError mostly), the picture must not be lost
        reason = (e.strerror if isinstance(e, OSError) else None) or str(e) or type(e).__name__
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for folder in rescue_folders():
        for ext in (".png", ".jpg"):
            copy = folder / f"{path.stem[:100] or 'result'}-{stamp}-{os.getpid()}{ext}"
            try:
                save_image(img, copy, quality)
            except Exception:  # try the next format / folder
                continue
            raise SaveFailed(f"could not write '{path}' ({reason}); the result was saved to {copy}", copy)
    raise SaveFailed(f"could not write '{path}' ({reason}), nor a copy in {' or '.join(map(str, rescue_folders()))}")


def snapshot_saver(path: PathLike):
    """A callback for ``run_style_transfer(callback=…)`` that saves each image it gets as ``PATH_NNNN.ext``
    (NNNN = the step); a snapshot that cannot be written is reported (once) and skipped: the run goes on."""
    path, failed = Path(path), []

    def save(info) -> None:
        try:
            save_image(info.image, path.with_name(f"{path.stem}_{info.step:04d}{path.suffix}"))
        except OSError as e:
            if not failed:
                warnings.warn(f"could not save a snapshot next to '{path}' ({e.strerror or e}); going on without",
                              RuntimeWarning, stacklevel=2)
            failed.append(info.step)
    return save


class FolderLock:
    """An exclusive lock on an output folder (``fcntl.flock`` on ``FOLDER/.nstedu.lock``, which records the pid), so
    two runs never write the same folder at once. The lock goes with the process (a killed run frees it).

        with FolderLock("out/"):          # a second run: ValueError naming the first one's pid
            ...
    """

    def __init__(self, folder: PathLike, label: str | None = None):
        self.folder = Path(folder)
        self.label = label or f"output folder '{self.folder}'"
        self.fd: int | None = None

    def __enter__(self) -> "FolderLock":
        if fcntl is None:
            return self
        path = self.folder / LOCK_NAME
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            other = os.read(self.fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(self.fd)
            self.fd = None
            raise ValueError(f"{self.label} is in use by another nstedu run (pid {other}); wait for it to finish "
                             f"or use another folder") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
