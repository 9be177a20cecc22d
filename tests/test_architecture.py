"""The shape of the package (ARCHITECTURE.md), read from the source with ``ast``: every module-level import points
down one declared layer order (so there is no import circle), no module imports nstedu code from inside a
function, the only function-local imports are of heavy or optional libraries and say so, every module stays under
350 lines, and importing the command line stays cheap."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nstedu"

#: The layer order, bottom first: a module may import (at module level) only modules listed before it.
#: The same order is drawn in ARCHITECTURE.md; a new module must be placed here.
LAYERS = [
    "nstedu.files", "nstedu.images", "nstedu.outputs", "nstedu.samples", "nstedu.weights", "nstedu.vgg", "nstedu.env", "nstedu.allocator",  # pictures and the network
    "nstedu.losses", "nstedu.style_stats", "nstedu.flow", "nstedu.shots", "nstedu.metrics", "nstedu.config", "nstedu.objective",          # what is minimized
    "nstedu.optimizers",
    "nstedu.masks", "nstedu.control",                                                 # before / after
    "nstedu.transfer",                                                                # the optimizer
    "nstedu.multiscale", "nstedu.batch", "nstedu.fast.network", "nstedu.fast.stability", "nstedu.fast.training", "nstedu.fast",
    "nstedu.fast_train", "nstedu.video_formats", "nstedu.videoio", "nstedu.video_signals", "nstedu.clips", "nstedu.video_progress", "nstedu.video_blend", "nstedu.video_frames", "nstedu.video",   # built on the engine
    "nstedu.plotting", "nstedu.widget_layout", "nstedu.widgets", "nstedu.arguments", "nstedu.cli_options", "nstedu.cli_video", "nstedu.cli",  # for people
    "nstedu", "nstedu.__main__",
    "nstedu.exercises", "nstedu.checks.core", "nstedu.checks.colour", "nstedu.checks.content_tv",
    "nstedu.checks.gram_style", "nstedu.checks.style_stats", "nstedu.checks.optimization", "nstedu.checks.harder", "nstedu.checks.capstone", "nstedu.checks.reference_runs",
    "nstedu.checks.manifest", "nstedu.checks.registry", "nstedu.checks.record", "nstedu.checks.reference_use",
    "nstedu.checks.definitions", "nstedu.checks.isolate", "nstedu.checks.sandbox", "nstedu.checks.kernel_optim",
    "nstedu.checks.session",
    "nstedu.checks.hidden_tests", "nstedu.checks.classroom", "nstedu.checks.autograde", "nstedu.checks.grading",
    "nstedu.checks",
    "nstedu.checks.__main__",                                                         # the course's tools
]

#: Libraries that may be imported inside a function: heavy ones (seconds to import) or optional extras.
LAZY_OK = {"matplotlib", "torchvision", "nbformat", "nbclient", "IPython", "ipywidgets", "tqdm", "av", "cv2",
           "jupyter_client", "jupyter_core", "nbgrader", "traitlets",
           "torch._dynamo"}   # torch.optim's own lazy import (~2 s), done early where a grading check will need it


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(node: ast.ImportFrom | ast.Import, module: str) -> list[str]:
    """The nstedu modules an import statement loads (``from . import x`` → the submodule x if it is one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "nstedu"]
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    if node.level:
        base = package
        for _ in range(node.level - 1):
            base = base.rsplit(".", 1)[0]
        base = f"{base}.{node.module}" if node.module else base
    else:
        base = node.module or ""
    if base.split(".")[0] != "nstedu":
        return []
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return subs if len(subs) == len(node.names) else subs + [base]


def imports(module: str):
    """``(module-level nstedu imports, [(line, imported top-level name, nstedu target or None, has comment)] of the
    imports inside functions)``."""
    source = MODULES[module].read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    top = [t for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) for t in resolve(node, module)]
    local = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    name = node.names[0].name if isinstance(node, ast.Import) else (node.module or "")
                    commented = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith("#")
                    local.append((node.lineno, name if name in LAZY_OK else name.split(".")[0], resolve(node, module),
                                  commented))
    return top, local


def test_every_module_has_a_place_in_the_layer_order():
    unplaced = sorted(set(MODULES) - set(LAYERS))
    assert not unplaced, f"add {unplaced} to LAYERS in tests/test_architecture.py (and to ARCHITECTURE.md)"
    assert len(LAYERS) == len(set(LAYERS))


def test_module_level_imports_point_down_the_layers():
    rank = {m: i for i, m in enumerate(LAYERS)}
    upward = [f"{m} imports {t}" for m in MODULES for t in imports(m)[0] if rank[t] >= rank[m]]
    assert upward == []


def test_the_import_graph_has_no_cycle_even_counting_imports_inside_functions():
    graph = {m: set(imports(m)[0]) | {t for *_, targets, _ in imports(m)[1] for t in targets} for m in MODULES}
    state: dict = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import cycle: " + " -> ".join(path[path.index(m):] + [m])
        state[m] = "open"
        for t in sorted(graph[m]):
            visit(t, path + [m])
        state[m] = "done"

    for m in sorted(graph):
        visit(m, [])


def test_function_local_imports_are_only_heavy_or_optional_libraries_and_say_why():
    bad = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {name}" + ("" if commented else " without a comment")
           for m in MODULES for line, name, targets, commented in imports(m)[1]
           if targets or name not in LAZY_OK or not commented]
    assert bad == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_modules_are_at_most_350_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 350


def test_the_graph_reader_sees_imports_it_must_see():
    """Guard the reader itself: known edges of the package are found (else the tests above would pass vacuously)."""
    top, _ = imports("nstedu.transfer")
    assert {"nstedu.control", "nstedu.objective", "nstedu.config", "nstedu.vgg"} <= set(top)
    assert "nstedu.objective" in imports("nstedu.fast.training")[0]
    assert "nstedu.transfer" in imports("nstedu.checks.optimization")[0]
    assert any(name == "torchvision" for _, name, _, _ in imports("nstedu.vgg")[1])


HEAVY = ("matplotlib", "ipywidgets", "IPython", "torchvision", "nstedu.checks", "nstedu.widgets", "nstedu.plotting")


def heavy_modules_after(code: str, tmp_path) -> list[str]:
    """Run ``code`` in a fresh interpreter; return the heavy modules it left in ``sys.modules``."""
    code += ("\nimport sys\nprint('HEAVY', sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
             f"for h in {HEAVY!r})))")
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NSTEDU_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("MPLBACKEND", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.split("HEAVY", 1)[1])


def test_importing_the_command_line_is_cheap(tmp_path):
    """`import nstedu.cli` (what the `nstedu` script does) loads no plotting, widgets or autograder."""
    assert heavy_modules_after("import nstedu.cli", tmp_path) == []


@pytest.mark.slow   # make test's time budget; CI runs it (make test-slow)
def test_stylize_loads_only_what_it_needs(tmp_path):
    """`nstedu stylize --help` and a tiny stylize run (default Caffe weights) import no plotting, widgets,
    autograder or torchvision (whose import alone took 1.5 s)."""
    run = "from nstedu.cli import main\nrc = main({})\nassert rc == 0, rc"
    help_ = "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n  try:\n    main(['stylize', '--help'])\n" \
            "  except SystemExit as e:\n    assert e.code == 0\n"
    assert heavy_modules_after("from nstedu.cli import main\n" + help_, tmp_path) == []
    args = ["stylize", "grace_hopper", "starry_night", "--size", "32", "--steps", "1", "-q", "-o", "out.png"]
    assert heavy_modules_after(run.format(args), tmp_path) == []
    assert (tmp_path / "out.png").is_file() and list((tmp_path / "cache").glob("vgg19_caffe-*.pt"))
