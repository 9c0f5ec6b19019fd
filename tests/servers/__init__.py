"""In-repo HTTP test doubles for services that have no local emulator.

- ``tests.servers.azure_search.FakeAzureSearch``: the Azure AI Search data-plane REST shapes the
  ``azure-search-documents`` SDK uses (index definition, docs/search.index, docs/search.post.search,
  docs/$count), with failure injection (429 + Retry-After, 207 per-document failures).
- ``tests.servers.azure_openai.FakeAzureOpenAI``: Azure OpenAI / OpenAI-compatible embeddings and chat
  completions (including SSE streaming), with 429 + Retry-After injection and scripted chat replies.

These are TEST DOUBLES: small, honest implementations of the documented request/response shapes so
the real SDK clients can be exercised over HTTP. They are not products and not emulators.

Each server runs on 127.0.0.1 on a random port in a daemon thread::

    with FakeAzureOpenAI(api_key="k") as server:
        client = AzureOpenAI(azure_endpoint=server.url, api_key="k", api_version="2024-10-21")
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)


@dataclass
class Request:
    """One request as the test double received it (for assertions in tests)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: Any = None  # dict/list -> JSON; bytes -> raw; None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    stream: Callable[[Callable[[bytes], None]], None] | None = None  # writes chunks (SSE); no Content-Length


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("test server: " + format, *args)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            resp = self.server.app.handle(req)
        except Exception as exc:  # a bug in the double: answer 500 and say why
            log.exception("test server error")
            resp = Response(500, {"error": {"code": "TestServerError", "message": repr(exc)}})
        self._send(resp)

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        headers = dict(resp.headers)
        if resp.stream is not None:
            headers.setdefault("Content-Type", "text/event-stream")
            headers["Connection"] = "close"
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()

            def write(chunk: bytes) -> None:
                self.wfile.write(chunk)
                self.wfile.flush()

            try:
                resp.stream(write)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        if resp.body is None:
            payload = b""
        elif isinstance(resp.body, bytes):
            payload = resp.body
        else:
            payload = json.dumps(resp.body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json; odata.metadata=minimal")
        headers["Content-Length"] = str(len(payload))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: "TestServer") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app


class TestServer:
    """Base class: a threaded HTTP server on 127.0.0.1:<random port>. Subclasses implement ``handle``."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.RLock()
        self.requests: list[Request] = []

    def handle(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "TestServer":
        self._httpd = _Server(self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)
