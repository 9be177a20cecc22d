"""One source for the settings: every TransferConfig field reaches the command line with its own default, the old
flag names still parse, README's options table is the generated one, the playground starts at the same defaults;
the public names kept for old imports; the typed loss history."""
import dataclasses
import re
from pathlib import Path

import pytest

import nstedu
from nstedu import cli
from nstedu.config import TransferConfig, default_lr, style_size
from nstedu.fast import FastConfig
from nstedu.objective import TERMS, LossHistory

ROOT = Path(__file__).resolve().parents[1]
#: Fields deliberately left out of the command line (Python API only). Empty today: every setting has an option.
API_ONLY: set = set()


def subparser(name):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name]


@pytest.mark.parametrize("command", ["stylize", "batch"])
def test_every_field_is_an_option_with_the_fields_default(command):
    actions = {a.dest: a for a in subparser(command)._actions}
    for f in dataclasses.fields(TransferConfig):
        if f.name in API_ONLY:
            assert not f.metadata["cli"] and f.name not in actions, f.name
            continue
        assert f.name in actions, f"--{f.name.replace('_', '-')} missing from `nstedu {command}` (or list it in API_ONLY)"
        assert actions[f.name].default == f.default, f.name
        assert (f.metadata["cli_help"] or f.metadata["help"]).replace("%", "%%") in actions[f.name].help, f.name


@pytest.mark.parametrize("command, extra", [("stylize", ["photo.jpg", "style.jpg"]), ("batch", ["in/", "--style", "s", "-o", "o"])])
def test_no_options_give_exactly_the_engines_defaults(command, extra):
    args = cli.build_parser().parse_args([command, *extra])
    assert TransferConfig(**cli.config_from_args(args)) == TransferConfig()


def test_the_old_flag_names_still_parse():
    args = cli.build_parser().parse_args([
        "stylize", "photo.jpg", "--style", "a.jpg,b.jpg", "-s", "96", "-n", "7", "--style-weight", "500",
        "--content-weight", "2", "--tv-weight", "0", "--style-blend", "0.6,0.4", "--content-layers", "conv3_1",
        "--style-layers", "conv1_1,conv2_1", "--style-strength", "60%", "--preserve-colors", "luminance",
        "--contrast", "0.2", "--sharpness", "0.1", "--style-scale", "0.5", "--optimizer", "adam", "--lr", "0.05",
        "--init", "noise", "--seed", "3", "--pooling", "avg", "--weights", "caffe", "--device", "cpu", "--quiet",
        "--mask", "m.png", "--mask-invert", "--mask-feather", "4", "--mask-no-composite", "--multiscale",
        "--levels", "2", "--steps-per-scale", "5,3", "--save-every", "2", "-o", "x.png"])
    cfg = TransferConfig(**cli.config_from_args(args))
    assert cfg == TransferConfig(size=96, steps=7, style_weight=500, content_weight=2, tv_weight=0,
                                 style_blend=(0.6, 0.4), content_layers=("conv3_1",), style_layers=("conv1_1", "conv2_1"),
                                 style_strength=0.6, preserve_colors="luminance", contrast=0.2, sharpness=0.1,
                                 style_scale=0.5, optimizer="adam", lr=0.05, init="noise", seed=3, pooling="avg",
                                 weights="caffe", device="cpu", progress=False)
    assert (args.mask, args.mask_invert, args.mask_feather, args.mask_no_composite) == ("m.png", True, 4.0, True)
    assert (args.multiscale, args.levels, cli._steps_per_scale(args), args.save_every) == (True, 2, [5, 3], 2)
    assert args.style_option == "a.jpg,b.jpg" and args.output == "x.png"


@pytest.mark.parametrize("text, value", [("60%", 0.6), ("0.25", 0.25), ("100%", 1.0), ("0", 0.0)])
def test_style_strength_accepts_fractions_and_percentages(text, value):
    assert cli._fraction(text) == pytest.approx(value)


def test_fast_train_options_come_from_fast_config():
    actions = {a.dest: a for a in subparser("fast-train")._actions}
    for f in dataclasses.fields(FastConfig):
        assert f.name in actions and actions[f.name].default == f.default, f.name
    args = cli.build_parser().parse_args(["fast-train", "starry_night", "--out", "m.pth", "--batch-size", "2",
                                          "--res-blocks", "1", "--style-size", "64", "-q"])
    assert FastConfig(**cli.config_from_args(args, FastConfig)) == FastConfig(batch_size=2, res_blocks=1, style_size=64,
                                                                              progress=False)


def test_readme_options_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- options:start -->\n(.*?)\n<!-- options:end -->", readme, re.S)
    assert block, "README.md lacks the <!-- options:start/end --> block"
    assert block[1].strip() == cli.options_markdown(), (
        "README's options table is stale: replace the block with the output of\n"
        "  python -c 'from nstedu.cli import options_markdown; print(options_markdown())'")


def test_playground_starts_at_the_engines_defaults(tmp_path):
    pytest.importorskip("ipywidgets")
    from nstedu.widgets import Playground

    d = TransferConfig()
    s = Playground(background=False, device="cpu", output_dir=tmp_path).settings()
    for key in ("content_weight", "style_weight", "tv_weight", "style_strength", "preserve_colors", "content_layers",
                "style_layers", "optimizer", "init", "pooling", "seed", "style_blend"):
        assert s[key] == getattr(d, key), key
    assert s["lr"] == d.step_size() == default_lr(d.optimizer)
    assert s["style_layer_weights"] == pytest.approx(tuple(d.layer_weights().values()))


def test_small_facts_have_one_home():
    assert style_size(256, 0.5) == 128 and style_size(40, 0.1) == 16      # never below 16 px
    assert default_lr("lbfgs") == 1.0 and default_lr("adam") == 0.02
    assert TransferConfig(lr=0.3).step_size() == 0.3


def test_public_api_and_aliases_kept():
    from nstedu.transfer import (TERMS as T, Objective, StyleTransferResult, TransferConfig as TC, grams_of,  # noqa
                                 load_content, load_style, optimize, prepare_style_targets, run_style_transfer)
    from nstedu import config, objective, samples, transfer

    assert TC is config.TransferConfig is nstedu.TransferConfig and T is TERMS
    assert Objective is objective.Objective and prepare_style_targets is objective.prepare_style_targets
    assert grams_of is objective.grams_of and load_style is samples.load_style and load_content is samples.load_content
    assert run_style_transfer is nstedu.run_style_transfer and transfer.stylize is nstedu.stylize
    assert callable(optimize) and StyleTransferResult is nstedu.StyleTransferResult
    from nstedu import control, masks

    assert control.Mask is masks.Mask and control.region_targets is masks.region_targets
    assert control.check_enhancement is config.check_enhancement


def test_loss_history_records_extends_and_looks_up():
    h = LossHistory()
    assert list(h) == ["step", *TERMS, "time"] and all(v == [] for v in h.values())
    h.append(1, [10.0, 4.0, 5.0, 1.0], 0.5)
    h.append(2, [8.0, 3.0, 4.0, 1.0], 0.9)
    assert h == {"step": [1, 2], "total": [10.0, 8.0], "content": [4.0, 3.0], "style": [5.0, 4.0], "tv": [1.0, 1.0],
                 "time": [0.5, 0.9]}
    assert h.last() == {"total": 8.0, "content": 3.0, "style": 4.0, "tv": 1.0}
    assert h.at(1)["total"] == 10.0 and h.at(99)["total"] == 8.0            # unknown step: the latest
    both = LossHistory(extra=("size",))
    both.extend(h, step_offset=0, time_offset=0.0, size=32)
    both.extend(h, step_offset=2, time_offset=1.0, size=64)
    assert both["step"] == [1, 2, 3, 4] and both["time"] == [0.5, 0.9, 1.5, 1.9] and both["size"] == [32, 32, 64, 64]
    assert LossHistory(dict(h)) == h and isinstance(dict(h), dict)          # saves as a plain dict
