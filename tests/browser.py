"""A real headless Chromium for tests, driven by Playwright for Python: one browser per test session.

- ``browser`` (session fixture): a Playwright ``Browser`` on Debian's Chromium (``/usr/bin/chromium``, or
  ``$ONDATA_CHROMIUM``), launched through ``executable_path`` with the flags a closed network needs
  (Playwright's own browser download is never used). The test skips with the reason only when
  Playwright or Chromium is missing or Chromium cannot start; ``make test`` installs Chromium.
- ``artifacts_dir()``: where browser tests write screenshots and measurements
  (``$ONDATA_TEST_ARTIFACTS``, default ``test-artifacts/`` in the repository).
- ``report_line(text)``: a line that the terminal summary of ``make test`` prints (works under xdist).

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
