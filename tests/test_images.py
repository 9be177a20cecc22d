"""Image loading, conversion, resizing, tensors and atomic saving — and every kind of bad input."""
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from nstedu import images
from nstedu.images import ImageError, load_image, pil_to_tensor, resize_longest, save_image, tensor_to_pil


def _png_bytes(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_load_from_path_pil_numpy_bytes_agree(tmp_path):
    arr = (np.arange(12 * 10 * 3) % 256).astype(np.uint8).reshape(12, 10, 3)
    img = Image.fromarray(arr)
    p = tmp_path / "a.png"
    img.save(p)
    for src in (p, str(p), img, arr, _png_bytes(img), torch.from_numpy(arr).permute(2, 0, 1).float() / 255):
        out = load_image(src)
        assert out.mode == "RGB" and out.size == (10, 12)
        assert np.array_equal(np.asarray(out), arr), type(src)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif, quality=98)
    out = np.asarray(load_image(p))
    assert out.shape[:2] == (40, 20)  # displayed portrait
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # white half is now on top


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK", "I;16", "I", "F", "1"])
def test_any_mode_becomes_rgb(mode):
    base = Image.new("RGB", (8, 6), (10, 200, 30))
    if mode == "I;16":
        img = Image.fromarray(np.full((6, 8), 65535, np.uint16))
        expect = (255, 255, 255)
    elif mode == "I":
        img = Image.fromarray(np.full((6, 8), 32768, np.int32))
        expect = (128, 128, 128)
    elif mode == "F":
        img = Image.fromarray(np.full((6, 8), 0.5, np.float32))
        expect = (128, 128, 128)
    elif mode in ("RGBA", "LA"):
        img = Image.new("RGBA", (8, 6), (0, 0, 0, 0)).convert(mode)  # fully transparent -> white
        expect = (255, 255, 255)
    else:
        img = base.convert(mode)
        expect = None
    out = load_image(img)
    assert out.mode == "RGB" and out.size == (8, 6)
    if expect is not None:
        assert tuple(np.asarray(out)[0, 0]) == pytest.approx(expect, abs=1)


def test_resize_longest_keeps_aspect():
    img = Image.new("RGB", (400, 300))
    assert resize_longest(img, 200).size == (200, 150)
    assert resize_longest(Image.new("RGB", (300, 400)), 100).size == (75, 100)
    assert load_image(img, 64).size == (64, 48)
    with pytest.raises(ValueError):
        resize_longest(img, 0)


def test_tensor_roundtrip_and_range():
    arr = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    t = pil_to_tensor(Image.fromarray(arr))
    assert t.shape == (1, 3, 7, 9) and t.dtype == torch.float32
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    assert torch.allclose(t[0, :, 2, 3], torch.tensor(arr[2, 3] / 255.0, dtype=torch.float32))
    assert np.array_equal(np.asarray(tensor_to_pil(t)), arr)
    assert np.asarray(tensor_to_pil(t * 3 - 1)).max() == 255  # clamped, not wrapped


def test_save_atomic_png_jpeg(tmp_path):
    img = Image.new("RGB", (16, 8), (1, 2, 3))
    for ext in (".png", ".jpg"):
        p = save_image(img, tmp_path / f"sub/out{ext}")
        assert p.exists() and Image.open(p).size == (16, 8)
    assert sorted(os.listdir(tmp_path / "sub")) == ["out.jpg", "out.png"]  # no temp files left
    assert (p.stat().st_mode & 0o777) == 0o666 & ~images._umask()  # normal permissions, not mkstemp's 0600


def test_save_failure_leaves_nothing(tmp_path, monkeypatch):
    img = Image.new("RGB", (16, 8))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        save_image(img, tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_save_unknown_extension(tmp_path):
    with pytest.raises(ImageError, match=r"out\.xyz.*unknown image extension"):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "out.xyz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.jpg'?: file not found"):
        load_image(tmp_path / "nope.jpg")


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture")
    with pytest.raises(ImageError, match=r"notes\.jpg'?: not an image file"):
        load_image(p)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match=r"cut\.jpg'?: corrupted or truncated"):
        load_image(p)


def test_zero_size(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png'?: file is empty"):
        load_image(p)
    with pytest.raises(ImageError, match="not an image|zero size"):
        load_image(np.zeros((0, 5, 3), np.uint8))


def test_decompression_bomb(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(p)  # 196 megapixels, a few hundred kB on disk
    assert p.stat().st_size < 2_000_000
    with pytest.raises(ImageError, match=r"bomb\.png'?: image is too large"):
        load_image(p)


def test_error_names_the_role():
    with pytest.raises(ImageError, match=r"^style image 'x': file not found$"):
        load_image("/definitely/missing.png", name="style image 'x'")


def test_show_returns_figure(small_pair):
    fig = images.show(*small_pair, small_pair[0])
    assert [a.get_title() for a in fig.axes] == ["content", "style", "result"]


def test_batch_and_fast_training_read_the_same_image_files(tmp_path):
    """One list of image extensions: a folder scanned by `nstedu batch` and by fast-network training gives the
    same files (a .gif too), and .txt / extension-less files are left out by both."""
    from nstedu import batch
    from nstedu.fast import training_photos

    for name in ("a.jpg", "b.PNG", "c.gif", "d.webp", "e.tiff", "f.bmp", "g.jpeg"):
        Image.new("RGB", (8, 6), "red").save(tmp_path / name, format={".jpg": "JPEG", ".jpeg": "JPEG", ".tiff": "TIFF"}
                                             .get(os.path.splitext(name.lower())[1], None))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "README").write_text("x")
    want = ["a.jpg", "b.PNG", "c.gif", "d.webp", "e.tiff", "f.bmp", "g.jpeg"]
    assert [p.name for p in batch.find_images(tmp_path)] == want
    assert [p.name for p in training_photos(tmp_path)] == want


@pytest.mark.parametrize("arr, mode, white", [
    (np.array([[0, 300]], np.float64), "I;16", 65535.0),    # 16-bit data
    (np.array([[0, 200]], np.float64), "I;16", 65535.0),    # 16-bit data, however dark
    (np.array([[0, 200]], np.float64), "I", 255.0),         # 32-bit integers holding 8-bit values
    (np.array([[0, 4000]], np.float64), "I", 65535.0),      # … or 16-bit ones
    (np.array([[0, 0.5]], np.float64), "F", 1.0),           # floats in [0, 1]
    (np.array([[0, 180.0]], np.float64), "F", 255.0),       # floats on the 8-bit scale
])
def test_white_level_of_wide_images(arr, mode, white):
    assert images.white_level(arr, mode) == white
