"""Fast style transfer (nstedu.fast): shapes, training, checkpoints, resume, bad files, the shipped model, CLI.

Tiny networks (width 4, one residual block) on 32 px crops keep the whole file to a few seconds.
"""
import pytest
import torch
from PIL import Image

from nstedu import losses as L
from nstedu import samples
from nstedu.fast import (FastStylizer, PerceptualLoss, PhotoCrops, TransformerNet, export_model, init_net,
                         training_photos, train_fast)
from nstedu.images import pil_to_tensor
from nstedu.vgg import WeightsError

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions gain nothing from threads, and on a busy 2-core machine two threads made this file 10×
    slower (each op waits for the slower core)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = dict(size=32, batch_size=2, width=4, res_blocks=1, lr=1e-2, style_weight=20.0, device="cpu", progress=False)


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (17, 31), (33, 64), (64, 48)])
def test_network_keeps_any_size(hw):
    net = TransformerNet(width=4, res_blocks=1)
    x = torch.rand(2, 3, *hw)
    assert net(x).shape == x.shape


def test_stylizer_keeps_odd_image_size():
    stylizer = FastStylizer(init_net(4, 1), device="cpu")
    out = stylizer(Image.new("RGB", (37, 23), (200, 30, 90)))
    assert isinstance(out, Image.Image) and out.size == (37, 23)


def test_init_net_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a, b = init_net(4, 1, seed=7), init_net(4, 1, seed=7)
    assert torch.rand(1) == expected
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def _fixed_batch_loss(vgg, net, style_weight):
    crops = PhotoCrops(training_photos(), 32, torch.Generator().manual_seed(99))
    x = crops(4)
    style = pil_to_tensor(samples.load("starry_night", 32))
    grams = {k: L.gram_matrix(v) for k, v in vgg(style, L.DEFAULT_STYLE_LAYERS).items()}
    loss = PerceptualLoss(vgg, grams, L.DEFAULT_CONTENT_LAYERS, 1.0, style_weight, 1e2)
    with torch.no_grad():
        return float(loss(net(x), x)[0])


def test_training_lowers_the_perceptual_loss(vgg):
    before = _fixed_batch_loss(vgg, init_net(4, 1, seed=0), 20.0)
    result = train_fast("starry_night", steps=12, seed=0, **TINY)
    after = _fixed_batch_loss(vgg, result.stylizer.net, 20.0)
    assert after < 0.5 * before, (before, after)
    h = result.history
    assert h["step"] == list(range(1, 13)) and len(h["total"]) == 12
    assert sum(h["total"][-3:]) < sum(h["total"][:3])


def test_saved_model_reloads_to_identical_outputs(tmp_path):
    result = train_fast("starry_night", steps=2, checkpoint=tmp_path / "m.pth", **TINY)
    x = torch.rand(1, 3, 29, 41)
    expected = result.stylizer.stylize_tensor(x)
    assert torch.equal(FastStylizer.load(tmp_path / "m.pth", "cpu").stylize_tensor(x), expected)
    small = export_model(tmp_path / "m.pth", tmp_path / "small.pth")
    assert small.stat().st_size < (tmp_path / "m.pth").stat().st_size
    loaded = FastStylizer.load(str(small), "cpu")
    assert torch.equal(loaded.stylize_tensor(x), expected)
    assert loaded.meta["style"] == "starry_night" and loaded.meta["steps_trained"] == 2


def test_resume_continues_from_the_checkpoint_step(tmp_path):
    ck = tmp_path / "ck.pth"
    first = train_fast("starry_night", steps=3, checkpoint=ck, **TINY)
    assert first.history["step"] == [1, 2, 3]
    resumed = train_fast("starry_night", steps=5, checkpoint=ck, **TINY)
    assert resumed.history["step"] == [1, 2, 3, 4, 5]
    assert resumed.history["total"][:3] == first.history["total"]
    straight = train_fast("starry_night", steps=5, checkpoint=tmp_path / "straight.pth", **TINY)
    assert resumed.history["total"] == straight.history["total"]  # same crops, same optimizer state
    for p, q in zip(resumed.stylizer.net.parameters(), straight.stylizer.net.parameters()):
        assert torch.equal(p, q)
    fresh = train_fast("starry_night", steps=1, checkpoint=ck, resume=False, **TINY)
    assert fresh.history["step"] == [1]
    with pytest.raises(ValueError, match="different style_weight"):
        train_fast("starry_night", steps=6, checkpoint=ck, **dict(TINY, style_weight=1.0))


def test_bad_model_files_give_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="missing.pth.*not found"):
        FastStylizer.load(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a model" * 10)
    with pytest.raises(WeightsError, match="garbage.pth.*not a readable PyTorch file"):
        FastStylizer.load(garbage)
    wrong = tmp_path / "wrong_keys.pth"
    torch.save({"conv1_1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="wrong_keys.pth.*not an nstedu fast-style model"):
        FastStylizer.load(wrong)
    mismatch = tmp_path / "mismatch.pth"
    torch.save({"format": "nstedu-fast-style", "net": {"width": 8, "res_blocks": 1},
                "state_dict": init_net(4, 1).state_dict()}, mismatch)
    with pytest.raises(WeightsError, match="mismatch.pth.*do not fit"):
        FastStylizer.load(mismatch)
    with pytest.raises(WeightsError) as info:
        FastStylizer.load(garbage)
    assert "\n" not in str(info.value)  # one line, fit for the CLI


def test_training_photos_from_a_folder(tmp_path):
    with pytest.raises(ValueError, match="no image files"):
        training_photos(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        training_photos(tmp_path / "nope")
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (40, 30), "red").save(tmp_path / "a.png")
    Image.new("RGB", (20, 50), "blue").save(tmp_path / "sub" / "b.JPG")
    found = training_photos(tmp_path)
    assert [p.name for p in found] == ["a.png", "b.JPG"]
    batch = PhotoCrops(found, 16, torch.Generator().manual_seed(0))(3)
    assert batch.shape == (3, 3, 16, 16) and 0 <= batch.min() and batch.max() <= 1


def test_shipped_model_stylizes_towards_the_style(vgg):
    stylizer = FastStylizer.load("starry_night", "cpu")
    photo = samples.load("grace_hopper", 128)
    out = stylizer(photo)
    assert out.size == photo.size
    x, y = pil_to_tensor(photo), pil_to_tensor(out)
    assert (x - y).abs().mean() > 0.05
    style = pil_to_tensor(samples.load("starry_night", 128))
    grams = {k: L.gram_matrix(v) for k, v in vgg(style, L.DEFAULT_STYLE_LAYERS).items()}
    before = float(L.style_loss(vgg(x, L.DEFAULT_STYLE_LAYERS), grams))
    after = float(L.style_loss(vgg(y, L.DEFAULT_STYLE_LAYERS), grams))
    assert after < 0.5 * before, (before, after)


def test_cli_fast_and_fast_train(tmp_path, capsys):
    from nstedu.cli import main

    out = tmp_path / "out.png"
    assert main(["fast", "chelsea", "--model", "starry_night", "-o", str(out), "--size", "48"]) == 0
    assert Image.open(out).size == (48, 32)
    model = tmp_path / "m.pth"
    args = ["fast-train", "starry_night", "--out", str(model), "--size", "32", "--batch-size", "1", "--width", "4",
            "--res-blocks", "1", "-q", "--device", "cpu", "--export", str(tmp_path / "small.pth")]
    assert main(args + ["--steps", "2"]) == 0
    assert main(args + ["--steps", "3"]) == 0
    assert "step 3/3" in capsys.readouterr().out
    assert main(["fast", "chelsea", "--model", str(tmp_path / "small.pth"), "-o", str(out), "--size", "40"]) == 0
    assert main(["fast", "chelsea", "--model", str(tmp_path / "nope.pth"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nope.pth" in err and "not found" in err and err.count("\n") == 1


def test_unreadable_training_images_are_skipped_with_a_warning(tmp_path):
    Image.new("RGB", (40, 30), "red").save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    crops = PhotoCrops(training_photos(tmp_path), 16, torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match="broken.jpg"):
        batch = crops(6)
    assert batch.shape == (6, 3, 16, 16)
    (tmp_path / "good.png").unlink()
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="none of the 2 training images"):
        PhotoCrops(training_photos(tmp_path) + [tmp_path / "good.png"], 16, torch.Generator())(1)


def test_training_half_is_reachable_from_nstedu_fast_and_the_cli():
    import nstedu.fast as fast
    from nstedu import cli
    from nstedu.fast import network, training

    for name in ("PhotoCrops", "training_photos", "PerceptualLoss", "FastConfig", "FastTraining", "train_fast",
                 "export_model"):
        assert getattr(fast, name) is getattr(training, name), name
    for name in ("TransformerNet", "FastStylizer", "init_net", "load_net", "save_model", "available_models"):
        assert getattr(fast, name) is getattr(network, name), name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        fast.nope
    with pytest.warns(DeprecationWarning, match="nstedu.fast_train is deprecated"):
        import importlib
        import sys

        sys.modules.pop("nstedu.fast_train", None)
        old = importlib.import_module("nstedu.fast_train")
    assert old.train_fast is fast.train_fast and old.FastConfig is fast.FastConfig
    assert cli.COMMANDS["fast-train"].run is cli._run_fast_train and cli.COMMANDS["fast"].run is cli._run_fast


def test_perceptual_loss_is_the_engines_objective_averaged_over_the_batch(vgg):
    """PerceptualLoss on a batch of two = the mean of the engine's Objective on each image (independently built)."""
    from nstedu.config import TransferConfig
    from nstedu.objective import Objective, StyleTarget

    g = torch.Generator().manual_seed(5)
    photos, outputs = torch.rand(2, 3, 24, 32, generator=g), torch.rand(2, 3, 24, 32, generator=g)
    grams = {k: L.gram_matrix(v) for k, v in vgg(torch.rand(1, 3, 32, 32, generator=g), L.DEFAULT_STYLE_LAYERS).items()}
    total, parts = PerceptualLoss(vgg, grams, L.DEFAULT_CONTENT_LAYERS, 1.0, 20.0, 1e2)(outputs, photos)
    cfg = TransferConfig(content_weight=1.0, style_weight=20.0, tv_weight=1e2)
    singles = [Objective(vgg, photos[i:i + 1], [StyleTarget(grams)], cfg, relative=False)(outputs[i:i + 1])
               for i in range(2)]
    for k in ("total", "content", "style", "tv"):
        expect = (float(singles[0][1][k]) + float(singles[1][1][k])) / 2
        assert float(parts[k]) == pytest.approx(expect, rel=1e-5), k
    assert float(total) == pytest.approx(float(parts["total"]))
