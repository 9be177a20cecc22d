"""What students install must not contain the solutions: build the wheel and the sdist from the committed files and
look inside. The shipped full-mode references are inside the wheel, and small."""
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _model_answers() -> list[bytes]:
    """The lines of every written model answer in solutions/ (what must not ship; the solution *code* is nstedu's own
    reference implementation, which the package is)."""
    import nbformat

    out = []
    for path in sorted((REPO / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            for block in cell.source.split("### BEGIN SOLUTION")[1:]:
                out += [ln.strip().encode() for ln in block.split("### END SOLUTION")[0].split("\n") if len(ln.strip()) > 40]
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split("\n")
    for name in filter(None, files):
        path = REPO / name
        if path.is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(path.read_bytes())
    assert (src / "solutions").is_dir()        # the source tree has them …
    dist = src / "dist"
    code = ("from setuptools import build_meta as b\n"
            "print(b.build_wheel('dist')); print(b.build_sdist('dist'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next(dist.glob("*.whl")), next(dist.glob("*.tar.gz"))


def _contents(archive):
    if str(archive).endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            return {n: z.read(n) for n in z.namelist()}
    with tarfile.open(archive) as t:
        return {m.name.split("/", 1)[1]: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_no_solutions_in_what_students_install(built, kind):
    files = _contents(built[0] if kind == "wheel" else built[1])
    assert any(n.startswith("nstedu/checks/") for n in files)                       # … the package is there …
    assert not [n for n in files if "solutions/" in n or n.startswith(("classroom/", "tools/"))], kind
    answers = _model_answers()
    assert len(answers) >= 9
    notebooks = [n for n, data in files.items() if n.endswith(".ipynb") and b"BEGIN SOLUTION" in data]
    leaks = [n for n, data in files.items() if not n.startswith("tests/") and any(a in data for a in answers)]
    assert notebooks == [] and leaks == [], f"{kind}: solution text in {notebooks + leaks}"   # … the solutions are not


def test_the_wheel_ships_the_reference_folder_and_stays_small(built):
    files = _contents(built[0])
    assert "nstedu/data/references/README.md" in files
    refs = [n for n in files if n.startswith("nstedu/data/references/") and n.endswith(".jpg")]
    assert sum(len(files[n]) for n in refs) <= 2 * 2 ** 20


def test_the_wheel_ships_the_real_clips_with_their_licence(built):
    files = _contents(built[0])
    clips = [n for n in files if n.startswith("nstedu/data/real_") and n.endswith(".mp4")]
    assert sorted(clips) == ["nstedu/data/real_box.mp4", "nstedu/data/real_cut.mp4"]
    assert sum(len(files[n]) for n in clips) <= 2 ** 20
    assert b"Apache-2.0" in files["nstedu/data/SOURCES.md"] and b"real_cut.mp4" in files["nstedu/data/SOURCES.md"]
