"""Coarse-to-fine (nstedu.multiscale): level sizes, step split, L-BFGS memory, output size and continuity."""
import pytest
from PIL import Image

from nstedu import multiscale as M
from nstedu.images import load_image
from nstedu.transfer import run_style_transfer


def test_scale_sizes_halve_down_to_the_minimum():
    assert M.scale_sizes(1920) == [240, 480, 960, 1920]
    assert M.scale_sizes(3840) == [240, 480, 960, 1920, 3840]
    assert M.scale_sizes(512) == [256, 512]
    assert M.scale_sizes(512, levels=3) == [128, 256, 512]
    assert M.scale_sizes(150) == [150]
    with pytest.raises(ValueError):
        M.scale_sizes(512, levels=0)


def test_split_steps_gives_each_level_about_the_same_time():
    steps = M.split_steps(300, 4)
    assert steps == [226, 56, 14, 4]
    # evaluations × pixels (∝ 4^k) is about equal per level
    work = [n * 4 ** k for k, n in enumerate(steps)]
    assert max(work) / min(work) < 1.3
    assert M.split_steps(10, 4) == [8, 3, 3, 3]   # never fewer than 3 per level


def test_lbfgs_history_fits_the_memory_budget():
    per_entry_1080 = 2 * 1920 * 1080 * 3 * 4          # two float32 image-sized vectors
    assert M.lbfgs_history_for(1920, 1080) == M.LBFGS_MEMORY // per_entry_1080 == 10
    assert M.lbfgs_history_for(512, 384) == 100        # small images keep the default
    assert M.lbfgs_history_for(3840, 2160) == 3
    assert M.lbfgs_history_for(512, 384, limit=20) == 20


def test_output_has_the_requested_size_and_history_spans_levels():
    levels = []
    r = M.stylize_multiscale("chelsea", "starry_night", size=80, levels=2, steps_per_scale=[6, 4], progress=False,
                             device="cpu", on_level=lambda s, res: levels.append((s, res.image.size)))
    expected = load_image(Image.open(M.__file__.replace("multiscale.py", "data/chelsea.jpg")), 80).size
    assert r.image.size == expected == (80, 53)
    assert [s for s, _ in levels] == [40, 80] and levels[0][1] == (40, 27)
    assert set(r.history["size"]) == {40, 80}
    assert r.history["step"] == list(range(1, len(r.history["step"]) + 1))
    assert r.history["time"] == sorted(r.history["time"])
    assert r.config.size == 80 and "40 → 80" in r.message
    assert r.final_losses()["total"] == r.best_loss


def test_each_level_starts_from_the_previous_result():
    kw = dict(progress=False, device="cpu")
    coarse = run_style_transfer("chelsea", "starry_night", size=40, steps=15, **kw)
    fresh = run_style_transfer("chelsea", "starry_night", size=80, steps=1, **kw)
    cont = run_style_transfer("chelsea", "starry_night", size=80, steps=1, init_image=coarse.image, **kw)
    r = M.stylize_multiscale("chelsea", "starry_night", sizes=[40, 80], steps_per_scale=[15, 1], **kw)
    first_fine = r.history["total"][r.history["size"].index(80)]
    assert first_fine == pytest.approx(cont.history["total"][0], rel=1e-5)
    assert first_fine < fresh.history["total"][0]       # the coarse result is a better start than the photo


def test_bad_arguments():
    with pytest.raises(ValueError, match="increasing"):
        M.stylize_multiscale("chelsea", "starry_night", sizes=[80, 40], progress=False, device="cpu")
    with pytest.raises(ValueError, match="one positive number per level"):
        M.stylize_multiscale("chelsea", "starry_night", sizes=[40, 80], steps_per_scale=[5], progress=False, device="cpu")
    with pytest.raises(ValueError, match="size"):
        M.stylize_multiscale("chelsea", "starry_night", progress=False, device="cpu")


def test_cli_multiscale(tmp_path):
    from nstedu.cli import main

    out = tmp_path / "hd.png"
    assert main(["stylize", "chelsea", "starry_night", "-o", str(out), "--size", "72", "--multiscale", "--levels", "2",
                 "--steps-per-scale", "4,2", "-q"]) == 0
    assert Image.open(out).size == (72, 48)
    assert main(["stylize", "chelsea", "starry_night", "-o", str(out), "--multiscale", "-q"]) == 2  # needs --size
