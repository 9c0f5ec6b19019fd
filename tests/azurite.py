"""Start and stop a real Azurite blob emulator for tests (npm package ``azurite``, see package.json).

``azurite_server(location)`` checks that ``node_modules/.bin/azurite-blob`` is installed (running
``npm install`` once when node/npm are present but the package is not), starts it on a free port
on 127.0.0.1 with its data in ``location``, waits until it answers, yields an ``Azurite`` handle
(connection string, account URL, key) and stops it. When node is missing the tests are skipped
with a clear reason, except under CI (``CI=true``), where a missing emulator is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from azure.core.pipeline.transport import RequestsTransport

REPO = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO / "node_modules" / ".bin" / "azurite-blob"

#: The emulator's well-known development account (public, documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    host: str
    port: int
    location: Path

    @property
    def account_url(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def service_client(self, **kwargs):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, **kwargs)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"Azurite is required under CI but {reason}", pytrace=False)
    pytest.skip(f"Azurite blob emulator unavailable: {reason}")


def ensure_installed() -> Path:
    """The azurite-blob launcher, installed through npm when missing; skip/fail when node is absent."""
    if AZURITE_BIN.exists():
        return AZURITE_BIN
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node/npm are not installed (install Node.js 18+, then `npm install` in the repo)")
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0 or not AZURITE_BIN.exists():
        _unavailable(f"`npm install` did not install azurite: {proc.stderr.strip()[-500:]}")
    return AZURITE_BIN


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_ready(az: Azurite, proc: subprocess.Popen, timeout: float) -> None:
    from azure.core.exceptions import AzureError

    deadline = time.monotonic() + timeout
    client = az.service_client(retry_total=0, connection_timeout=2, read_timeout=5)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited with code {proc.returncode}")
        try:
            client.get_service_properties()
            return
        except AzureError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"azurite did not answer on port {az.port} within {timeout:.0f} s")
            time.sleep(0.2)


def start(location: Path, *, host: str = "127.0.0.1", port: int | None = None, timeout: float = 60.0
          ) -> tuple[Azurite, subprocess.Popen]:
    """Start Azurite (on a free port unless ``port``) and wait until it answers."""
    binary = ensure_installed()
    location.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(3):  # a free port can be taken between choosing it and binding it
        az = Azurite(host, port or free_port(host), location)
        log = open(location / f"azurite-{az.port}.log", "wb")
        proc = subprocess.Popen(
            [str(binary), "--blobHost", host, "--blobPort", str(az.port), "--location", str(location),
             "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        try:
            _wait_ready(az, proc, timeout)
            return az, proc
        except RuntimeError as exc:
            last = exc
            stop(proc)
            if port:
                break
    _unavailable(f"it could not be started: {last}")
    raise AssertionError("unreachable")


def stop(proc: subprocess.Popen) -> None:
    """Stop the emulator process (and its children) started by ``start``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def azurite_server(location: Path) -> Iterator[Azurite]:
    az, proc = start(location)
    try:
        yield az
    finally:
        stop(proc)


class FaultyTransport(RequestsTransport):
    """A real HTTP transport that records requests and can turn chosen responses into 503s."""

    def __init__(self, *, fail: int = 0, match: str = "", status: int = 503, retry_after: str | None = None,
                 skip: int = 0, connection_error: bool = False, **kw):
        super().__init__(**kw)
        self.connection_error = connection_error  # fail by dropping the connection instead of a status
        self.requests: list[tuple[str, str]] = []
        self.fail, self.match, self.status, self.retry_after = fail, match, status, retry_after
        self.skip = skip  # matching requests answered normally before the failures start
        self._lock = threading.Lock()

    def send(self, request, **kwargs):
        with self._lock:
            self.requests.append((request.method, request.url))
            inject = self.fail > 0 and self.match in request.url
            if inject and self.skip > 0:
                self.skip -= 1
                inject = False
            elif inject:
                self.fail -= 1
        if inject and self.connection_error:
            from azure.core.exceptions import ServiceResponseError

            raise ServiceResponseError("the test transport dropped the connection")
        response = super().send(request, **kwargs)
        if inject:
            response.status_code = self.status
            response.reason = "Service Unavailable"
            if self.retry_after is not None:
                response.headers["Retry-After"] = self.retry_after
        return response
