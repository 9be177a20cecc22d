"""The command line: one run end to end through a subprocess (as a user runs it), the rest through
``nstedu.cli.main`` in this process (the same parser, commands and error handling, without paying for a Python
and torch start each: ~4 s here)."""
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from PIL import Image

from nstedu import allocator
from nstedu.cli import main


def nstedu(*args, cwd=None, **environ):
    env = dict(os.environ, NSTEDU_OFFLINE="1", OMP_NUM_THREADS="2", **environ)
    return subprocess.run([sys.executable, "-m", "nstedu", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*args, cwd=None, **environ)`` → ``(returncode, stdout, stderr)`` of ``nstedu ARGS`` run in-process."""
    def run(*args, cwd=None, **environ):
        monkeypatch.setenv("NSTEDU_OFFLINE", "1")
        for k, v in environ.items():
            monkeypatch.setenv(k, v)
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:       # argparse: --help, usage errors
            code = e.code if isinstance(e.code, int) else 2
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)
    return run


def test_stylize_end_to_end(tmp_path):
    out = tmp_path / "out.png"
    r = nstedu("stylize", "chelsea", "starry_night", "-o", out, "--size", 48, "--steps", 6, "--save-every", 3,
               "--style-weight", 500, "--tv-weight", 0, "--seed", 1, "--quiet")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (48, 32)
    assert "saved" in r.stdout and "6 steps" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "out_0003.png", "out_0006.png"]


def test_style_option_and_blend(tmp_path, cli):
    out = tmp_path / "blend.png"
    r = cli("stylize", "chelsea", "--style", "starry_night,great_wave", "--style-blend", "0.6,0.4", "-o", out,
               "--size", 32, "--steps", 2, "-q")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (32, 21)
    r = cli("stylize", "chelsea", "-o", tmp_path / "x.png", "--size", 32, "--steps", 2, "-q")
    assert r.returncode == 2 and "give the style image(s) once" in r.stderr and not (tmp_path / "x.png").exists()


def test_help_lists_options(cli):
    r = cli("stylize", "--help")
    assert r.returncode == 0
    for opt in ("--size", "--steps", "--content-weight", "--style-weight", "--tv-weight", "--optimizer", "--lr", "--init",
                "--pooling", "--seed", "--device", "--content-layers", "--style-layers", "--save-every", "--weights"):
        assert opt in r.stdout, opt


def test_samples_and_info(cli):
    r = cli("samples")
    assert r.returncode == 0 and "starry_night" in r.stdout and "public domain" in r.stdout
    r = cli("info")
    assert r.returncode == 0 and "weights_caffe" in r.stdout and "vgg19_weights" in r.stdout
    glibc = allocator._glibc() is not None  # (None also with NSTEDU_MALLOC=system in this environment)
    assert ("freed buffers kept during CPU runs" in r.stdout) == glibc
    r = cli("info", NSTEDU_MALLOC="system")
    assert "cpu_allocator        the system's (NSTEDU_MALLOC=system)" in r.stdout


@pytest.mark.parametrize("args,match", [
    (["missing.jpg", "starry_night"], "content image 'missing.jpg': file not found"),
    (["chelsea", "starry_night", "--steps", "-3"], "steps must be a positive integer"),
    (["chelsea", "starry_night", "--style-layers", "conv1_1,conv9_9"], "unknown style layer 'conv9_9'; valid names"),
    (["chelsea", "starry_night", "--weights", "nowhere.pth"], "'nowhere.pth': weights file not found"),
])
def test_bad_input_one_line_error_no_output(tmp_path, args, match, cli):
    out = tmp_path / "out.png"
    r = cli("stylize", *args[:2], "-o", out, "--size", 32, "--steps", 2, "-q", *args[2:], cwd=tmp_path)
    assert r.returncode == 2
    assert match in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_not_an_image_style(tmp_path, cli):
    bad = tmp_path / "style.jpg"
    bad.write_text("hello")
    r = cli("stylize", "chelsea", bad, "-o", tmp_path / "o.png", "--size", 32, "--steps", 2, "-q")
    assert r.returncode == 2 and "style.jpg': not an image file" in r.stderr
    assert not (tmp_path / "o.png").exists()
