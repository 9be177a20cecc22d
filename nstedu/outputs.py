"""Where results go, so that a finished picture is never lost: the output path is checked *before* the work
(:func:`check_output`, :func:`check_output_folder`), a result that still cannot be written is rescued to a fallback
folder (:func:`save_or_rescue`), and a shared output folder is locked against a second run (:class:`FolderLock`).

    out = check_output("result.png")                 # before minutes of work: extension, folder, writable
    ...
    save_or_rescue(image, out)                       # disk full? -> saved in ~/.cache/nstedu/rescued, SaveFailed
"""
from __future__ import annotations

import errno
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Union

from PIL import Image

from .images import SAVE_FORMATS, ImageError, save_image

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


def check_output(path: PathLike, label: str | None = None) -> Path:
    """Check an output image path before the work: a known extension PIL can write, not a folder, a folder that
    exists (or can be made) and accepts files. Returns the path; :class:`~nstedu.images.ImageError` otherwise."""
    path = Path(path)
    label = label or f"output '{path}'"
    suffix = path.suffix.lower()
    known = ", ".join(sorted(SAVE_FORMATS))
    if path.is_dir():
        raise ImageError(f"{label}: is a folder; give a file name such as '{path / 'out.png'}'")
    if not suffix:
        raise ImageError(f"{label}: has no extension; add one of {known}")
    Image.init()
    if SAVE_FORMATS.get(suffix) not in Image.SAVE:
        raise ImageError(f"{label}: cannot write '{path.suffix}' images (use one of {known})")
    _writable_folder(path.parent if str(path.parent) else Path("."), label)
    return path


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


def save_or_rescue(img, path: PathLike, quality: int = 95) -> Path:
    """:func:`~nstedu.images.save_image`, and if the write fails (disk full, file too large, read-only, …) save
    the image in a :func:`rescue_folders` folder instead (as PNG, or JPEG if even that fails) and raise
    :class:`SaveFailed` naming both paths, so the caller can report it in one line and exit non-zero."""
    path = Path(path)
    try:
        return save_image(img, path, quality)
    except Exception as e:  # whatever stopped the write (OSError mostly), the picture must not be lost
        reason = (e.strerror if isinstance(e, OSError) else None) or str(e) or type(e).__name__
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for folder in rescue_folders():
        for ext in (".png", ".jpg"):
            copy = folder / f"{path.stem or 'result'}-{stamp}-{os.getpid()}{ext}"
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
