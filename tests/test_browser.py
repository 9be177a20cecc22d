"""The playground in a real browser: JupyterLab started here on 127.0.0.1, driven by Playwright with Debian's chromium.

Opens notebooks/06_playground.ipynb (a temporary copy, quick mode), runs all cells, clicks Run, waits for the
preview to change, clicks Stop and Save, and saves screenshots to tests/artifacts/. Run with ``make test-browser``
(``pytest -m browser``). Never downloads a browser: it uses /usr/bin/chromium (``apt-get install chromium``).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
NOTEBOOK = "06_playground.ipynb"
SERVER_START_S = 45        # the fixture's budget to get the server answering
TEST_BUDGET_S = 120        # the browser part; with start and shutdown the whole test stays under 3 minutes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, method: str = "GET", timeout: float = 5.0):
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout) as r:
        return r.status, r.read()


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free 127.0.0.1 port over a copy of the playground notebook; yields its URL."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run browser tests")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed (pip install playwright)")
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)   # fresh user settings, without the "get Jupyter news?" pop-up over the screenshot
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NSTEDU_QUICK": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings")}
    log = open(tmp_path / "jupyter.log", "wb")
    cmd = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
           "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True"]   # defines window.jupyterapp (as Galata's test server does)
    server = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log_tail():
        return (tmp_path / "jupyter.log").read_text(errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {server.returncode}:\n{log_tail()}")
            try:
                if _get(f"{url}/api/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {SERVER_START_S} s:\n{log_tail()}")
            time.sleep(0.5)
        yield url
    finally:
        # Ask the server to shut down its kernels and itself (kernels run in their own sessions, so killing the
        # server alone would leave them behind); then make sure the server process is gone.
        try:
            for kernel in json.loads(_get(f"{url}/api/kernels")[1]):
                _get(f"{url}/api/kernels/{kernel['id']}", method="DELETE", timeout=10)
            _get(f"{url}/api/shutdown", method="POST")
        except OSError:
            pass
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()


def test_playground_runs_and_stops_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + TEST_BUDGET_S

    def left_ms():
        return max(1_000, int((deadline - time.monotonic()) * 1000))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1200})
            try:
                page.goto(f"{lab}/lab/tree/{NOTEBOOK}?reset", wait_until="domcontentloaded", timeout=left_ms())
                page.wait_for_selector(".jp-Notebook", timeout=left_ms())
                page.wait_for_function(   # the notebook's kernel has started and is idle
                    """() => { const w = window.jupyterapp && jupyterapp.shell.currentWidget;
                               const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                               return !!k && k.status === 'idle'; }""", timeout=left_ms())
                # Start the cells without waiting for them (returning the promise would block until all finish).
                page.evaluate("() => { jupyterapp.commands.execute('notebook:run-all-cells'); }")

                run, stop = page.locator(".nstedu-run"), page.locator(".nstedu-stop")
                preview, status = page.locator(".nstedu-preview"), page.locator(".nstedu-status")
                run.wait_for(state="visible", timeout=left_ms())
                page.wait_for_function("() => { const el = document.querySelector('.nstedu-preview');"
                                       " return el && el.src && el.naturalWidth > 0; }", timeout=left_ms())
                before = preview.get_attribute("src")
                run.scroll_into_view_if_needed()
                run.click()
                page.wait_for_function(   # a new image arrived while the optimization runs
                    "(before) => { const el = document.querySelector('.nstedu-preview');"
                    " return el.src !== before && el.naturalWidth > 0; }", arg=before, timeout=left_ms())
                page.wait_for_function(   # its status line follows (a separate message: the image may come first)
                    "() => document.querySelector('.nstedu-status').innerText.includes('step')", timeout=left_ms())
                assert "step" in status.inner_text()
                stop.click()
                page.wait_for_function("() => /stopped|finished/.test(document.querySelector('.nstedu-status').textContent)",
                                       timeout=left_ms())
                final_status = status.inner_text()
                page.locator(".nstedu-save").click()
                page.locator(".nstedu-download a").wait_for(state="visible", timeout=left_ms())

                playground = page.locator(".nstedu-playground")
                playground.scroll_into_view_if_needed()
                for tab in ("Weights", "Layers", "Optimizer", "Images"):   # every tab renders its controls
                    page.locator(".nstedu-playground .lm-TabBar-tab", has_text=tab).click()
                    page.locator(".nstedu-playground .widget-tab-contents, .nstedu-playground .jupyter-widget-tab-contents"
                                 ).first.screenshot(path=str(ARTIFACTS / f"playground_tab_{tab.lower()}.png"))
                page.screenshot(path=str(ARTIFACTS / "playground.png"))
                playground.screenshot(path=str(ARTIFACTS / "playground_widget.png"))
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "playground_failure.png"))
                raise

            assert playground.is_visible()
            box = playground.bounding_box()
            assert box and box["width"] > 400 and box["height"] > 300
            assert "stopped" in final_status, f"Stop did not end the run: status is {final_status!r}"
            assert page.locator(".nstedu-gallery img").count() == 1          # the stopped run is in the gallery
            assert page.locator(".nstedu-download a").get_attribute("href").startswith("data:image/png;base64,")
            assert page.locator(".nstedu-error").inner_text().strip() == ""
            tracebacks = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
                                      has_text="Traceback")
            assert tracebacks.count() == 0, tracebacks.all_inner_texts()
        finally:
            browser.close()
