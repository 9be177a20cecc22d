"""Property-based tests (hypothesis) of everything a user can hand to nstedu before the network runs: the image
loader (random bytes, random images of every PIL mode and size, files of every format), arrays and tensors of any
dtype, shape and values, and the command-line options. The property: no traceback (only the one-line ImageError /
ValueError / argparse error) and no silent wrong image (what loads matches an independent reference conversion).
The VGG-19 never runs here, so the whole file takes seconds."""
import argparse
import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from nstedu import cli
from nstedu.arguments import join_negative_values
from nstedu.config import TransferConfig
from nstedu.env import resolve_device
from nstedu.images import ImageError, load_image

FAST = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODES = ["1", "L", "P", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "I;16", "I;16B", "I;16L",
         "LA", "PA", "La", "RGBa"]
BYTES_PER_PIXEL = {"1": None, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4, "LA": 2, "PA": 2,
                   "La": 2}
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP"]


def random_image(mode: str, w: int, h: int, data: bytes) -> Image.Image:
    per = BYTES_PER_PIXEL.get(mode, 4 if mode not in ("RGB", "LAB", "HSV", "YCbCr") else 3)
    need = (w + 7) // 8 * h if per is None else w * h * per
    return Image.frombytes(mode, (w, h), (data * (need // max(1, len(data)) + 1))[:need] if data else bytes(need))


def reference_rgb(img: Image.Image):
    """The expected 8-bit RGB pixels for the modes with an obvious meaning (None: only size and mode are checked)."""
    a = np.asarray(img)
    if img.mode == "RGB":
        return a
    if img.mode == "L":
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode == "1":
        return np.repeat(a[..., None].astype(np.uint8) * 255, 3, axis=2)
    if img.mode == "RGBA":  # composited on white
        rgb, alpha = a[..., :3].astype(np.float64), a[..., 3:].astype(np.float64) / 255.0
        return np.round(rgb * alpha + 255.0 * (1 - alpha))
    if img.mode in ("I;16", "I;16L", "I;16B"):
        v = a.astype(np.float64) / 65535.0 * 255.0
        return np.repeat(np.floor(v + 0.5)[..., None], 3, axis=2)
    return None


def assert_loads_or_refuses(src, expected=None, size=None):
    try:
        img = load_image(src)
    except ImageError as e:
        assert "\n" not in str(e) and str(e)
        return None
    assert img.mode == "RGB" and min(img.size) >= 1
    if size is not None:
        assert img.size == size
    if expected is not None:
        assert np.abs(np.asarray(img, np.float64) - expected).max() <= 1
    return img


# ----------------------------------------------------------------------------------------------- the loader
@FAST
@given(st.sampled_from(MAGIC), st.binary(max_size=600))
def test_random_bytes_load_or_give_one_line(magic, tail):
    assert_loads_or_refuses(magic + tail)


@FAST
@given(st.sampled_from(MODES), st.integers(1, 40), st.integers(1, 40), st.binary(min_size=1, max_size=64))
def test_every_pil_mode_and_size_loads_as_the_reference_says(mode, w, h, data):
    img = random_image(mode, w, h, data)
    assert_loads_or_refuses(img, reference_rgb(img), (w, h))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16", "CMYK"]), st.sampled_from(["PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG"]),
       st.integers(1, 24), st.integers(1, 24), st.binary(min_size=1, max_size=32))
def test_saved_files_of_every_format_load_at_their_size(mode, fmt, w, h, data):
    img = random_image(mode, w, h, data)
    buf = io.BytesIO()
    try:
        img.save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    except (OSError, ValueError, KeyError):
        return  # this format cannot hold this mode: nothing to load
    exact = fmt in ("PNG", "TIFF") and mode in ("L", "RGB", "1", "I;16")
    assert_loads_or_refuses(buf.getvalue(), reference_rgb(img) if exact else None, (w, h))


# ----------------------------------------------------------------------------------------- arrays, tensors
DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32, np.bool_, np.float16, np.float32,
          np.float64]


def expected_from_array(arr: np.ndarray):
    """An independent reading of an H×W[×C] array: the uint8 pixels, or None where it must be refused."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind in "ui":
        if arr.min() < 0 or arr.max() > 65535:
            return None
        white = 65535 if arr.dtype == np.uint16 or arr.max() > 255 else 255
        return np.floor(arr.astype(np.float64) * 255 / white + 0.5)
    v = arr.astype(np.float64)
    if not np.isfinite(v).all() or v.min() < -1e-3 or v.max() > 1 + 1e-3:
        return None
    return np.floor(np.clip(v, 0, 1) * 255 + 0.5)


@st.composite
def pixel_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    shape = draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 3)]))
    if dtype.kind == "f" and draw(st.booleans()):  # mostly the values a user means: [0, 1], sometimes anything
        elements = st.floats(0, 1, width=dtype.itemsize * 8)
    else:
        elements = None
    return draw(hnp.arrays(dtype, shape, elements=elements))


@FAST
@given(pixel_arrays(), st.sampled_from(["array", "tensor", "batch"]))
def test_arrays_and_tensors_load_as_their_dtype_says_or_are_refused(arr, kind):
    """Arrays are H×W[×C]; tensors are read by their declared layout, channels first — (C, H, W) or (1, C, H, W) —
    whatever H and W are: a width or height of 1, 3 or 4 is never taken for the channels (issue 24)."""
    expected = expected_from_array(arr)
    src = arr
    if kind != "array" and arr.dtype not in (np.uint32,):
        chw = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
        src = torch.from_numpy(np.ascontiguousarray(chw))
        src = src[None] if kind == "batch" else src
    grey = expected if expected is None or expected.ndim == 2 or expected.shape[-1] == 3 else expected[..., 0]
    ref = None if grey is None else (np.repeat(grey[..., None], 3, axis=2) if grey.ndim == 2 else grey)
    img = assert_loads_or_refuses(src, ref, (arr.shape[1], arr.shape[0]))
    assert (img is None) == (expected is None), "refused a valid array" if img is None else "accepted a bad array"


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([object, np.complex64, "U3", "datetime64[s]"]))
def test_arrays_that_are_not_numbers_are_refused(dtype):
    arr = np.zeros((4, 4), dtype=dtype)
    with pytest.raises(ImageError):
        load_image(arr)


# -------------------------------------------------------------------------------------------------- options
PARSER = cli.build_parser()
TEXT = st.one_of(st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12), st.from_regex(r"-?[0-9.e+-]{0,6}(,-?[0-9.e-]{0,4}){0,3}", fullmatch=True),
                 st.sampled_from(["nan", "inf", "-inf", "1e400", "0", "-0", "60%", "150%", "conv1_1", "conv4_2,relu9_9"]))


@FAST
@given(st.sampled_from(sorted(f for f in PARSER.value_flags if f.startswith("--") and f not in ("--help",))), TEXT)
def test_any_option_value_is_accepted_or_refused_in_one_line(flag, value):
    """`nstedu stylize c s FLAG VALUE`: argparse refuses it (exit 2), or the settings validate or raise one ValueError."""
    argv = join_negative_values(["stylize", "c.jpg", "s.jpg", flag, value], PARSER.value_flags)
    try:
        args = PARSER.parse_args(argv)
    except SystemExit as e:
        assert e.code == 2
        return
    try:
        TransferConfig(**cli.config_from_args(args)).validate()
        resolve_device(args.device)
    except ValueError as e:
        assert "\n" not in str(e)


@FAST
@given(TEXT)
def test_number_lists_and_fractions_parse_or_say_why(text):
    for parse, ok in ((cli._numbers(float), lambda v: all(x >= 0 for x in v)),
                      (cli._numbers(int), lambda v: all(isinstance(x, int) and x >= 0 for x in v)),
                      (cli._fraction, lambda v: 0 <= v <= 1)):
        try:
            value = parse(text)
        except argparse.ArgumentTypeError as e:
            assert repr(text) in str(e)
            continue
        assert ok(value)


@FAST
@given(st.lists(st.one_of(st.sampled_from(sorted(PARSER.value_flags)), TEXT), max_size=8))
def test_joining_negative_values_keeps_every_token(argv):
    """Each joined token is an original token, or a value flag and the negative value after it, glued."""
    joined, i = join_negative_values(argv, PARSER.value_flags), 0
    for tok in joined:
        pair = argv[i:i + 2]
        negative = len(pair) == 2 and pair[1][:1] == "-" and (pair[1][1:2].isdigit() or pair[1][1:3][-1:].isdigit()
                                                               and pair[1][1:2] == ".")
        if pair[0] in PARSER.value_flags and negative:
            assert tok in (f"{pair[0]}={pair[1]}", pair[0] + pair[1])
            i += 2
        else:
            assert tok == argv[i]
            i += 1
    assert i == len(argv)
