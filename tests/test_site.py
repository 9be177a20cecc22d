"""The course website in a real browser: every page of the built Jupyter Book loads with no console error and no
request to another host, every image on it is present, each lesson shows its figures and MathJax (served by the
site itself) typesets the formulas.

Build the site first: ``make test-site`` does (quick mode, ``tools/build_site.py --quick``) and points this test at
it with ``NSTEDU_SITE``; ``make site`` builds the full-mode site into ``build/site``. Uses Debian's chromium, never a
downloaded browser.
"""
import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.site

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
DEFAULT_SITE = REPO / "build" / "site-quick" / "_build" / "html"
WIDGET_LESSONS = {"06_playground"}            # its one output is a live widget: no figure in a static page


@pytest.fixture(scope="module")
def site():
    html = Path(os.environ.get("NSTEDU_SITE") or DEFAULT_SITE)
    if not (html / "index.html").is_file():
        if os.environ.get("NSTEDU_SITE"):
            pytest.fail(f"NSTEDU_SITE={html}: no index.html there — did the site build fail?")
        pytest.skip(f"no site at {html}: run `make test-site` (or `python tools/build_site.py --quick`)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    handler = functools.partial(type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
                                directory=str(html))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield html, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _pages(html: Path) -> list[str]:
    pages = ["index.html", "intro.html"]
    pages += [f"notebooks/{p.name}" for p in sorted((html / "notebooks").glob("*.html"))]
    pages += [f"exercises/{p.name}" for p in sorted((html / "exercises").glob("*.html"))]
    return pages


def test_every_page_loads_with_its_images_and_no_errors(site):
    from playwright.sync_api import sync_playwright

    html, url = site
    pages = _pages(html)
    lessons = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
    assert [p for p in pages if p.startswith("notebooks/")] == [f"notebooks/{n}.html" for n in lessons]
    assert any(p.startswith("exercises/") for p in pages)
    assert (html / "favicon.ico").is_file()  # asked for by pages without an icon link (index.html redirects)
    assert not (html / "solutions").exists() and "BEGIN SOLUTION" not in "".join(
        (html / p).read_text() for p in pages)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            errors, foreign = [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: foreign.append(r.url) if urlparse(r.url).hostname not in ("127.0.0.1", None)
                    and not r.url.startswith("data:") else None)
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            for name in pages:
                errors.clear()
                foreign.clear()
                response = page.goto(f"{url}/{name}", wait_until="load", timeout=60_000)
                page.wait_for_load_state("networkidle", timeout=60_000)
                images = page.evaluate("""() => Array.from(document.querySelectorAll('main img')).map(
                    i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))""")
                broken = [i["src"] for i in images if not i["ok"]]
                figures = page.locator("main .cell_output img").count()
                if response is None or response.status != 200:
                    problems.append(f"{name}: HTTP {response.status if response else 'no response'}")
                if errors:
                    problems.append(f"{name}: console errors {errors[:3]}")
                if foreign:
                    problems.append(f"{name}: requests to other hosts {foreign[:3]}")
                if broken:
                    problems.append(f"{name}: broken images {broken[:3]}")
                stem = Path(name).stem
                if name.startswith("notebooks/") and stem not in WIDGET_LESSONS and figures == 0:
                    problems.append(f"{name}: no figure in the executed lesson")
                if name == "notebooks/00_welcome.html":
                    page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_Display').length > 0",
                                           timeout=30_000)
                    page.screenshot(path=str(ARTIFACTS / "site_00_welcome.png"), full_page=False)
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
