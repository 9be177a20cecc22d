"""Never lose a finished picture (issue 14): outputs checked before the work and rescued after it, a lock on shared
output folders, memory and size checks before allocating, inputs read by their dtype, one clear line (and the
right exit status) for every mistake. The command line is run in-process with ``main(argv)`` where only the exit
status and stderr matter, and as a subprocess where signals, resource limits or a second process are involved."""
import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nstedu import batch, env, images, outputs
from nstedu.cli import main
from nstedu.config import TransferConfig
from nstedu.fast import FastStylizer, init_net, save_model
from nstedu.images import ImageError, load_image, save_image
from nstedu.vgg import WeightsError

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, NSTEDU_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
TINY = ["--size", "32", "--steps", "1", "-q"]


def run(argv, capsys):
    """``nstedu ARGV`` in this process → (exit status, stdout, stderr lines)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def spawn(*args, **kw):
    return subprocess.Popen([sys.executable, *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the optimization starts: the check must come first."""
    def boom(*a, **k):
        raise AssertionError("the work started before the check")
    monkeypatch.setattr("nstedu.cli.transfer.run_style_transfer", boom)
    monkeypatch.setattr("nstedu.cli.multiscale.stylize_multiscale", boom)


# ------------------------------------------------------------------------ 1. outputs checked before the work
@pytest.mark.parametrize("name, says", [("out.xyz", "cannot write '.xyz'"), ("out", "has no extension"),
                                        ("folder", "is a folder"), ("file.txt/out.png", "is a file, not a folder")])
def test_bad_output_paths_are_refused_before_the_work(tmp_path, capsys, no_work, name, says):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    code, _, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / name, *TINY], capsys)
    assert code == 2 and len(err) == 1 and says in err[0] and str(tmp_path / name) in err[0]


def test_an_unwritable_folder_is_refused_before_the_work(tmp_path, capsys, no_work, monkeypatch):
    def read_only(*a, **k):  # what a read-only file system answers (root ignores permission bits, so simulate it)
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(outputs.tempfile, "mkstemp", read_only)
    code, _, err = run(["fast", "chelsea", "-o", tmp_path / "out.png"], capsys)
    assert code == 2 and err == [f"nstedu fast: error: output '{tmp_path / 'out.png'}': cannot write in folder "
                                 f"'{tmp_path}' (Read-only file system)"]


def test_a_full_disk_at_the_end_rescues_the_picture(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real, kept = images.atomic_write, []

    def full_disk(path, write, text=False):
        if Path(path).parent == tmp_path:
            raise OSError(errno.ENOSPC, "No space left on device")
        kept.append(Path(path))
        return real(path, write, text)
    monkeypatch.setattr(images, "atomic_write", full_disk)
    code, out, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "out.png", *TINY], capsys)
    rescued = tmp_path / "cache" / "nstedu" / "rescued"
    assert code == 1 and len(err) == 1 and "No space left on device" in err[0] and not (tmp_path / "out.png").exists()
    assert len(kept) == 1 and kept[0].parent == rescued and str(kept[0]) in err[0]
    assert Image.open(kept[0]).size == (32, 21)


def test_a_file_size_limit_rescues_the_picture_as_a_smaller_file(tmp_path):
    """RLIMIT_FSIZE (the real thing, in a subprocess): the PNG is too large everywhere, the JPEG copy fits."""
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), np.uint8))
    photo.save(tmp_path / "noise.png")
    result, png, jpg = FastStylizer.load("starry_night", "cpu")(photo), io.BytesIO(), io.BytesIO()
    result.save(png, "PNG"), result.save(jpg, "JPEG", quality=95)
    assert len(jpg.getvalue()) < len(png.getvalue())
    limit = (len(jpg.getvalue()) + len(png.getvalue())) // 2  # the PNG is too large everywhere, the JPEG fits
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (%d, %d)); from nstedu.cli import main; "
            "sys.exit(main(sys.argv[1:]))" % (limit, limit))
    env = dict(ENV, XDG_CACHE_HOME=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", code, "fast", tmp_path / "noise.png", "--model", "starry_night",
                        "-o", tmp_path / "out.png"], env=env, capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "File too large" in lines[0], r.stderr
    rescued = list((tmp_path / "cache" / "nstedu" / "rescued").iterdir())
    assert [p.suffix for p in rescued] == [".jpg"] and str(rescued[0]) in lines[0]
    assert Image.open(rescued[0]).size == (48, 48) and not (tmp_path / "out.png").exists()


def test_a_snapshot_that_cannot_be_written_does_not_end_the_run(tmp_path, capsys, monkeypatch):
    real = images.atomic_write

    def no_snapshots(path, write, text=False):
        if "_000" in Path(path).name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write, text)
    monkeypatch.setattr(images, "atomic_write", no_snapshots)
    code, out, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", "--size", 32, "--steps", 2,
                          "--save-every", 1, "-q"], capsys)
    assert code == 0 and (tmp_path / "o.png").exists() and "2 steps" in out
    assert err == [f"nstedu stylize: warning: could not save a snapshot next to '{tmp_path / 'o.png'}' (No space left "
                   f"on device); going on without"]  # once, not once per step


def test_a_symlinked_output_is_written_through_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target, link = tmp_path / "real" / "pic.png", tmp_path / "link.png"
    link.symlink_to(target)
    save_image(Image.new("RGB", (20, 10), (200, 10, 10)), link)
    assert link.is_symlink() and Image.open(target).getpixel((3, 3)) == (200, 10, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "real"]


# ----------------------------------------------------------------------- 2. a lock on the batch output folder
HOLD_LOCK = """import fcntl, os, sys, time
fd = os.open(os.path.join(sys.argv[1], ".nstedu.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); os.write(fd, b"%d\\n" % os.getpid())
print("locked", flush=True); time.sleep(60)"""


def test_a_second_batch_on_the_same_folder_is_refused_naming_the_first(tmp_path, capsys, monkeypatch):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32), "gray").save(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    other = spawn("-c", HOLD_LOCK, out)
    try:
        assert other.stdout.readline().strip() == "locked"
        monkeypatch.setattr(batch, "_run", lambda *a: pytest.fail("the second run started working"))
        code, _, err = run(["batch", tmp_path / "in", "--style", "starry_night", "-o", out, *TINY], capsys)
        assert code == 2 and err == [f"nstedu batch: error: output folder '{out}' is in use by another nstedu run "
                                     f"(pid {other.pid}); wait for it to finish or use another folder"]
    finally:
        other.kill()
        other.wait()
    with outputs.FolderLock(out):  # free again once the other process is gone
        assert (out / ".nstedu.lock").read_text().strip() == str(os.getpid())


def test_only_temp_files_of_dead_writers_or_old_ones_are_cleaned(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = os.getppid()
    names = {"dead": f".a.{dead.pid}.k2j3h4g5.part", "live": f".b.{live}.k2j3h4g5.part",
             "old": ".c.q1w2e3r4.part", "new": ".d.q1w2e3r4.part", "other": "photo.part"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    os.utime(tmp_path / names["old"], (time.time() - 2 * images.STALE_PART_SECONDS,) * 2)
    removed = images.clean_stale_parts(tmp_path)
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["old"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["live"], names["new"], names["other"]])


def test_a_save_killed_half_way_leaves_a_part_file_that_the_next_save_removes(tmp_path):
    kill = ("import os, signal, sys; from nstedu.images import atomic_write; "
            "atomic_write(sys.argv[1], lambda f: (f.write(b'half'), f.flush(), os.kill(os.getpid(), signal.SIGKILL)))")
    r = subprocess.run([sys.executable, "-c", kill, tmp_path / "out.png"], env=ENV, timeout=120)
    assert r.returncode == -signal.SIGKILL
    left = list(tmp_path.glob(".*.part"))
    assert len(left) == 1 and left[0].read_bytes() == b"half" and not (tmp_path / "out.png").exists()
    save_image(Image.new("RGB", (16, 16)), tmp_path / "other.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.png"]


# ------------------------------------------------------------------------------ 3. memory before allocating
def test_a_huge_size_is_refused_with_the_largest_size_that_fits(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(env, "memory_gb", lambda device: 8.0)
    code, _, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", "--size", 100000, "-q"], capsys)
    assert code == 2 and len(err) == 1 and "needs about" in err[0] and "--multiscale" not in err[0]
    fits = int(err[0].split("--size ")[1].split(";")[0])
    w, h = load_image(__import__("nstedu").samples.path("chelsea")).size
    need = lambda s: env.estimate_memory_gb(*images.fit_longest(w, h, s), 100)  # noqa: E731
    assert need(fits) <= 0.9 * 8.0 < need(round(fits * 1.01))
    # a size that fits only with the short L-BFGS history of the multi-scale levels: suggest --multiscale
    code, _, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", "--size", 1700, "-q"], capsys)
    assert code == 2 and "or add --multiscale" in err[0]
    with pytest.raises(ValueError, match="largest size that fits"):  # and the multi-scale run checks its finest level
        __import__("nstedu").multiscale.stylize_multiscale("chelsea", "starry_night", size=4000, steps=3)


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
def test_running_out_of_memory_mid_run_names_the_size_that_fits(capsys, monkeypatch, tmp_path):
    """The estimate passed, but the device ran out during the run (another process took memory, or the estimate
    missed): one line with the size that fits in what is free and --multiscale, exit status 2, nothing written."""
    from nstedu import transfer
    held = []

    def fail(objective, x0, cfg, **kw):
        held.append(torch.zeros(1000, 1000))  # a tensor of the failed run: released before memory is measured
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(transfer, "optimize", fail)
    monkeypatch.setattr(env, "memory_gb", lambda device: 1.0)   # on the CPU: what the machine has
    out = tmp_path / "o.png"
    code, _, err = run(["stylize", "chelsea", "starry_night", "-o", out, "--size", 400, "--steps", 2, "-q"], capsys)
    assert code == 2 and len(err) == 1 and not out.exists(), err
    assert "result ran out of cpu memory (1.0 GB free)" in err[0] and "or add --multiscale" in err[0]
    fits = int(err[0].split("--size ")[1].split(";")[0])
    w, h = images.fit_longest(*load_image(__import__("nstedu").samples.path("chelsea")).size, 400)
    need = max(env.estimate_memory_gb(w, h, 100), 1.1 / 0.9)   # it did not fit: more than was free
    assert fits == int(400 * (0.9 / need) ** 0.5) and fits < 400
    # the CPU allocator's failure reads the same; any other error passes through untouched
    monkeypatch.setattr(transfer, "optimize", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")))
    with pytest.raises(env.DeviceMemoryError, match="largest size that fits is about --size"):
        transfer.run_style_transfer("chelsea", "starry_night", size=400, steps=2, progress=False)
    monkeypatch.setattr(transfer, "optimize", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="^shape mismatch$"):
        transfer.run_style_transfer("chelsea", "starry_night", size=400, steps=2, progress=False)
    # a later level of a multi-scale run (it starts from the previous level) does not suggest --multiscale again
    monkeypatch.setattr(transfer, "optimize", fail)
    with pytest.raises(env.DeviceMemoryError) as e:
        transfer.run_style_transfer("chelsea", "starry_night", size=400, steps=2, progress=False,
                                    init_image=Image.new("RGB", (40, 30)))
    assert "--multiscale" not in str(e.value)


# ------------------------------------------------------------------------------- 4. and 9. inputs by dtype
@pytest.mark.parametrize("arr, says", [
    (np.full((20, 20, 3), 200.0), "float pixel values must be in [0, 1], got 200 … 200: divide by 255?"),
    (np.full((20, 20), 3000.0, np.float32), "divide by 65535?"),
    (np.full((20, 20), -0.5), "got -0.5 … -0.5"),
    (np.array([[np.nan] * 20] * 20), "400 pixel value(s) are NaN or infinite"),
    (np.full((20, 20, 3), np.inf, np.float32), "NaN or infinite"),
    (np.full((20, 20), -1, np.int16), "integer pixel values must be 0–255 or 0–65535, got -1 … -1"),
    (np.full((20, 20), 70000, np.int64), "got 70000 … 70000"),
    (np.full((20, 20), None, object), "dtype object"),
    (np.zeros((20, 20), np.complex64), "dtype complex64"),
])
def test_garbage_arrays_are_refused_in_one_line(arr, says):
    for src in (arr, *([torch.from_numpy(arr)] if arr.dtype != object else [])):
        with pytest.raises(ImageError) as e:
            load_image(src)
        assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("arr, grey", [
    (np.full((4, 5), 128, np.uint8), 128), (np.full((4, 5), 32896, np.uint16), 128),   # 32896 / 257 = 128
    (np.full((4, 5), 257, np.uint16), 1),                                              # uint16: its own range
    (np.full((4, 5), 200, np.int32), 200), (np.full((4, 5), 65535, np.int64), 255),
    (np.ones((4, 5), bool), 255), (np.zeros((4, 5), bool), 0),
    (np.full((4, 5), 0.5, np.float16), 128), (np.full((4, 5), 1.0004, np.float32), 255),  # rounding noise tolerated
])
def test_arrays_and_tensors_are_read_by_their_dtype(arr, grey):
    for src in (arr, torch.from_numpy(arr)[None, None].expand(1, 3, 4, 5), arr[..., None].repeat(3, axis=2)):
        img = load_image(src)
        assert img.mode == "RGB" and img.size == (5, 4) and set(np.asarray(img).ravel()) == {grey}


def test_a_float_image_file_with_nan_is_refused_not_drawn_black(tmp_path):
    arr = np.full((20, 20), 0.5, np.float32)
    arr[3, 4] = np.nan
    Image.fromarray(arr, "F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match=r"nan.tif'.*1 pixel value\(s\) are NaN or infinite"):
        load_image(tmp_path / "nan.tif")


def test_a_fast_model_with_nan_weights_is_refused_on_load(tmp_path, capsys):
    net = init_net(width=4, res_blocks=1)
    with torch.no_grad():
        net.net[0][1].weight[0, 0, 0, 0] = float("nan")
    save_model(net, tmp_path / "nan.pth")
    with pytest.raises(WeightsError, match="NaN or infinite values .*retrain"):
        FastStylizer.load(tmp_path / "nan.pth")
    code, _, err = run(["fast", "chelsea", "--model", tmp_path / "nan.pth", "-o", tmp_path / "o.png"], capsys)
    assert code == 2 and len(err) == 1 and "nan.pth" in err[0] and not (tmp_path / "o.png").exists()


# ------------------------------------------------------------------------------- 5.–8. one line, not a traceback
def test_sides_shorter_than_16_px_are_refused_with_the_minimum(tmp_path, capsys):
    Image.new("RGB", (400, 3)).save(tmp_path / "strip.png")
    monkeypatch_run = __import__("nstedu").transfer.run_style_transfer
    with pytest.raises(ImageError) as e:
        monkeypatch_run(tmp_path / "strip.png", "starry_night", size=64, steps=1)
    assert "would be 64×1 pixels at --size 64: every side needs at least 16" in str(e.value)
    need = int(str(e.value).split("use --size ")[1].split()[0])
    assert min(images.fit_longest(400, 3, need)) >= 16 > min(images.fit_longest(400, 3, need - 1))
    code, _, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", "--size", 8], capsys)
    assert code == 2 and err == ["nstedu stylize: error: size must be at least 16 pixels (VGG-19 halves each side "
                                 "four times), got 8"]
    with pytest.raises(ImageError, match="style image .*would be 64×2 pixels"):
        Image.new("RGB", (512, 16)).save(tmp_path / "thin.png")
        __import__("nstedu").samples.load_style(str(tmp_path / "thin.png"), 64)


@pytest.mark.parametrize("command", ["stylize", "fast"])
def test_an_unknown_device_is_one_line(tmp_path, capsys, command):
    args = ["chelsea", "starry_night"] if command == "stylize" else ["chelsea"]
    code, _, err = run([command, *args, "--device", "tpu", "-o", tmp_path / "o.png"], capsys)
    assert code == 2 and err == [f"nstedu {command}: error: unknown device 'tpu': use auto, cpu, cuda, cuda:N or mps"]


def test_batch_output_that_is_an_existing_file_is_refused(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "a.png")
    (tmp_path / "out.txt").write_text("mine")
    code, _, err = run(["batch", tmp_path / "in", "--style", "starry_night", "-o", tmp_path / "out.txt"], capsys)
    assert code == 2 and err == [f"nstedu batch: error: output folder '{tmp_path / 'out.txt'}': is an existing file, "
                                 f"not a folder; give a folder name"]
    assert (tmp_path / "out.txt").read_text() == "mine"


def starting(p, timeout=60.0) -> None:
    """Wait until the command has set its stop handlers (``quiet_start``: SIGTERM caught, bit 15 of SigCgt in
    /proc/PID/status), just before it imports torch, which takes seconds. A fixed sleep can end before that on a
    loaded machine, while Python itself is still starting and Ctrl-C gives its traceback."""
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        status = Path(f"/proc/{p.pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught >> (signal.SIGTERM - 1) & 1:
            return
        time.sleep(0.01)
    raise AssertionError("the command did not set its stop handlers")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_ctrl_c_while_starting_is_one_line_and_exit_130(tmp_path):
    p = spawn("-m", "nstedu", "stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", *TINY)
    starting(p)
    time.sleep(0.2)  # importing torch takes seconds: still starting
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "interrupted" in err and not (tmp_path / "o.png").exists()


def test_ctrl_c_during_the_run_keeps_the_best_image_and_exits_130(tmp_path):
    p = spawn("-m", "nstedu", "stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", "--size", 32, "--steps",
              100000, "--save-every", 1, "-q")
    deadline = time.time() + 120
    while not list(tmp_path.glob("o_*.png")) and time.time() < deadline:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted" in out and "Traceback" not in err, err
    assert Image.open(tmp_path / "o.png").size == (32, 21)


# ------------------------------------------------------------------------------------ 10.–15. clear checks
def test_batch_with_a_missing_style_is_refused_up_front(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32)).save(tmp_path / "in" / f"{i}.png")
    code, _, err = run(["batch", tmp_path / "in", "--style", "starry_night,nope.jpg", "-o", tmp_path / "out"], capsys)
    assert code == 2 and err == ["nstedu batch: error: style image 'nope.jpg': file not found"]
    assert not (tmp_path / "out" / "manifest.csv").exists()


@pytest.mark.parametrize("option, value, says", [
    ("--save-every", "-1", "argument --save-every: --save-every must be a whole number of steps ≥ 0"),
    ("--style-blend", "-1,2", "argument --style-blend: expected comma-separated numbers ≥ 0, got '-1,2'"),
    ("--steps-per-scale", "-1,2", "argument --steps-per-scale: expected comma-separated whole numbers ≥ 0, got '-1,2'"),
    ("--style-layer-weights", "-.5", "argument --style-layer-weights: expected comma-separated numbers ≥ 0"),
    ("--lr", "-1e-3", "error: lr must be a positive number, got -0.001"),
    ("--content-layers", "", "error: content_layers is empty: give at least one layer"),
])
def test_bad_option_values_say_which_option(tmp_path, capsys, option, value, says):
    try:
        code, _, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", option, value], capsys)
    except SystemExit as e:  # argparse: usage line + one error line
        code, err = e.code, capsys.readouterr().err.strip().splitlines()[-1:]
    assert code == 2 and len(err) == 1 and says in err[0], err


def test_a_manifest_that_is_not_utf8_is_named(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.csv").write_bytes("input,style\nphoto\xe9.jpg,x\n".encode("latin-1"))
    code, _, err = run(["batch", tmp_path / "in", "--style", "starry_night", "-o", tmp_path / "out", *TINY], capsys)
    assert code == 2 and err == [f"nstedu batch: error: manifest '{tmp_path / 'out' / 'manifest.csv'}': not UTF-8 "
                                 f"text (byte 17); move it away or use --overwrite"]


def test_a_layer_name_given_as_a_string_is_one_layer():
    assert TransferConfig(style_layers="conv1_1").validate().style_layers == ("conv1_1",)
    assert TransferConfig(content_layers="conv4_2, conv5_2").validate().content_layers == ("conv4_2", "conv5_2")
    with pytest.raises(ValueError, match="unknown style layer 'conv9_9'"):
        TransferConfig(style_layers="conv9_9").validate()


def test_an_all_black_mask_warns_in_one_line(tmp_path, capsys):
    Image.new("L", (451, 300), 0).save(tmp_path / "black.png")
    code, _, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", "--mask", tmp_path / "black.png",
                        *TINY], capsys)
    assert code == 0 and err == ["nstedu stylize: warning: the mask is all black (after --mask-invert, if given): "
                                 "nothing will be styled and the photo comes back unchanged (white = style)"]


# ---------------------------------------------------------------------------------- the decompression limit
def _png_header(width: int, height: int) -> bytes:
    """A PNG with only a valid header (1-bit greyscale) and no pixel data: opening it reads just the size."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def test_the_documented_pixel_limit_is_the_one_that_applies():
    assert images.MAX_PIXELS == 178_956_970
    with pytest.raises(ImageError) as e:  # 95 Mpx: above PIL's warning (89 Mpx), below our limit: read, then truncated
        load_image(_png_header(10_000, 9_500))
    assert "too large" not in str(e.value) and "truncated" in str(e.value)
    with pytest.raises(ImageError, match="too large"):
        load_image(_png_header(14_000, 13_000))  # 182 Mpx


# ================================================================================================ issue 24
# Nothing a user owns is ever lost: each cause of the issue-24 sweep is a case below (cause N → "24.N").
def _photo(path, size=(48, 32), colour=(200, 40, 40)):
    Image.new("RGB", size, colour).save(path)
    return path


def _clip(tmp_path):
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from nstedu import clips
    return clips.make_synthetic_clip(tmp_path / "clip.mp4", frames=6, width=64, height=40, fps=12)


# ------------------------------------------------------------------------- 24.1 the output path is an input
@pytest.mark.parametrize("case", ["content", "symlink", "style", "hardlink", "fast", "fast-train", "export", "video"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, capsys, no_work, monkeypatch, case):
    monkeypatch.setattr("nstedu.cli.train_fast", lambda *a, **k: pytest.fail("training started"))
    photo, style = _photo(tmp_path / "photo.png"), _photo(tmp_path / "style.png", colour=(10, 10, 200))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not probed: the check comes first")
    before = {p: p.read_bytes() for p in (photo, style, clip)}
    (tmp_path / "link.png").symlink_to(photo)
    os.link(photo, tmp_path / "hard.png")
    argv, says = {
        "content": (["stylize", photo, style, "-o", photo], "is the content image"),
        "symlink": (["stylize", photo, style, "-o", tmp_path / "link.png"], "is the content image"),
        "style": (["stylize", photo, style, "-o", style], "is the style image"),
        "hardlink": (["stylize", photo, style, "-o", tmp_path / "hard.png"], "is the content image"),
        "fast": (["fast", photo, "-o", tmp_path / "link.png"], "is the content image"),
        "fast-train": (["fast-train", style, "--out", style], "is the style image"),
        "export": (["fast-train", style, "--out", tmp_path / "m.pth", "--export", tmp_path / "m.pth"], "is the --out"),
        "video": (["video", clip, "--fast", "starry_night_cpu", "-o", clip], "is the input video"),
    }[case]
    code, _, err = run(argv + TINY[:2] if case in ("content", "style") else argv, capsys)
    assert code == 2 and len(err) == 1 and says in err[0], err
    assert {p: p.read_bytes() for p in (photo, style, clip)} == before and (tmp_path / "link.png").is_symlink()


# --------------------------------------------------- 24.2 an interrupted rerun never replaces a finished result
def test_an_interrupted_stylize_goes_beside_a_finished_output(tmp_path, capsys, monkeypatch):
    from dataclasses import replace as dc_replace

    from nstedu import transfer
    out = _photo(tmp_path / "out.png", (32, 21), (1, 2, 3))  # the earlier finished result
    finished = out.read_bytes()
    real = transfer.run_style_transfer
    monkeypatch.setattr("nstedu.cli.transfer.run_style_transfer",
                        lambda *a, **k: dc_replace(real(*a, **k), stop_reason="interrupted"))
    code, out_text, err = run(["stylize", "chelsea", "starry_night", "-o", out, *TINY], capsys)
    partial = tmp_path / "out.partial.png"
    assert code == 130 and out.read_bytes() == finished and Image.open(partial).size == (32, 21)
    assert err == [f"nstedu stylize: the run was interrupted, so '{out}' (a finished result) was kept; this result is "
                   f"in '{partial}'"] and out_text.startswith(f"saved {partial}:")
    # with nothing at the output yet, the interrupted result goes to the output itself (nothing to protect)
    code, _, _ = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "new.png", *TINY], capsys)
    assert code == 130 and (tmp_path / "new.png").exists() and not (tmp_path / "new.partial.png").exists()


def test_an_interrupted_video_rerun_keeps_the_finished_video(tmp_path):
    from nstedu import videoio as V
    from nstedu.video import stylize_video
    clip, out = _clip(tmp_path), tmp_path / "out.mp4"
    assert stylize_video(clip, out, fast="starry_night_cpu", progress=False).frames == 6
    finished = out.read_bytes()

    def interrupt_at_2(i, x, y):
        if i == 2:
            raise KeyboardInterrupt
    r = stylize_video(clip, out, fast="starry_night_cpu", progress=False, segment_seconds=0.1, on_frame=interrupt_at_2)
    partial = tmp_path / "out.partial.mp4"
    assert r.stop_reason == "interrupted" and r.output == partial and out.read_bytes() == finished
    assert V.probe(partial).frames == 3 and f"'{out}', a finished video, was kept" in r.notes[-1]
    r = stylize_video(clip, out, fast="starry_night_cpu", progress=False, segment_seconds=0.1, resume=True)
    # the resumed run finishes: now OUT is replaced (by a finished video)
    assert r.stop_reason == "finished" and V.probe(out).frames == 6 and out.read_bytes() != finished


def test_an_interrupted_restart_of_fast_training_keeps_the_finished_checkpoint(tmp_path, monkeypatch):
    from nstedu.fast import training
    monkeypatch.setattr(training.PhotoCrops, "__call__",  # random crops: decoding the photos is not what is tested
                        lambda self, n: torch.rand(n, 3, self.size, self.size, generator=self.gen))
    tiny = dict(size=32, steps=1, batch_size=1, width=4, res_blocks=1, progress=False)
    ckpt = tmp_path / "m.pth"
    training.train_fast("starry_night", None, checkpoint=ckpt, **tiny)
    finished = ckpt.read_bytes()
    with pytest.raises(ImageError, match="is the checkpoint"):  # exporting over the checkpoint would lose it
        training.export_model(ckpt, tmp_path / "." / "m.pth")

    def stop(step, parts):
        raise KeyboardInterrupt
    r = training.train_fast("starry_night", None, checkpoint=ckpt, resume=False, callback=stop, **dict(tiny, steps=3))
    assert r.stop_reason == "interrupted" and r.checkpoint == tmp_path / "m.partial.pth"
    assert ckpt.read_bytes() == finished and FastStylizer.load(r.checkpoint).meta["steps_trained"] == 1
    r = training.train_fast("starry_night", None, checkpoint=ckpt, resume=False, **dict(tiny, steps=2))
    assert r.checkpoint == ckpt and not (tmp_path / "m.partial.pth").exists()
    assert FastStylizer.load(ckpt).meta["steps_trained"] == 2


# ----------------------------------------------------------------------- 24.3 SIGTERM and SIGHUP like Ctrl-C
def test_sigterm_and_sighup_raise_keyboard_interrupt_and_set_the_exit_status():
    from nstedu import arguments
    for sig in (signal.SIGTERM, signal.SIGHUP):
        before = signal.getsignal(sig)
        with arguments.signals_as_interrupt():
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), sig)
                for _ in range(500):  # the handler runs at the next bytecode
                    time.sleep(0.01)
            assert arguments.exit_status(130) == 128 + sig and arguments.exit_status(2) == 2
        assert signal.getsignal(sig) == before  # restored
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # under `nohup`: a hangup stays ignored
    try:
        with arguments.signals_as_interrupt():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
            assert arguments.exit_status(130) == 130
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_signal_while_the_result_is_written_waits_for_the_write(tmp_path, monkeypatch):
    """A second Ctrl-C (or a kill) during the final write does not abort it: it acts right after."""
    real = images.atomic_write

    def interrupted_write(path, write, text=False):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(20):
            time.sleep(0.01)
        return real(path, write, text)
    monkeypatch.setattr(images, "atomic_write", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        outputs.save_or_rescue(Image.new("RGB", (20, 10), (9, 99, 199)), tmp_path / "r.png")
    assert Image.open(tmp_path / "r.png").getpixel((5, 5)) == (9, 99, 199)


@pytest.mark.parametrize("command", ["batch", "fast-train", "video"])
def test_sigterm_in_every_command_keeps_the_work_and_exits_143(tmp_path, capsys, monkeypatch, command):
    """The command sends itself SIGTERM in the middle of its work (in this process: the handler is the command's)."""
    def term():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(500):  # the handler raises at the next bytecode (the signal may reach another thread first)
            time.sleep(0.01)
    if command == "batch":
        (tmp_path / "in").mkdir()
        for i in range(2):
            _photo(tmp_path / "in" / f"{i}.png")
        real = batch.transfer.run_style_transfer
        calls = []

        def second_photo_killed(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                term()
            return real(*a, **k)
        monkeypatch.setattr(batch.transfer, "run_style_transfer", second_photo_killed)
        argv = ["batch", tmp_path / "in", "--style", "starry_night", "-o", tmp_path / "out", *TINY]
        kept = [tmp_path / "out" / "0_starry_night.png"]
    elif command == "fast-train":
        from nstedu.fast import training
        calls = []

        def crops(self, n):  # random crops: decoding the bundled photos is not what is tested here
            calls.append(1)
            if len(calls) == 2:
                term()
            return torch.rand(n, 3, self.size, self.size, generator=self.gen)
        monkeypatch.setattr(training.PhotoCrops, "__call__", crops)
        argv = ["fast-train", "starry_night", "--out", tmp_path / "m.pth", "--size", 32, "--steps", 5, "--width", 4,
                "--res-blocks", 1, "--batch-size", 1, "-q"]
        kept = [tmp_path / "m.pth"]
    else:
        from nstedu import cli_video
        clip, real = _clip(tmp_path), cli_video.stylize_video
        monkeypatch.setattr(cli_video, "stylize_video", lambda *a, **k: real(
            *a, **dict(k, segment_seconds=0.1, on_frame=lambda i, x, y: term() if i == 2 else None)))
        argv = ["video", clip, "--fast", "starry_night_cpu", "-o", tmp_path / "o.mp4", "-q"]
        kept = [tmp_path / "o.mp4"]
    code, _, _ = run(argv, capsys)
    assert code == 128 + signal.SIGTERM and all(p.exists() and p.stat().st_size > 0 for p in kept)
    if command == "fast-train":
        assert FastStylizer.load(kept[0]).meta["steps_trained"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_during_the_run_keeps_the_best_image_and_exits_128_plus_it(tmp_path, sig):
    p = spawn("-m", "nstedu", "stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", "--size", 32, "--steps",
              100000, "--save-every", 1, "-q")
    deadline = time.time() + 120
    while not list(tmp_path.glob("o_*.png")) and time.time() < deadline:
        time.sleep(0.1)
    p.send_signal(getattr(signal, sig))
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + getattr(signal, sig) and "interrupted" in out and "Traceback" not in err, err
    assert Image.open(tmp_path / "o.png").size == (32, 21)


def test_fast_train_interrupted_exits_130_with_its_checkpoint(tmp_path, capsys, monkeypatch):
    from nstedu.fast import training
    calls = []

    def crops(self, batch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return torch.rand(batch, 3, self.size, self.size, generator=self.gen)
    monkeypatch.setattr(training.PhotoCrops, "__call__", crops)
    code, out, err = run(["fast-train", "starry_night", "--out", tmp_path / "m.pth", "--size", 32, "--steps", 5,
                          "--width", 4, "--res-blocks", 1, "--batch-size", 1, "-q"], capsys)
    assert code == 130 and FastStylizer.load(tmp_path / "m.pth").meta["steps_trained"] == 1
    assert err == [f"nstedu fast-train: interrupted; rerun the same command to continue from '{tmp_path / 'm.pth'}'"]


# ------------------------------------------------------------ 24.4 fast-train checks --out/--export first
@pytest.mark.parametrize("which", ["out-folder", "export-folder", "read-only"])
def test_fast_train_checks_its_outputs_before_training(tmp_path, capsys, monkeypatch, which):
    monkeypatch.setattr("nstedu.cli.train_fast", lambda *a, **k: pytest.fail("training started"))
    (tmp_path / "dir").mkdir()
    argv = ["fast-train", "starry_night", "--out", tmp_path / "m.pth"]
    if which == "out-folder":
        argv[3] = tmp_path / "dir"
    elif which == "export-folder":
        argv += ["--export", tmp_path / "dir"]
    else:
        monkeypatch.setattr(outputs.tempfile, "mkstemp", lambda *a, **k: (_ for _ in ()).throw(
            OSError(errno.EROFS, "Read-only file system")))
    code, _, err = run(argv, capsys)
    says = "Read-only file system" if which == "read-only" else "is a folder"
    assert code == 2 and len(err) == 1 and says in err[0], err


def test_fast_train_on_a_full_disk_rescues_the_trained_network(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real = outputs.atomic_write

    def full_disk(path, write, text=False):
        if Path(path).parent == tmp_path:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write, text)
    monkeypatch.setattr(outputs, "atomic_write", full_disk)
    code, _, err = run(["fast-train", "starry_night", "--out", tmp_path / "m.pth", "--size", 32, "--steps", 1,
                        "--width", 4, "--res-blocks", 1, "--batch-size", 1, "-q"], capsys)
    assert code == 1 and len(err) == 1 and "No space left on device" in err[0]
    rescued = list((tmp_path / "cache" / "nstedu" / "rescued").glob("m-*.pth"))
    assert len(rescued) == 1 and str(rescued[0]) in err[0] and FastStylizer.load(rescued[0]).meta["steps_trained"] == 1


# ---------------------------------------------------------- 24.5 memory: available, before allocating, the option
def test_the_memory_a_run_can_take_is_the_available_memory():
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    got = env.memory_gb(torch.device("cpu")) * 1e9
    assert abs(got - info["MemAvailable"]) < 0.05 * info["MemTotal"] and got < info["MemTotal"]


def _fits_line(err, option):
    assert len(err) == 1 and f"use {option} " in err[0], err
    return float(err[0].split(f"use {option} ")[1].split()[0])


@pytest.mark.parametrize("argv, option", [
    (["fast", "chelsea", "--size", 20000], "--size"),
    (["fast-train", "starry_night", "--size", 20000, "--out", "m.pth"], "--size"),
])
def test_fast_and_fast_train_check_memory_before_allocating(tmp_path, capsys, monkeypatch, argv, option):
    monkeypatch.setattr(env, "memory_gb", lambda device: 8.0)
    monkeypatch.chdir(tmp_path)
    from nstedu.fast import training
    monkeypatch.setattr(FastStylizer, "stylize_tensor", lambda *a: pytest.fail("allocated before the check"))
    monkeypatch.setattr(training, "init_net", lambda *a: pytest.fail("allocated before the check"))
    code, _, err = run([*argv, "-o" if argv[0] == "fast" else "-q", *(["o.png"] if argv[0] == "fast" else [])], capsys)
    fits = int(_fits_line(err, option))
    if argv[0] == "fast":
        width = FastStylizer.load("starry_night").net.width
        w, h = images.fit_longest(*load_image(__import__("nstedu").samples.path("chelsea")).size, fits)
        assert w * h * (30 * width + 200) / 1e9 <= 0.9 * 8 and code == 2
    else:
        assert 4 * env.estimate_memory_gb(fits, fits, 0) <= 0.9 * 8 < 4 * env.estimate_memory_gb(fits + 2, fits + 2, 0)
    assert code == 2 and not list(tmp_path.iterdir())


@pytest.mark.parametrize("option, value", [("--lbfgs-history", 100000000), ("--style-scale", 200)])
def test_the_memory_message_names_the_option_that_is_too_big(tmp_path, capsys, monkeypatch, option, value):
    monkeypatch.setattr(env, "memory_gb", lambda device: 8.0)
    code, _, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", "--size", 64, option, value],
                       capsys)
    fits = _fits_line(err, option)
    assert code == 2 and "--size" not in err[0]
    if option == "--lbfgs-history":
        w, h = images.fit_longest(*load_image(__import__("nstedu").samples.path("chelsea")).size, 64)
        assert env.estimate_memory_gb(w, h, fits) <= 0.9 * 8 < env.estimate_memory_gb(w, h, fits + 1)
    else:
        assert (64 * fits) ** 2 / 1e6 * env.FORWARD_GB_PER_MPX <= 0.9 * 8 < (64 * (fits + 0.02)) ** 2 / 1e6


def test_video_style_mode_checks_memory_before_the_network(tmp_path, capsys, monkeypatch):
    from nstedu import video, videoio
    clip = _clip(tmp_path)
    monkeypatch.setattr(videoio, "available_memory", lambda: 8e9)
    monkeypatch.setattr(video, "OptimizedFrames", lambda *a, **k: pytest.fail("allocated before the check"))
    code, _, err = run(["video", clip, "--style", "starry_night", "--size", 20000, "-o", tmp_path / "o.mp4"], capsys)
    assert code == 2 and len(err) == 1 and "pass --size" in err[0]


# ------------------------------------------------------------------------------------------- 24.6 batch
def test_batch_redoes_outputs_that_are_empty_or_not_the_recorded_size(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        _photo(src / f"p{i}.png")
    out, kw = tmp_path / "out", dict(size=32, steps=1, progress=False, log=lambda m: None)
    first = batch.run_batch(src, ["starry_night"], out, **kw)
    assert len(first.done) == 3
    rows = {r["input"]: r for r in __import__("csv").DictReader(open(out / "manifest.csv"))}
    assert {r["size"] for r in rows.values()} == {"32x21"}
    (out / "p0_starry_night.png").write_bytes(b"")                                   # 0 bytes
    Image.new("RGB", (7, 7)).save(out / "p1_starry_night.png")                       # another size
    again = batch.run_batch(src, ["starry_night"], out, **kw)
    assert sorted(p.name for p in again.done) == ["p0_starry_night.png", "p1_starry_night.png"]
    assert [p.name for p in again.skipped] == ["p2_starry_night.png"]
    assert all(Image.open(p).size == (32, 21) for p in out.glob("p*_starry_night.png"))


def test_batch_into_its_own_input_folder_is_refused(tmp_path, capsys):
    _photo(tmp_path / "a.png")
    code, _, err = run(["batch", tmp_path, "--style", "starry_night", "-o", tmp_path, *TINY], capsys)
    assert code == 2 and len(err) == 1 and "is the input folder" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_batch_settings_errors_are_reported_once_before_any_photo(tmp_path, capsys, monkeypatch):
    (tmp_path / "in").mkdir()
    for i in range(3):
        _photo(tmp_path / "in" / f"{i}.png")
    monkeypatch.setattr(batch, "_run", lambda *a: pytest.fail("a photo was started"))
    code, _, err = run(["batch", tmp_path / "in", "--style", "starry_night,great_wave", "--style-blend", "1",
                        "-o", tmp_path / "out", *TINY], capsys)
    assert code == 2 and err == ["nstedu batch: error: --style-blend has 1 weight(s) for 2 style image(s): give one "
                                 "weight per style"]
    with pytest.raises(ImageError, match="cannot write '.gif'"):  # the format too, before the first photo
        batch.run_batch(tmp_path / "in", "starry_night", tmp_path / "out", ext="gif", size=32, steps=1)


# ------------------------------------------------------------------------------ 24.7 no traceback: one line
@pytest.mark.parametrize("case", ["long-name", "manifest-folder", "style-empty", "style-comma", "batch-style-empty",
                                  "pool5", "weights-zero", "bad-weights-file"])
def test_more_mistakes_are_one_line(tmp_path, capsys, case):
    (tmp_path / "in").mkdir()
    _photo(tmp_path / "in" / "a.png")
    (tmp_path / "out" / "manifest.csv").mkdir(parents=True)
    from nstedu.vgg import CONV_LAYERS
    torch.save({"state_dict": {f"{n}.{k}": torch.zeros(2) for n in CONV_LAYERS for k in ("weight", "bias")}},
               tmp_path / "bad.pth")
    stylize = ["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", *TINY]
    argv, says = {
        "long-name": (["stylize", "chelsea", "starry_night", "-o", tmp_path / ("x" * 300 + ".png")], "shorter name"),
        "manifest-folder": (["batch", tmp_path / "in", "--style", "starry_night", "-o", tmp_path / "out", *TINY],
                            "manifest.csv': is not a file"),
        "style-empty": (["stylize", "chelsea", "--style", "", "-o", tmp_path / "o.png"], "the style is empty"),
        "style-comma": (["stylize", "chelsea", "--style", ",", "-o", tmp_path / "o.png"], "the style is empty"),
        "batch-style-empty": (["batch", tmp_path / "in", "--style", ",", "-o", tmp_path / "b"], "no style given"),
        "pool5": (stylize[:-5] + ["--style-layers", "pool5", "--size", 48, "--steps", 1, "-q"], "too small for layer pool5"),
        "weights-zero": (stylize + ["--content-weight", 0, "--style-weight", 0, "--tv-weight", 0], "nothing to optimize"),
        "bad-weights-file": (stylize + ["--weights", tmp_path / "bad.pth"], "do not fit VGG-19"),
    }[case]
    code, _, err = run(argv, capsys)
    assert code == 2 and len(err) == 1 and says in err[0], err
    if case == "bad-weights-file":
        assert str(tmp_path / "bad.pth") in err[0]


def test_an_os_error_during_the_work_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    """e.g. `video` on a full disk: the system's refusal, named, never a traceback."""
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o.mp4.parts" / "seg_000000.mp4"))
    monkeypatch.setattr("nstedu.cli_video.stylize_video", full)
    code, _, err = run(["video", tmp_path / "in.mp4", "--fast", "starry_night_cpu", "-o", tmp_path / "o.mp4"], capsys)
    assert code == 1 and err == [f"nstedu video: error: '{tmp_path / 'o.mp4.parts' / 'seg_000000.mp4'}': No space left "
                                 f"on device"]


# ---------------------------------------------------- 24.8 never a silently wrong result or a do-nothing exit 0
@pytest.mark.parametrize("argv, says", [
    (["video", "in.mp4", "--fast", "starry_night_cpu", "-o", "o.mp4", "--size", 0], "size must be a whole number"),
    (["video", "in.mp4", "--fast", "starry_night_cpu", "-o", "o.mp4", "--size", -5], "size must be a whole number"),
    (["stylize", "chelsea", "starry_night,great_wave", "--style-blend", "1e308,1e308", "-o", "o.png"], "finite, positive sum"),
    (["stylize", "chelsea", "starry_night", "--multiscale", "--size", 256, "--levels", 100, "--steps", 4, "-o", "o.png"],
     "--levels 100 does not fit --size 256: use 1 to 4"),
    (["stylize", "chelsea", "starry_night", "--multiscale", "--size", 256, "--levels", 3, "--steps", 4, "-o", "o.png"],
     "--steps 4 is too few for 3 levels"),
    (["stylize", "chelsea", "starry_night", "--style-weight", "1e39", "-o", "o.png"], "too large for float32"),
    (["stylize", "chelsea", "starry_night", "--seed", str(2 ** 70), "-o", "o.png"], "seed must be a whole number"),
])
def test_settings_that_would_give_a_wrong_result_are_refused(tmp_path, capsys, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2 and len(err) == 1 and says in err[0], err
    assert not list(tmp_path.iterdir())


def test_a_loss_that_is_never_finite_is_an_error_not_the_photo_back(tmp_path, capsys, monkeypatch):
    from nstedu import transfer

    def infinite(x):
        t = (x * 0).sum() + float("inf")
        return t, {"total": t, "content": t, "style": t, "tv": t}
    with pytest.warns(RuntimeWarning):
        r = transfer.optimize(infinite, torch.full((1, 3, 16, 16), 0.5), TransferConfig(steps=3, progress=False))
    assert r.stop_reason == "non-finite" and not r.history["step"]  # the API says so; the command line refuses it
    monkeypatch.setattr("nstedu.cli.transfer.run_style_transfer", lambda *a, **k: r)
    code, out, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", *TINY], capsys)
    assert code == 2 and not out and len(err) == 1 and "the loss was never finite (loss became inf at step 1)" in err[-1]
    assert not (tmp_path / "o.png").exists()


def test_a_nan_tensor_is_not_saved_as_a_black_image(tmp_path):
    t = torch.rand(1, 3, 8, 8)
    t[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="1 pixel value"):
        save_image(t, tmp_path / "nan.png")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------- 24.9 no hang on a FIFO
def test_a_fifo_as_mask_or_image_is_refused_not_waited_on(tmp_path, capsys):
    fifo = tmp_path / "mask.png"
    os.mkfifo(fifo)
    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("blocked on the FIFO"))
    signal.alarm(60)
    try:
        code, _, err = run(["stylize", "chelsea", "starry_night", "-o", tmp_path / "o.png", "--mask", fifo, *TINY], capsys)
        with pytest.raises(ImageError, match="not a regular file"):
            load_image(fifo)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert code == 2 and len(err) == 1 and "not a regular file" in err[0]


# ------------------------------------------------------------------------------------------ 24.10 Python API
@pytest.mark.parametrize("width", [1, 2, 3, 4, 5])
def test_tensors_are_read_channels_first_whatever_their_width(width):
    red = torch.zeros(1, 3, 4, width)
    red[:, 0] = 1.0
    for t in (red, red[0]):
        img = load_image(t)
        assert img.size == (width, 4) and set(map(tuple, np.asarray(img).reshape(-1, 3))) == {(255, 0, 0)}


@pytest.mark.parametrize("kw, says", [
    (dict(content=None), "content image must be a path, a sample name, a PIL image, an array or a tensor; got NoneType"),
    (dict(content=5), "got int"), (dict(content=[1, 2]), "got list"), (dict(content={}), "got dict"),
    (dict(steps=None), "steps must be set"), (dict(style_layers=None), "style_layers must be a list"),
    (dict(seed="abc"), "seed must be a whole number"), (dict(callback=5), "callback must be a function"),
    (dict(style_layer_weights="a,b"), "style_layer_weights must be numbers"),
])
def test_api_arguments_are_checked_with_one_message_naming_them(kw, says):
    from nstedu import transfer
    kw = dict(dict(content="chelsea", style="starry_night", size=32, steps=1, progress=False), **kw)
    with pytest.raises((ValueError, TypeError)) as e:
        transfer.run_style_transfer(**kw)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_strings_where_lists_are_expected_are_split_not_read_letter_by_letter(tmp_path):
    cfg = TransferConfig(style_layer_weights="0.2, 0.2,0.2,0.3,0.1", style_blend="0.6,0.4").validate()
    assert cfg.style_layer_weights == (0.2, 0.2, 0.2, 0.3, 0.1) and cfg.style_blend == (0.6, 0.4)
    (tmp_path / "in").mkdir()
    _photo(tmp_path / "in" / "a.png")
    report = batch.run_batch(tmp_path / "in", "starry_night", tmp_path / "out", size=32, steps=1, progress=False)
    assert [p.name for p in report.done] == ["a_starry_night.png"]


def test_a_premultiplied_la_image_loads_as_documented():
    la = Image.merge("LA", [Image.new("L", (4, 2), 100), Image.new("L", (4, 2), 255)]).convert("La")
    assert la.mode == "La" and set(map(tuple, np.asarray(load_image(la)).reshape(-1, 3))) == {(100, 100, 100)}
    clear = Image.merge("LA", [Image.new("L", (4, 2), 100), Image.new("L", (4, 2), 0)]).convert("La")
    assert set(map(tuple, np.asarray(load_image(clear)).reshape(-1, 3))) == {(255, 255, 255)}  # transparent: composited on white
