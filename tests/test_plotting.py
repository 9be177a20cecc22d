"""Figures draw what they are given: the plotted data is compared with the inputs."""
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
