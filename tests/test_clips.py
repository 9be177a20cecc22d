"""The real clips shipped with the package (nstedu.clips.real_clip, real_clip_with_cut): decodable, the size and
length SOURCES.md states, and the cut where real_clip_with_cut says it is."""
import numpy as np
import pytest

av = pytest.importorskip("av")

from nstedu import clips  # noqa: E402


def frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]


def test_the_real_clip_is_32_frames_of_320_by_240_at_30_fps():
    path = clips.real_clip()
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height, float(stream.average_rate)) == ("h264", 320, 240, 30.0)
    got = frames(path)
    assert len(got) == 32
    change = [np.abs(b - a).mean() for a, b in zip(got, got[1:])]
    assert 0.5 < np.median(change) < 20                # real motion: neither a still nor a slide show
    assert path.stat().st_size < 1 << 20


def test_the_cut_is_the_frame_real_clip_with_cut_names():
    path, cut = clips.real_clip_with_cut()
    got = frames(path)
    assert len(got) == 40 and cut == clips.REAL_CUT_FRAME == 20
    change = [np.abs(b - a).mean() for a, b in zip(got, got[1:])]   # change[i]: frames i → i + 1
    assert int(np.argmax(change)) + 1 == cut
    assert change[cut - 1] > 5 * max(change[:cut - 1] + change[cut:])   # by far the largest change
