"""Rebuild the two short real clips shipped in ``nstedu/data/`` (see ``nstedu/data/SOURCES.md``).

    apt-get download opencv-doc && dpkg -x opencv-doc_*.deb /tmp/opencv-doc
    python tools/make_real_clips.py /tmp/opencv-doc/usr/share/doc/opencv-doc

The footage is OpenCV's own tutorial videos (Apache-2.0 AND BSD-3-Clause, as Debian's copyright file for the
package states): ``box.mp4`` (a hand-held camera filming a hand that moves a printed box; the real-time pose
estimation tutorial) and ``cup.mp4`` (a hand tilting a black cup in front of a white wall; the OpenCV.js tracking
tutorials), both 640×480. Frames are taken as they are (no temporal resampling), shrunk to 320×240 and encoded as
H.264 (CRF 18) at 30 frames/s:

* ``real_box.mp4``: box.mp4 frames 120–151 (32 frames; camera and object both move);
* ``real_cut.mp4``: cup.mp4 frames 48–67, then box.mp4 frames 300–319 (40 frames; frame 20 is the first after
  the hard cut, :data:`nstedu.clips.REAL_CUT_FRAME`).

and eight *held-out* clips for the benchmark only (``benchmarks/heldout/``, 32 frames each, none of the frames above):
``cup_100.mp4``, ``cup_160.mp4`` (cup.mp4 from frame 100 / 160), ``box_200.mp4``, ``box_400.mp4`` (box.mp4), and
a second set, ``cup_0``, ``cup_68``, ``box_40``, ``box_250`` (benchmarks/heldout/README.md says what was chosen on which).
"""
from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nstedu.clips import REAL_CUT_FRAME  # noqa: E402

SIZE, FPS = (320, 240), 30
#: the held-out clips: (name, source video, first frame), 32 frames each
HELD_OUT = (("cup_100", "cup", 100), ("cup_160", "cup", 160), ("box_200", "box", 200), ("box_400", "box", 400),
            ("cup_0", "cup", 0), ("cup_68", "cup", 68), ("box_40", "box", 40), ("box_250", "box", 250))


def frames(video: Path, first: int, count: int) -> list[np.ndarray]:
    out = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= first:
                out.append(np.asarray(frame.to_image().convert("RGB").resize(SIZE, Image.LANCZOS)))
            if len(out) == count:
                return out
    raise SystemExit(f"{video} has fewer than {first + count} frames")


def write(path: Path, rgb_frames: list[np.ndarray]) -> None:
    """H.264 (libx264, CRF 18: the camera's noise survives), yuv420p, no B-frames, 30 frames/s."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"crf": "18", "bf": "0", "preset": "slow"}
        for i, rgb in enumerate(rgb_frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def unpacked(doc: Path, name: str, tmp: Path) -> Path:
    src = doc / "opencv4" / "html" / f"{name}.mp4.gz"
    if not src.exists():
        raise SystemExit(f"{src} not found: pass the folder usr/share/doc/opencv-doc of the unpacked opencv-doc package")
    dest = tmp / f"{name}.mp4"
    with gzip.open(src) as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return dest


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit(__doc__)
    doc, data = Path(argv[0]), ROOT / "nstedu" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        box, cup = unpacked(doc, "box", Path(tmp)), unpacked(doc, "cup", Path(tmp))
        write(data / "real_box.mp4", frames(box, 120, 32))
        write(data / "real_cut.mp4", frames(cup, 48, REAL_CUT_FRAME) + frames(box, 300, 20))
        held = ROOT / "benchmarks" / "heldout"
        held.mkdir(exist_ok=True)
        for name, video, first in HELD_OUT:
            write(held / f"{name}.mp4", frames({"cup": cup, "box": box}[video], first, 32))
    for path in [data / "real_box.mp4", data / "real_cut.mp4"] + [held / f"{n}.mp4" for n, _, _ in HELD_OUT]:
        print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
