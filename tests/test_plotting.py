"""Figures draw what they are given: the plotted data is compared with the inputs."""
import json
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from nstedu import plotting  # noqa: E402


def history(n=5, tv=True):
    return {"step": list(range(1, n + 1)), "time": [0.1 * i for i in range(1, n + 1)],
            "total": [10.0 / i for i in range(1, n + 1)], "content": [1.0 + i for i in range(n)],
            "style": [5.0 / i for i in range(1, n + 1)], "tv": [0.5] * n if tv else [0.0] * n}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_plot_history_draws_each_nonzero_term():
    h = history(tv=False)
    fig = plotting.plot_history(h)
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["total loss", "content loss", "style loss"]  # tv is all zero: skipped
    line = fig.axes[2].lines[0]
    assert list(line.get_xdata()) == h["step"] and list(line.get_ydata()) == h["style"]
    assert fig.axes[0].get_yscale() == "log"


def test_plot_history_compares_runs_against_time():
    class Result:  # anything with a .history, like StyleTransferResult
        def __init__(self, h):
            self.history = h

    a, b = history(), history(3)
    fig = plotting.plot_history({"A": Result(a), "B": b}, terms=("total",), x="time")
    lines = fig.axes[0].lines
    assert [ln.get_label() for ln in lines] == ["A", "B"]
    assert list(lines[1].get_xdata()) == b["time"]
    assert fig.axes[0].get_legend() is not None
    with pytest.raises(ValueError, match="x must be"):
        plotting.plot_history(a, x="epoch")
    with pytest.raises(TypeError, match="StyleTransferResult"):
        plotting.plot_history([1, 2, 3])


def test_plot_history_into_given_axes():
    fig, ax = plt.subplots()
    assert plotting.plot_history(history(), terms=("total",), ax=ax) is fig


def test_feature_maps_grid():
    f = torch.randn(1, 10, 4, 6)
    fig = plotting.feature_maps(f, n=6, cols=3, title="conv1_1")
    images = [a.images[0].get_array() for a in fig.axes if a.images]
    assert len(images) == 6
    assert np.allclose(images[4], f[0, 4].numpy())
    fig = plotting.feature_maps(f[0], channels=[9, 2])
    assert np.allclose(fig.axes[0].images[0].get_array(), f[0, 9].numpy())
    with pytest.raises(ValueError, match="expected"):
        plotting.feature_maps(torch.randn(4, 6))


def test_gram_heatmap_shows_the_top_left_block():
    g = torch.randn(1, 40, 40)
    fig = plotting.gram_heatmap(g, n=8, title="G")
    assert np.allclose(fig.axes[0].images[0].get_array(), g[0, :8, :8].numpy())
    with pytest.raises(ValueError, match="expected"):
        plotting.gram_heatmap(torch.randn(3, 4))


def test_image_grid_titles_and_layout():
    imgs = [Image.new("RGB", (8, 6), (255, 0, 0)), torch.zeros(1, 3, 6, 8), Image.new("RGB", (8, 6))]
    fig = plotting.image_grid(imgs, titles=["a", "b", "c"], cols=2, row_labels=["r1", "r2"])
    assert len(fig.axes) == 4
    assert [a.get_title() for a in fig.axes[:3]] == ["a", "b", "c"]
    assert fig.axes[0].get_ylabel() == "r1" and fig.axes[2].get_ylabel() == "r2"
    assert fig.axes[0].images[0].get_array()[0, 0].tolist() == [255, 0, 0]
    assert not fig.axes[3].images


# ---------------------------------------------------------------------------------------- weighted history
def test_weighted_history_terms_add_up_to_the_total():
    from nstedu.transfer import TransferConfig

    class Result:
        config = TransferConfig(content_weight=2.0, style_weight=1e3, tv_weight=10.0)
        history = history()

    h = Result.history
    h["total"] = [2.0 * c + 1e3 * s + 10.0 * t for c, s, t in zip(h["content"], h["style"], h["tv"])]
    fig = plotting.plot_history(Result(), weighted=True)
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["total loss", "α·content", "β·style", "γ·tv"]
    drawn = [np.asarray(a.lines[0].get_ydata()) for a in fig.axes]
    assert np.allclose(drawn[1], [2.0 * v for v in h["content"]]) and np.allclose(drawn[2], [1e3 * v for v in h["style"]])
    assert np.allclose(drawn[1] + drawn[2] + drawn[3], drawn[0])      # the panels add up to the total
    with pytest.raises(TypeError, match="weighted=True needs"):
        plotting.plot_history(h, weighted=True)


def test_gram_heatmaps_can_share_one_colour_scale():
    fig, axes = plt.subplots(1, 2)
    plotting.gram_heatmap(torch.rand(1, 8, 8), ax=axes[0], vmin=0, vmax=3, colorbar=False)
    plotting.gram_heatmap(torch.rand(1, 8, 8) * 3, ax=axes[1], vmin=0, vmax=3, colorbar=False)
    assert axes[0].images[0].get_clim() == axes[1].images[0].get_clim() == (0, 3)


# ---------------------------------------------------------------------------------- full-mode references
def _figure(colour=(255, 0, 0)):
    return plotting.image_grid([Image.new("RGB", (40, 30), colour)] * 3, titles=["a", "b", "c"])


def test_quick_mode_without_a_reference_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NSTEDU_QUICK", "1")
    fig = _figure()
    assert plotting.reference_action("03_texture", root=tmp_path) == "missing"
    assert plotting.full_mode_reference("03_texture", fig, root=tmp_path) is None
    assert "not generated yet" in capsys.readouterr().out
    assert "QUICK MODE" in fig._suptitle.get_text()
    assert plt.get_fignums() == [fig.number]                      # no reference figure was drawn


def test_full_mode_writes_the_reference_and_quick_mode_shows_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NSTEDU_QUICK", raising=False)
    monkeypatch.setenv(plotting.WRITE_REFERENCES_ENV, str(tmp_path))
    assert plotting.reference_action("04_tv") == "written"
    assert plotting.full_mode_reference("04_tv", _figure((0, 0, 255)), "160 px") is None
    path = tmp_path / "04_tv.jpg"
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.width <= plotting.REFERENCE_MAX_WIDTH
        stored = np.asarray(im.convert("RGB"))
    index = __import__("json").loads((tmp_path / "index.json").read_text())
    assert set(index) == {"04_tv"} and index["04_tv"]["nstedu"]
    assert np.abs(stored.reshape(-1, 3).mean(0) - [0, 0, 255]).max() < 200    # blue pictures on white

    monkeypatch.delenv(plotting.WRITE_REFERENCES_ENV)
    assert plotting.reference_action("04_tv") == "full"                       # full mode: the figure is the result
    before = (tmp_path / "04_tv.jpg").read_bytes()
    full = _figure()
    assert plotting.full_mode_reference("04_tv", full) is None
    assert (tmp_path / "04_tv.jpg").read_bytes() == before and full._suptitle is None    # nothing written or marked
    monkeypatch.setenv("NSTEDU_QUICK", "1")
    quick = _figure()
    assert plotting.reference_action("04_tv", root=tmp_path) == "shown"
    # None, like plt.show(): a cell ending with the call shows no stray value (it printed 'shown' on the site)
    assert plotting.full_mode_reference("04_tv", quick, "160 px", root=tmp_path) is None
    ref = plt.figure(plt.get_fignums()[-1])
    assert ref is not quick and "FULL MODE reference: 160 px" in ref._suptitle.get_text()
    assert np.array_equal(np.asarray(ref.axes[0].images[0].get_array()), stored)
    assert "QUICK MODE" in quick._suptitle.get_text()
    with pytest.raises(ValueError, match="plain file stem"):
        plotting.reference_path("../evil")


def _reference_names_in_notebooks():
    import re
    from pathlib import Path

    import nbformat

    root = Path(__file__).resolve().parents[1]
    names = []
    for path in sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "solutions").glob("*.ipynb")):
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        names += re.findall(r'full_mode_reference\(\s*"([^"]+)"', text)
    return names


def test_shipped_references_are_small_and_each_belongs_to_a_notebook_call():
    names = _reference_names_in_notebooks()
    assert len(names) == len(set(names)) and len(names) > 20, "every reference name is used once"
    files = sorted(plotting.REFERENCE_DIR.glob("*.jpg"))
    assert sum(f.stat().st_size for f in files) <= 2 * 2 ** 20, "references must stay under 2 MB in all"
    assert {f.stem for f in files} <= set(names), "a reference no notebook shows any more"
    missing = set(names) - {f.stem for f in files}
    assert not missing, f"quick mode would say 'reference not generated yet' for {sorted(missing)}: make references"
    index = json.loads((plotting.REFERENCE_DIR / "index.json").read_text())
    assert set(index) == set(names), "index.json records each shipped reference"
    for name in names:
        plotting.reference_path(name)          # valid names
