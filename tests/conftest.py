"""Shared test fixtures. Keep this small: module-specific fixtures live in their test modules."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:  # `from tests.azurite import ...` also under a bare `pytest`
    sys.path.insert(0, _REPO)

for _key, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)


from tests.browser import REPORT_FILE, artifacts_dir, browser, browser_page  # noqa: E402,F401  (the one browser)


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller, not an xdist worker
        (artifacts_dir() / REPORT_FILE).unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter):
    """Print what tests queued with ``tests.browser.report_line`` (measurements, artifact paths)."""
    path = artifacts_dir() / REPORT_FILE
    if path.exists():
        terminalreporter.section("measured")
        for line in path.read_text(encoding="utf-8").splitlines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """A real Azurite blob emulator on a free port for the whole session (see tests/azurite.py)."""
    from tests.azurite import azurite_server

    with azurite_server(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect server for the session (flow runs, artifacts); costs seconds to start."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def blob_container(azurite):
    """A fresh, empty container in Azurite (deleted afterwards): an azure ContainerClient."""
    service = azurite.service_client()
    container = service.create_container(f"t{uuid.uuid4().hex[:20]}")
    try:
        yield container
    finally:
        container.delete_container()
        service.close()


def local_index_contents(directory):
    """What a LocalIndex folder holds: a Counter of (source_id, chunk content), duplicates counted."""
    import sqlite3
    from collections import Counter
    from pathlib import Path

    con = sqlite3.connect(f"file:{Path(directory) / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return Counter(con.execute("SELECT source_id, content FROM chunks").fetchall())
    finally:
        con.close()


@pytest.fixture
def index_contents():
    """``index_contents(dir)`` -> Counter of (source_id, chunk content) of a local index (read-only)."""
    return local_index_contents

