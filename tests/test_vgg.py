"""VGG-19: the Caffe weights against an independent dequantization, stored feature statistics, truncation,
pooling, weight sources and their errors."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nstedu import samples
from nstedu.images import to_tensor
from nstedu.vgg import (CONV_LAYERS, LAYER_NAMES, VGG19Features, WeightsError, caffe_weights_path, calibrate, get_vgg,
                        load_caffe_state_dict, load_state_dict_file, save_weights)

STATS = Path(__file__).parent / "data" / "vgg_feature_stats.json"


def test_layer_names():
    assert len(LAYER_NAMES) == 37 and LAYER_NAMES[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert LAYER_NAMES[-1] == "pool5" and len(CONV_LAYERS) == 16 and "conv4_2" in CONV_LAYERS


def test_caffe_weights_match_independent_dequantization(vgg):
    raw = torch.load(caffe_weights_path(), map_location="cpu", weights_only=True)
    names = [f"block{b}_conv{i}" for b, n in enumerate((2, 2, 4, 4, 4), 1) for i in range(1, n + 1)]
    assert len(names) == 16
    for ours, key in zip(CONV_LAYERS, names):
        table = raw[key + "_W_table"].numpy()
        idx = raw[key + "_W_q"].numpy()
        expect = np.take(table, idx.astype(np.int64))  # weight = table[index], element by element
        got = vgg.layers[ours].weight.detach().numpy()
        assert got.shape == idx.shape
        np.testing.assert_array_equal(got, expect)
        np.testing.assert_array_equal(vgg.layers[ours].bias.detach().numpy(), raw[key + "_b"].numpy())


def test_input_normalization_is_caffe_convention(vgg):
    x = torch.rand(1, 3, 5, 5)
    bgr = x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    assert torch.allclose(vgg.normalize(x), bgr, atol=1e-4)


def _stats(vgg):
    x = to_tensor(samples.path("grace_hopper"), 64)
    with torch.no_grad():
        feats = vgg(x, ["relu1_1", "relu2_1", "relu3_1", "conv4_2", "relu5_1"])
    return {k: [float(v.mean()), float(v.std()), float(v.abs().max())] for k, v in feats.items()}


def test_feature_statistics_match_stored(vgg):
    """Stored once from this network on a bundled photo; any change of weights, order or normalization breaks it."""
    stored = json.loads(STATS.read_text())
    got = _stats(vgg)
    for layer, vals in stored.items():
        assert got[layer] == pytest.approx(vals, rel=2e-3), layer


def test_stops_at_deepest_requested_layer(vgg, monkeypatch):
    called = []
    for name, module in vgg.layers.items():
        monkeypatch.setattr(module, "forward", (lambda f, n: (lambda x: (called.append(n), f(x))[1]))(module.forward, name))
    out = vgg(torch.rand(1, 3, 32, 32), ["conv1_1", "conv2_1"])
    assert set(out) == {"conv1_1", "conv2_1"}
    ran = [n for n in LAYER_NAMES[: LAYER_NAMES.index("conv2_1") + 1] if not n.startswith("relu")]  # ReLUs run functionally
    assert called == ran


def test_conv_and_relu_both_available(vgg):
    out = vgg(torch.rand(1, 3, 32, 32), ["conv1_1", "relu1_1"])
    assert torch.equal(out["relu1_1"], out["conv1_1"].clamp_min(0))
    assert (out["conv1_1"] < 0).any()  # in-place ReLU did not overwrite the conv output


def test_in_place_relu_gives_same_values_and_gradients(vgg):
    """ReLUs run in place where their conv output is not requested; values and input gradients must not change."""
    x = torch.rand(1, 3, 40, 40, requires_grad=True)
    feats = vgg(x, ["conv1_1", "relu1_2", "conv3_1"])  # relu1_2 follows an unrequested conv1_2: in place
    (feats["relu1_2"].pow(2).sum() + feats["conv3_1"].sum() + feats["conv1_1"].sum()).backward()
    ref = x.detach().clone().requires_grad_(True)
    h, outs = vgg.normalize(ref), {}
    for name, module in vgg.layers.items():  # plain out-of-place reference
        h = module(h)
        outs[name] = h
        if name == "conv3_1":
            break
    (outs["relu1_2"].pow(2).sum() + outs["conv3_1"].sum() + outs["conv1_1"].sum()).backward()
    assert torch.allclose(feats["relu1_2"], outs["relu1_2"]) and torch.allclose(feats["conv1_1"], outs["conv1_1"])
    assert (feats["conv1_1"] < 0).any()
    assert torch.allclose(x.grad, ref.grad, rtol=1e-4, atol=1e-4)


def test_block1_checkpointing_same_features_and_gradients(vgg, monkeypatch):
    """Large images recompute block 1 in the backward pass; features and input gradients must not change."""
    layers = ["conv1_1", "relu1_2", "conv2_1", "conv4_2"]

    def run():
        x = torch.linspace(0, 1, 3 * 48 * 40).view(1, 3, 48, 40).requires_grad_(True)
        f = vgg(x, layers)
        sum((v * v).mean() for v in f.values()).backward()
        return {k: v.detach() for k, v in f.items()}, x.grad

    ref_feats, ref_grad = run()
    monkeypatch.setattr(vgg, "checkpoint_pixels", 100)
    calls = []
    import nstedu.vgg as V

    real = V.checkpoint
    monkeypatch.setattr(V, "checkpoint", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    feats, grad = run()
    assert calls, "checkpointing was not used"
    for k in layers:
        assert torch.allclose(feats[k], ref_feats[k], rtol=1e-5, atol=1e-4), k
    assert torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-6)


def test_frozen_and_eval(vgg):
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training


def test_avg_pooling_differs_and_is_average():
    avg = get_vgg("caffe", "cpu", "avg")
    assert isinstance(avg.layers["pool1"], torch.nn.AvgPool2d)
    x = torch.rand(1, 3, 16, 16)
    a = avg(x, ["relu1_2", "pool1"])
    assert torch.allclose(a["pool1"], torch.nn.functional.avg_pool2d(a["relu1_2"], 2))
    assert get_vgg("caffe", "cpu", "avg") is avg  # cached


def test_unknown_layer_lists_valid_names(vgg):
    with pytest.raises(ValueError, match=r"unknown layer 'conv6_1'; valid names: conv1_1, relu1_1"):
        vgg(torch.rand(1, 3, 8, 8), ["conv6_1"])


def test_bad_pooling():
    with pytest.raises(ValueError, match="pooling"):
        get_vgg("caffe", "cpu", "median")


def test_corrupted_caffe_file(tmp_path):
    bad = tmp_path / "vgg.bin"
    data = bytearray(caffe_weights_path().read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"vgg\.bin'?: VGG-19 weights file is corrupted \(sha256 mismatch\)"):
        load_caffe_state_dict(bad)
    with pytest.raises(WeightsError, match="not found"):
        load_caffe_state_dict(tmp_path / "missing.bin")


def test_missing_or_bad_pth(tmp_path):
    with pytest.raises(WeightsError, match=r"missing\.pth'?: weights file not found"):
        get_vgg(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match=r"junk\.pth'?: not a readable PyTorch weights file"):
        get_vgg(junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(WeightsError, match="not a VGG-19 state dict"):
        load_state_dict_file(wrong)
    with pytest.raises(WeightsError, match="unknown weights 'imagenet'"):
        get_vgg("imagenet")


def test_torchvision_offline_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("NSTEDU_OFFLINE", "1")
    with pytest.raises(WeightsError, match="use weights='caffe'"):
        get_vgg("torchvision", "cpu", "avg")
    # and when a download is attempted but the network is unreachable
    monkeypatch.delenv("NSTEDU_OFFLINE")
    import torchvision.models._api as api

    def no_network(*a, **k):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(api.WeightsEnum, "get_state_dict", no_network)
    with pytest.raises(WeightsError, match=r"offline\? use weights='caffe'"):
        get_vgg("torchvision", "cpu", "avg")


def _torchvision_convention_state_dict(vgg, scale_layer=None, factor=1.0):
    """Re-express the Caffe network for torchvision's input convention (RGB, mean/std): exactly the same features."""
    from nstedu.vgg import CAFFE_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD

    sd = {k: v.clone() for k, v in vgg.layers.state_dict().items()}
    w, b = sd["conv1_1.weight"], sd["conv1_1.bias"]
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    caffe_mean_rgb = torch.tensor(CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1)
    w_rgb = w.flip(1)  # caffe input channels are BGR
    # caffe_in = 255*x - m ; x = z*std + mean  =>  caffe_in = 255*std*z + (255*mean - m)
    new_w = w_rgb * 255 * std
    shift = (255 * mean - caffe_mean_rgb)
    # zero padding: torchvision pads z with 0, i.e. x = mean, caffe pads (255x - m) with 0; differs only at borders
    new_b = b + (w_rgb * shift).sum(dim=(1, 2, 3))
    sd["conv1_1.weight"], sd["conv1_1.bias"] = new_w, new_b
    if scale_layer:
        sd[f"{scale_layer}.weight"] *= factor
        sd[f"{scale_layer}.bias"] *= factor
    return {f"features.{LAYER_NAMES.index(k.split('.')[0])}.{k.split('.')[1]}": v for k, v in sd.items()}


def test_pth_in_torchvision_layout_and_calibration(vgg, tmp_path):
    """A torchvision-layout .pth of the same network, with conv3_1 scaled ×10: calibration must undo the scale."""
    p = tmp_path / "tv.pth"
    torch.save(_torchvision_convention_state_dict(vgg, "conv3_1", 10.0), p)
    raw = VGG19Features(load_state_dict_file(p)[0], "torchvision")
    x = torch.rand(1, 3, 48, 48) * 0.8 + 0.1
    with torch.no_grad():
        ref = vgg(x, ["relu2_1", "relu3_1", "relu4_1"])
        got = raw(x, ["relu2_1", "relu3_1", "relu4_1"])
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # away from the zero-padding border
    assert torch.allclose(got["relu2_1"][inner], ref["relu2_1"][inner], rtol=1e-3, atol=1e-2)
    assert float(got["relu3_1"].norm() / ref["relu3_1"].norm()) > 5  # the ×10 shows up
    scales = calibrate(raw, vgg)
    assert scales["relu2_1"] == pytest.approx(1.0, rel=0.02)
    assert scales["relu3_1"] == pytest.approx(0.1, rel=0.05)
    with torch.no_grad():
        fixed = raw(x, ["relu3_1", "relu4_1"])
    for k in fixed:
        assert float(fixed[k].norm() / ref[k].norm()) == pytest.approx(1.0, rel=0.05)
    # get_vgg on a path calibrates automatically; save_weights round-trips with the convention
    model = get_vgg(p, "cpu")
    assert model.feature_scale["relu3_1"] == pytest.approx(0.1, rel=0.05)
    q = tmp_path / "caffe_copy.pth"
    save_weights(vgg, q)
    sd, conv = load_state_dict_file(q)
    assert conv == "caffe" and torch.equal(sd["conv5_1.weight"], vgg.layers["conv5_1"].weight)


def test_the_torchvision_file_name_is_torchvisions():
    """nstedu names the cached torchvision weights file without importing torchvision (nstedu.info() stays fast):
    the name must be the last part of torchvision's own URL."""
    from pathlib import Path

    from torchvision.models import VGG19_Weights

    from nstedu.vgg import TORCHVISION_VGG19_FILE, torchvision_cache_path

    assert TORCHVISION_VGG19_FILE == Path(VGG19_Weights.IMAGENET1K_V1.url).name
    assert torchvision_cache_path().name == TORCHVISION_VGG19_FILE
