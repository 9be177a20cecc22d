"""Headless tests of the playground (nstedu.widgets): controls -> engine settings, live preview, Stop, uploads.

They press the real buttons with ``Button.click()`` and run the real engine on 64 px images for a few steps.
They also pass with ipywidgets 7.7 (Colab's version): ``PYTHONPATH=<dir with ipywidgets 7.7.1> pytest tests/test_widgets.py``.
"""
import base64
import io
import re
import threading
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

ipywidgets = pytest.importorskip("ipywidgets", reason="the playground needs ipywidgets (pip install -e '.[notebooks]')")

from nstedu import transfer
from nstedu.config import TransferConfig
from nstedu.images import tensor_to_pil
from nstedu.widgets import PRESETS, Playground, png_bytes, uploaded_files

IPYWIDGETS_7 = ipywidgets.__version__.startswith("7.")


@pytest.fixture
def calls(monkeypatch):
    """Record every call that reaches the engine and the images it reports to the callback (and still run it)."""
    recorded = []
    real = transfer.run_style_transfer

    def spy(content, style=None, **kwargs):
        call = dict(content=content, style=style, reported=[], **kwargs)
        recorded.append(call)
        callback = kwargs["callback"]

        def record(info):
            call["reported"].append((info.step, tensor_to_pil(info.image)))
            callback(info)

        return real(content, style, **{**kwargs, "callback": record})

    monkeypatch.setattr(transfer, "run_style_transfer", spy)
    return recorded


def make(tmp_path, **kw):
    kw = {"size": 64, "steps": 5, "preview_every": 2, "device": "cpu", "background": False, "output_dir": tmp_path, **kw}
    return Playground(**kw)


def upload(widget, name, data):
    """Put a file into a FileUpload the way the browser does, in the value format of the installed ipywidgets."""
    if IPYWIDGETS_7:
        widget.set_trait("value", {name: {"metadata": {"name": name, "type": "", "size": len(data)}, "content": data}})
    else:
        widget.value = ({"name": name, "type": "", "size": len(data), "content": memoryview(data),
                         "last_modified": datetime.now(timezone.utc)},)


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_uploaded_files_reads_both_ipywidgets_formats():
    v7 = {"a.png": {"metadata": {"name": "a.png", "size": 3}, "content": b"abc"}}
    v8 = ({"name": "b.jpg", "type": "image/jpeg", "size": 2, "content": memoryview(b"xy"), "last_modified": 0},)
    assert uploaded_files(v7) == [("a.png", b"abc")]
    assert uploaded_files(v8) == [("b.jpg", b"xy")]
    assert uploaded_files({}) == [] and uploaded_files(()) == []


def test_run_updates_preview_live_and_the_loss_falls(tmp_path, calls):
    pg = make(tmp_path)
    start_preview, start_plot = pg.preview.value, pg.loss_plot.value
    assert decode(start_preview).shape[:2] == (round(300 * 64 / 451), 64)  # the photo (chelsea, 451×300) at 64 px
    shown = []   # (step, preview) whenever the progress bar moves; the preview is updated just before it
    pg.progress.observe(lambda ch: shown.append((ch["new"], bytes(pg.preview.value))), names="value")

    pg.run_button.click()

    result = pg.result
    assert len(calls) == 1 and result is not None and result.stop_reason == "finished"
    assert result.history["total"][-1] < result.history["total"][0]
    reported = calls[0]["reported"]
    assert [step for step, _ in reported] == [step for step, _ in shown] == [2, 4, 5]   # every 2 steps and the last
    for (_, image), (_, preview) in zip(reported, shown):       # the preview showed each reported image live
        np.testing.assert_array_equal(decode(preview), np.asarray(image))
    assert pg.preview.value != start_preview
    np.testing.assert_array_equal(decode(pg.preview.value), np.asarray(result.image))
    assert pg.loss_plot.value != start_plot and pg.progress.value == 5
    assert "finished" in pg.status.value
    assert not pg.running and not pg.run_button.disabled and pg.stop_button.disabled and not pg.save_button.disabled
    assert len(pg.gallery.children) == 1 and len(pg.gallery_entries) == 1

    path = pg.save()
    assert path == tmp_path / "playground_001.png" and path.is_file()
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(result.image))
    link = re.search(r'href="data:image/png;base64,([^"]+)"', pg.download.value)
    assert link and base64.b64decode(link.group(1)) == path.read_bytes()


def test_every_control_reaches_the_engine(tmp_path, calls):
    pg = make(tmp_path, steps=3)
    assert dict(zip(pg.settings()["style_layers"], pg.settings()["style_layer_weights"])) == pytest.approx(
        TransferConfig().layer_weights())                             # the sliders start at the engine's w_l
    pg.content.value = "astronaut"
    pg.style_rows["great_wave"][0].value = True                   # starry_night (ticked) + great_wave
    pg.style_rows["starry_night"][1].value = 0.75
    pg.style_rows["great_wave"][1].value = 0.25
    pg.content_weight.value = 2.0
    pg.style_weight.value = 5e3
    pg.tv_on.value = False
    pg.style_strength.value = 0.8
    pg.layer_rows["relu5_1"][0].value = False
    pg.layer_rows["relu1_1"][1].value = 0.5
    pg.content_layer.value = "relu3_2"
    pg.optimizer.value = "adam"
    assert pg.lr.value == pytest.approx(0.02)                      # switching optimizer sets its usual step size
    pg.lr.value = 0.05
    pg.init.value = "noise"
    pg.pooling.value = "avg"
    pg.seed.value = 7
    pg.size.value = 96
    assert "4.0e-04" in pg.ratio.value                             # α/β = 2 / 5000

    pg.run_button.click()

    (call,) = calls
    assert call["content"] == "astronaut" and call["style"] == ["starry_night", "great_wave"]
    expected = dict(size=96, steps=3, content_weight=2.0, style_weight=5e3, tv_weight=0.0, style_strength=0.8,
                    preserve_colors=None, content_layers=("relu3_2",), style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
                    optimizer="adam", lr=0.05, init="noise", pooling="avg", seed=7, style_blend=[0.75, 0.25])
    for key, value in expected.items():
        assert call[key] == value, key
    assert call["style_layer_weights"] == pytest.approx([0.5 / 1.2, 0.2 / 1.2, 0.2 / 1.2, 0.3 / 1.2])  # from the defaults
    assert call["callback_every"] == 2 and callable(call["should_stop"]) and call["progress"] is False
    assert max(pg.result.image.size) == 96 and pg.result.config.pooling == "avg"


@pytest.mark.parametrize("choice, engine_value", [("off", None), ("luminance", "luminance"), ("histogram", "histogram")])
def test_preserve_colour_choices(tmp_path, choice, engine_value):
    pg = make(tmp_path)
    pg.preserve_colors.value = choice
    assert pg.settings()["preserve_colors"] == engine_value


def test_stop_ends_a_background_run_and_keeps_the_best_image(tmp_path):
    pg = make(tmp_path, steps=300, preview_every=1, background=True)
    first_step = threading.Event()
    pg.progress.observe(lambda ch: ch["new"] > 0 and first_step.set(), names="value")

    pg.run_button.click()
    thread = pg._thread
    assert pg.running and pg.run_button.disabled and not pg.stop_button.disabled
    assert first_step.wait(60), "no step reported within 60 s"
    pg.stop_button.click()
    pg.wait(60)

    assert not thread.is_alive() and not pg.running
    result = pg.result
    assert result.stop_reason == "stopped" and 1 <= len(result.history["step"]) < 300
    assert result.best_loss == min(result.history["total"])
    np.testing.assert_array_equal(decode(pg.preview.value), np.asarray(result.image))
    assert "stopped" in pg.status.value and pg.error.value == ""
    assert not pg.run_button.disabled and pg.stop_button.disabled


def test_invalid_upload_shows_an_error_in_the_widget(tmp_path):
    pg = make(tmp_path)
    options = list(pg.content.options)
    upload(pg.content_upload, "notes.txt", b"this is not an image")   # must not raise
    assert "notes.txt" in pg.error.value and "not an image" in pg.error.value
    assert pg.error.layout.display != "none"
    assert list(pg.content.options) == options and pg.content.value == "chelsea"

    upload(pg.style_upload, "broken.png", png_bytes(Image.new("RGB", (40, 30), "red"))[:50])
    assert "broken.png" in pg.error.value

    upload(pg.content_upload, "red.png", png_bytes(Image.new("RGB", (40, 30), "red")))
    assert pg.content.value == "upload: red.png" and pg.error.value == "" and pg.error.layout.display == "none"
    assert decode(pg.preview.value)[0, 0].tolist() == [255, 0, 0]


def test_uploaded_style_is_ticked_and_sent_as_an_image(tmp_path, calls):
    pg = make(tmp_path, steps=2)
    upload(pg.style_upload, "blue.png", png_bytes(Image.new("RGB", (50, 50), (0, 0, 255))))
    assert pg.style_rows["upload: blue.png"][0].value
    pg.style_rows["starry_night"][0].value = False
    pg.run_button.click()
    style = calls[0]["style"]
    assert isinstance(style, Image.Image) and style.getpixel((0, 0)) == (0, 0, 255)


def test_bad_settings_show_an_error_instead_of_running(tmp_path, calls):
    pg = make(tmp_path)
    for cb, _ in pg.layer_rows.values():
        cb.value = False
    pg.run_button.click()
    assert calls == [] and "style layer" in pg.error.value and not pg.running
    pg.reset()
    pg.style_rows["starry_night"][0].value = False
    pg.run_button.click()
    assert calls == [] and "style image" in pg.error.value
    pg.save_button.click()                                          # nothing to save yet: an error, not a crash
    assert "nothing to save" in pg.error.value


def test_presets_reset_and_gallery_restore(tmp_path):
    pg = make(tmp_path, steps=2)
    for name, ratio in (("subtle", "5.0e-03"), ("balanced", "1.0e-03"), ("bold", "5.0e-04")):
        pg.preset_buttons[name].click()
        assert ratio in pg.ratio.value
        for key, value in PRESETS[name].items():
            assert pg.settings()[key] == value
    pg.reset_button.click()
    assert pg.settings() == make(tmp_path / "fresh", steps=2).settings()

    pg.style_weight.value = 3e2
    pg.run_button.click()
    first = pg.settings()
    pg.style_weight.value = 4e3
    pg.layer_rows["relu1_1"][0].value = False
    pg.run_button.click()
    assert len(pg.gallery.children) == 2
    older = pg.gallery.children[1]                                  # newest first
    assert "#1" in older.children[1].value
    older.children[2].click()                                       # "use these settings"
    assert pg.settings() == first


def test_images_given_by_path_or_pil_become_choices(tmp_path):
    from nstedu import samples

    photo = Image.new("RGB", (80, 60), (0, 255, 0))
    pg = make(tmp_path, content=photo, style=["great_wave", str(samples.path("shipwreck"))])
    content, style = pg.inputs()
    assert content is pg._uploads[pg.content.value] and content.getpixel((0, 0)) == (0, 255, 0)
    assert style[0] == "great_wave" and isinstance(style[1], Image.Image)
    assert pg.content.value == "upload: content" and "upload: shipwreck.jpg" in pg.style_rows
