"""A real headless Chromium for tests, driven by Playwright for Python: one browser per test session.

- ``browser`` (session fixture): a Playwright ``Browser`` on Debian's Chromium (``/usr/bin/chromium``, or
  ``$ONDATA_CHROMIUM``), launched through ``executable_path`` with the flags a closed network needs
  (Playwright's own browser download is never used). The test skips with the reason only when
  Playwright or Chromium is missing or Chromium cannot start; ``make test`` installs Chromium.
- ``artifacts_dir()``: where browser tests write screenshots and measurements
  (``$ONDATA_TEST_ARTIFACTS``, default ``test-artifacts/`` in the repository).
- ``report_line(text)``: a line that the terminal summary of ``make test`` prints (works under xdist).
- ``browser_page`` (fixture): a fresh 1280x900 page collecting script errors; ``screenshot(page, name)``,
  ``horizontal_overflow(page)``, ``broken_images(page)`` and ``visible_rows(page, table_id)``: what a
  page check asserts (used by the HTML report and comparison checks).

tests/conftest.py imports the fixture, so any test module can ask for ``browser``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
REPO = Path(__file__).resolve().parents[1]
REPORT_FILE = "summary-lines.txt"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("ONDATA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def artifacts_dir() -> Path:
    out = Path(os.environ.get("ONDATA_TEST_ARTIFACTS") or REPO / "test-artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


def report_line(text: str) -> None:
    """Queue ``text`` for the end-of-run terminal summary (see ``pytest_terminal_summary`` in conftest)."""
    with (artifacts_dir() / REPORT_FILE).open("a", encoding="utf-8") as fh:
        fh.write(text.rstrip("\n") + "\n")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (it is in the dev extras: pip install -e '.[dev]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found (/usr/bin/chromium or $ONDATA_CHROMIUM); `make test` installs Debian's "
                    "chromium with apt-get when run as root")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, timeout=60_000)
    except Error as exc:
        playwright.stop()
        pytest.skip(f"Chromium at {path} did not start: {str(exc).splitlines()[0]}")
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


def serve_in_thread(app, *, timeout: float = 20.0):
    """Run an ASGI ``app`` with uvicorn on a free loopback port in a daemon thread; a context manager
    yielding its base URL (``http://127.0.0.1:PORT``)."""
    import contextlib
    import socket
    import threading
    import time

    import uvicorn

    @contextlib.contextmanager
    def running():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    return running()


# ------------------------------------------------------------------ checks of a page as a reader sees it
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture
def browser_page(browser):
    """A fresh 1280x900 page on the session's browser; script errors are collected in ``page.console_errors``."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """Write ``<artifacts>/<name>.png`` and return its path."""
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def horizontal_overflow(page) -> list[str]:
    """Elements whose right edge passes the viewport (or the page is wider than it), described briefly."""
    return page.evaluate("""() => {
        const w = document.documentElement.clientWidth, out = [];
        if (document.documentElement.scrollWidth > w) out.push('document ' + document.documentElement.scrollWidth + 'px > ' + w + 'px');
        for (const el of document.body.querySelectorAll('*')) {
            const r = el.getBoundingClientRect();
            if (r.width > 0 && r.right > w + 0.5 && getComputedStyle(el).position !== 'fixed')
                out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' right=' + Math.round(r.right));
            if (out.length > 10) break;
        }
        return out;
    }""")


def broken_images(page) -> list[str]:
    """Images that did not load (alt text or the start of the source)."""
    return page.evaluate("""() => Array.from(document.images)
        .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.alt || img.src.slice(0, 60))""")


def visible_rows(page, table_id: str) -> int:
    """Visible items of a table: its rows, or its ``<tbody>`` groups in a table with class ``grouped``."""
    return page.evaluate(f"""() => {{
        const t = document.getElementById('{table_id}');
        const items = t.classList.contains('grouped') ? Array.from(t.tBodies) : Array.from(t.tBodies[0].rows);
        return items.filter(r => !r.hidden).length; }}""")
