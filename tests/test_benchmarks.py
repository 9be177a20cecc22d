"""The benchmark scripts stay runnable: they import, their helpers compute what they claim, and the multi-scale
time-to-quality table comes out complete in quick mode (a broken import once went unnoticed until `make bench`)."""
import importlib
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH.glob("bench_*.py")))
def test_benchmark_imports_and_has_main(name):
    module = importlib.import_module(name)
    assert callable(getattr(module, "main", None)), f"{name}.py has no main()"


def test_write_section_replaces_only_its_own_block(tmp_path, monkeypatch):
    import _results

    monkeypatch.setattr(_results, "RESULTS", tmp_path / "RESULTS.md")
    _results.write_section("a", "first")
    _results.write_section("b", "other")
    _results.write_section("a", "second")
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.count("<!-- a:start -->") == 1 and "second" in text and "first" not in text
    assert text.index("## a") < text.index("## b") and "other" in text


def test_multiscale_helpers_against_hand_values():
    import bench_multiscale as B

    assert B.parse_schedule("256:100,512:200") == ([256, 512], [100, 200])
    assert B.running_min([5, 3, 4, 1, 2]) == [5, 3, 3, 1, 1]
    times, losses = [1.0, 2.0, 3.0, 4.0], [10.0, 8.0, 9.0, 6.0]
    assert B.time_to_reach(times, losses, 8.0) == 2.0
    assert B.time_to_reach(times, losses, 7.0) == 4.0
    assert B.time_to_reach(times, losses, 5.0) is None


@pytest.mark.slow  # minutes on a CPU: make test-slow (CI)
def test_multiscale_quality_quick_table(capsys):
    import bench_multiscale as B

    B.main(["--quick", "--part", "quality"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| run")]
    assert [r.split("|")[1].strip().split(" ")[0] for r in rows] == ["single-scale", "multi-scale", "bound:"]
    single_loss = float(rows[0].split("|")[4])
    target = re.search(r"L\* = ([0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?)", out)  # 1.2e+08 or 358.7
    assert target and abs(float(target[1]) - single_loss) <= 0.01 * single_loss  # the re-scored image is 8-bit


FAKE_PEER = '''
import argparse
p = argparse.ArgumentParser()
for a in ("-content_image", "-style_image", "-image_size", "-gpu", "-backend", "-model_file", "-output_image",
          "-save_iter", "-print_iter", "-seed", "-num_iterations"):
    p.add_argument(a)
p.add_argument("-disable_check", action="store_true")
a = p.parse_args()
assert "vgg19" in a.model_file and a.gpu == "c" and a.disable_check
from PIL import Image
Image.open(a.content_image).convert("RGB").resize((int(a.image_size), int(a.image_size))).save(a.output_image)
'''


@pytest.mark.slow  # minutes on a CPU: make test-slow (CI)
def test_quality_quick_table_matches_its_images(tmp_path, capsys, vgg):
    """bench_quality --quick with a stand-in peer (it returns the photo): the table has every pair × α/β and the
    peer, its numbers are nstedu.metrics of the saved images, and the peer weights are the Caffe VGG-19."""
    import json

    import bench_quality as B
    import torch

    from nstedu import metrics
    from nstedu.vgg import load_caffe_state_dict

    (tmp_path / "peer").mkdir()
    (tmp_path / "peer" / "neural_style.py").write_text(FAKE_PEER)
    B.main(["--quick", "--peer", str(tmp_path / "peer"), "--out-dir", str(tmp_path / "out"), "--device", "cpu"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "×" in line]
    assert len(rows) == 2 * 4 and sum("neural-style-pt" in r for r in rows) == 2
    records = json.loads((tmp_path / "out" / "quality.json").read_text())
    photo, painting = B.PAIRS[0]
    rec = records[B.key("nstedu", photo, painting, 1e-3, 64)]
    q = metrics.measure(rec["image"], B.samples.path(photo), B.image_path(painting), vgg)
    assert q.content == pytest.approx(rec["content"]) and q.layers == pytest.approx(rec["layers"])
    peer = records[B.key("peer", photo, painting, None, 64)]
    assert peer["content"] < 0.2  # the stand-in returned the (resized) photo itself
    assert "ordering" in out and "against neural-style-pt (2 pairs)" in out
    sd = torch.load(B.peer_weights(tmp_path), weights_only=True)
    assert torch.equal(sd["features.0.weight"], load_caffe_state_dict()["conv1_1.weight"])
    assert torch.equal(sd["features.34.bias"], load_caffe_state_dict()["conv5_4.bias"])
