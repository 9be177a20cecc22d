"""Artistic control (nstedu.control) against independent expectations: numpy statistics, PIL's own colour
conversion and ImageEnhance, explicit Gram formulas, and measured distances to the photo."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from nstedu import control
from nstedu.images import ImageError, load_image, pil_to_tensor
from nstedu.transfer import TransferConfig, prepare_style_targets, run_style_transfer

SIZE, STEPS = 48, 20
RUN = dict(size=SIZE, steps=STEPS, progress=False, device="cpu")


@pytest.fixture(scope="module")
def photo():
    from nstedu import samples

    return samples.load("chelsea", SIZE)  # 48×32


@pytest.fixture(scope="module")
def full(photo):
    """The plain full-style result, shared by the tests that compare against it."""
    return run_style_transfer(photo, "starry_night", **RUN)


def mad(a, b) -> float:
    return float((a - b).abs().mean())


# -------------------------------------------------------------------------------------------- strength
def test_strength_zero_keeps_the_photo_and_grows_with_strength(photo, full):
    c = pil_to_tensor(photo)
    zero = run_style_transfer(photo, "starry_night", style_strength=0.0, **RUN)
    no_style = run_style_transfer(photo, None, style_weight=0, **RUN)
    assert torch.equal(zero.tensor, no_style.tensor)        # 0 % = no style at all (content + TV smoothing only)
    half = run_style_transfer(photo, "starry_night", style_strength=0.5, **RUN)
    d0, d50, d100 = mad(zero.tensor, c), mad(half.tensor, c), mad(full.tensor, c)
    assert d0 < d50 < d100 and d0 < 0.5 * d100               # more strength, further from the photo
    exact = run_style_transfer(photo, "starry_night", style_strength=0.0, tv_weight=0, **RUN)
    assert mad(exact.tensor, c) < 1e-6                       # without TV the photo itself is the optimum


def test_strength_one_is_the_full_style(photo, full):
    one = run_style_transfer(photo, "starry_night", style_strength=1.0, **RUN)
    assert torch.equal(full.tensor, one.tensor)


def test_strength_blends_grams_linearly(vgg, photo):
    """Target at strength s = (1 - s)·Gram(photo) + s·Gram(style), Grams computed here by hand."""
    cfg = TransferConfig(size=SIZE, style_layers=("conv1_1", "conv3_1"))
    c = pil_to_tensor(photo)
    targets = prepare_style_targets("starry_night", vgg, cfg, SIZE, "cpu")
    out = control.apply_strength(targets, vgg, c, 0.3, cfg.style_layers)
    for layer in cfg.style_layers:
        f = vgg(c, [layer])[layer][0]
        ch = f.shape[0]
        f = f.reshape(ch, -1)
        own = f @ f.T / f.numel()
        expect = 0.7 * own + 0.3 * targets[0].grams[layer][0]
        torch.testing.assert_close(out[0].grams[layer][0], expect, rtol=1e-4, atol=1e-3)
    assert control.apply_strength(targets, vgg, c, 0.0, cfg.style_layers) == []


# -------------------------------------------------------------------------------------------- blending
def test_blend_one_zero_equals_the_single_style(photo, full):
    a = full
    ab = run_style_transfer(photo, ["starry_night", "great_wave"], style_blend=[1.0, 0.0], **RUN)
    ba = run_style_transfer(photo, ["great_wave", "starry_night"], style_blend=[0.0, 1.0], **RUN)
    torch.testing.assert_close(ab.tensor, a.tensor, rtol=0, atol=2 / 255)
    torch.testing.assert_close(ba.tensor, a.tensor, rtol=0, atol=2 / 255)


# -------------------------------------------------------------------------------------------- colour
def test_histogram_matching_matches_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[0.08, 0.02, 0.0], [0.03, 0.06, 0.01], [0.0, 0.02, 0.05]])
    style = (0.5 + torch.einsum("ij,jn->in", mix, torch.randn(3, 40 * 30, generator=g))).reshape(1, 3, 30, 40)
    content = (torch.tensor([0.45, 0.5, 0.4]).view(3, 1) + 0.07 * torch.randn(3, 20 * 24, generator=g)
               * torch.tensor([1.0, 0.6, 0.3]).view(3, 1)).reshape(1, 3, 20, 24)
    assert 0 <= float(style.min()) and float(style.max()) <= 1 and 0 <= float(content.min()) and float(content.max()) <= 1
    out = control.match_color_histogram(style, content).reshape(3, -1).numpy().astype(np.float64)
    ref = content.reshape(3, -1).numpy().astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=1), ref.mean(axis=1), atol=1e-4)
    np.testing.assert_allclose(np.cov(out), np.cov(ref), atol=2e-5)


def test_histogram_matching_on_real_pictures(photo):
    style = pil_to_tensor(load_image(control.__file__.replace("control.py", "data/starry_night.jpg"), SIZE))
    c = pil_to_tensor(photo)
    out = control.match_color_histogram(style, c)
    assert out.shape == style.shape
    np.testing.assert_allclose(out.mean(dim=(0, 2, 3)).numpy(), c.mean(dim=(0, 2, 3)).numpy(), atol=0.02)
    np.testing.assert_allclose(out.reshape(3, -1).std(dim=1).numpy(), c.reshape(3, -1).std(dim=1).numpy(), rtol=0.15)


def ycbcr(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("YCbCr"), dtype=np.float64)  # PIL's own conversion (ITU-R BT.601)


def test_luminance_transfer_keeps_the_photos_chroma(photo, full):
    r = run_style_transfer(photo, "starry_night", preserve_colors="luminance", **RUN)
    got, ref = ycbcr(r.image), ycbcr(photo)
    assert np.abs(got[..., 1:] - ref[..., 1:]).mean() < 1.5           # chroma (Cb, Cr) of the photo, ±rounding
    assert np.abs(got[..., 0] - ref[..., 0]).mean() > 5                # luminance stylized
    plain = ycbcr(full.image)
    assert np.abs(plain[..., 1:] - ref[..., 1:]).mean() > 3 * np.abs(got[..., 1:] - ref[..., 1:]).mean()


def test_keep_content_colors_takes_luminance_from_result():
    g = torch.Generator().manual_seed(1)
    content = 0.3 + 0.4 * torch.rand(1, 3, 8, 8, generator=g)
    result = 0.3 + 0.4 * torch.rand(1, 3, 8, 8, generator=g)
    out = control.keep_content_colors(result, content)
    y = lambda t: 0.299 * t[:, 0] + 0.587 * t[:, 1] + 0.114 * t[:, 2]  # noqa: E731
    torch.testing.assert_close(y(out), y(result), atol=1e-5, rtol=0)
    # chroma kept: every channel moved by the same amount (the luminance change)
    shift = out - content
    torch.testing.assert_close(shift[:, 0], shift[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(shift[:, 1], shift[:, 2], atol=1e-5, rtol=0)


def test_histogram_mode_runs_and_rejects_precomputed_targets(vgg, photo):
    r = run_style_transfer(photo, "starry_night", preserve_colors="histogram", **dict(RUN, steps=5))
    assert r.image.size == photo.size
    targets = prepare_style_targets("starry_night", vgg, TransferConfig(), SIZE, "cpu")
    with pytest.raises(ValueError, match="histogram"):
        run_style_transfer(photo, None, style_targets=targets, preserve_colors="histogram", **RUN)


# -------------------------------------------------------------------------------------------- preprocessing
def test_enhance_is_pil_image_enhance(photo):
    ref = ImageEnhance.Sharpness(ImageEnhance.Contrast(photo).enhance(1.25)).enhance(1.1)
    assert np.array_equal(np.asarray(control.enhance(photo, 0.25, 0.1)), np.asarray(ref))
    assert control.enhance(photo) is photo
    lum = lambda im: np.asarray(im.convert("L"), dtype=float).std()  # noqa: E731
    assert lum(control.enhance(photo, contrast=0.3)) > 1.2 * lum(photo)


def test_contrast_changes_the_start_image(photo):
    a = run_style_transfer(photo, None, style_weight=0, steps=1, size=SIZE, progress=False, device="cpu")
    b = run_style_transfer(photo, None, style_weight=0, steps=1, size=SIZE, progress=False, device="cpu", contrast=0.3)
    assert float(b.tensor.std()) > float(a.tensor.std()) * 1.15
    with pytest.raises(ValueError, match="contrast"):
        TransferConfig(contrast=-2).validate()
    with pytest.raises(ValueError, match="sharpness"):
        TransferConfig(sharpness=float("nan")).validate()


def test_style_scale_resizes_the_style(vgg):
    cfg = TransferConfig(style_scale=0.5, style_layers=("conv2_1",))
    t = prepare_style_targets("starry_night", vgg, cfg, 96, "cpu")[0].grams["conv2_1"]
    f = vgg(pil_to_tensor(load_image(control.__file__.replace("control.py", "data/starry_night.jpg"), 48)), ["conv2_1"])["conv2_1"]
    f = f[0].reshape(f.shape[1], -1)
    torch.testing.assert_close(t[0], f @ f.T / f.numel(), rtol=1e-4, atol=1e-3)


# -------------------------------------------------------------------------------------------- masks
def test_outside_the_mask_stays_close_to_the_photo(photo):
    """Masked Grams alone (no compositing): the style acts inside; outside only VGG's receptive fields leak a
    little of it across the edge."""
    w, h = photo.size
    left = control.rectangle_mask(w, h, (0.0, 0.0, 0.5, 1.0))
    r = run_style_transfer(photo, "starry_night", mask=control.Mask(left, composite=False), **dict(RUN, steps=30))
    d = (r.tensor - pil_to_tensor(photo)).abs().mean(dim=1)[0]
    inside, far_outside = float(d[:, : w // 2].mean()), float(d[:, 3 * w // 4:].mean())
    assert inside > 0.05
    assert far_outside < 0.3 * inside


def test_mask_composite_keeps_the_photo_where_black(photo):
    w, h = photo.size
    m = control.ellipse_mask(w, h, feather=2)
    r = run_style_transfer(photo, "starry_night", mask=m, **dict(RUN, steps=10))
    p = pil_to_tensor(photo)
    black, white = (m == 0).expand_as(p), (m == 1).expand_as(p)
    assert black.any() and white.any()
    torch.testing.assert_close(r.tensor[black], p[black], rtol=0, atol=1e-6)     # the photo, exactly
    assert float((r.tensor[white] - p[white]).abs().mean()) > 0.03                # stylized inside


def test_region_targets_give_complementary_masks(vgg, photo):
    w, h = photo.size
    m = control.ellipse_mask(w, h, feather=2)
    ts = control.region_targets(vgg, "starry_night", m, TransferConfig(), SIZE, w, h, outside="great_wave")
    assert len(ts) == 2
    torch.testing.assert_close(ts[0].mask + ts[1].mask, torch.ones(1, 1, h, w))
    r = run_style_transfer(photo, None, style_targets=ts, **dict(RUN, steps=5))
    assert r.image.size == (w, h)


def test_mask_feather_invert_and_resize():
    arr = np.zeros((20, 30), np.uint8)
    arr[:, :15] = 255
    m = control.load_mask(Image.fromarray(arr), (60, 40))
    assert m.shape == (1, 1, 40, 60) and float(m[..., :, :28].min()) == 1.0 and float(m[..., :, 32:].max()) == 0.0
    soft = control.load_mask(arr, (60, 40), feather=3)
    assert 0.2 < float(soft[0, 0, 20, 30]) < 0.8                          # the edge is soft
    inv = control.load_mask(arr > 0, (60, 40), invert=True)
    torch.testing.assert_close(inv, 1 - m)
    rgba = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (0, 0, 15, 20))
    torch.testing.assert_close(control.load_mask(rgba, (60, 40)), m)      # alpha channel = the mask


@pytest.mark.parametrize("src, message", [
    (np.zeros((30, 30)), "aspect"),
    (Image.new("RGB", (48, 32), (255, 0, 0)), "colour image"),
    (Image.new("CMYK", (48, 32)), "mode CMYK"),
    (np.full((32, 48), 2.0), r"\[0, 1\]"),
    (np.zeros((32, 48, 3)), "one channel"),
    ("no/such/mask.png", "file not found"),
])
def test_mask_errors_are_one_clear_line(src, message):
    with pytest.raises(ImageError, match=message) as e:
        control.load_mask(src, (48, 32))
    assert "\n" not in str(e.value) and "mask" in str(e.value)


def test_cli_mask_and_control_flags(tmp_path, photo):
    from nstedu.cli import main

    Image.new("L", photo.size, 255).save(tmp_path / "m.png")
    out = tmp_path / "o.png"
    rc = main(["stylize", "chelsea", "starry_night", "-o", str(out), "--size", str(SIZE), "--steps", "3", "-q",
               "--mask", str(tmp_path / "m.png"), "--mask-invert", "--mask-feather", "2", "--style-strength", "60%",
               "--preserve-colors", "histogram", "--contrast", "0.2", "--sharpness", "0.1"])
    assert rc == 0 and Image.open(out).size == photo.size
    Image.new("L", (10, 40), 255).save(tmp_path / "bad.png")
    assert main(["stylize", "chelsea", "starry_night", "-o", str(out), "--size", str(SIZE), "--steps", "3", "-q",
                 "--mask", str(tmp_path / "bad.png")]) == 2
