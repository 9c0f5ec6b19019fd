"""An HTTP server (FastAPI) speaking Azure OpenAI's On-Your-Data chat-completions API over our indexes.

``create_app(facade, authenticator=..., limits=...)`` exposes

- ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` — the body of an On
  Your Data request; JSON answer, or server-sent events when ``stream`` is true. The request's
  ``data_sources[0].parameters.index_name`` picks one of the indexes the facade serves (an unknown
  name is a 404; a name is only ever looked up, never opened as a path);
- ``GET /healthz``.

An unchanged ``openai.AzureOpenAI(azure_endpoint="http://host:port", api_key=..., api_version=...)``
client works against it (``extra_body={"data_sources": [...]}``).

Callers (``retrieval.principals``): the ``authenticator`` turns the ``api-key`` header or an
``Authorization: Bearer`` key or token into a ``Principal`` whose groups every search runs with; a
wrong credential is a 401. With no authenticator configured every caller is anonymous and sees
public chunks only. Every route finds its caller through ONE dependency, ``app.state.principal``
(``principal_dependency``): the API, the page's citation route and the document route alike.

Every answer that is not a success has On Your Data's error shape ``{"error": {"code", "message"}}``:

- malformed input is a 400: invalid JSON or UTF-8, nesting deeper than ``limits.max_json_depth``,
  lone surrogates, NaN/Infinity, out-of-range numbers, wrong types (``retrieval.oyd.parse_request``),
  a question over ``limits.max_question_tokens``;
- a body over ``limits.max_body_bytes`` is a 413, decided from ``Content-Length`` before reading,
  or while counting a chunked body, never by reading it whole (``BodyLimitMiddleware``);
- more than ``limits.max_concurrency`` requests in flight get 429 with ``Retry-After``; a request
  with no response after ``limits.request_timeout_seconds`` gets 408 (``GuardMiddleware``);
- any unexpected exception is a JSON 500 carrying a request id; the traceback goes to the server
  log only, under that id (``AuditMiddleware``);
- unknown routes and methods are 404/405 in the same shape; there is no ``/openapi.json`` or ``/docs``.

Audit: ``AuditMiddleware`` writes one line per HTTP request to the ``ondata.access`` logger (INFO):
request id, principal name, number of groups, index, query type, number of citations, status and
latency. Never the question, a key or a token.

With ``page=True`` (``ondata serve`` does) the same app serves the chat web page at ``/`` and the
routes it uses (``retrieval.webapp``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexers.errors import OndataError
from retrieval.errors import ChatModelError, ContentFilteredError, OYDRequestError, RateLimitedError
from retrieval.oyd import OnYourDataFacade
from retrieval.principals import AuthenticationFailed, Authenticator, Principal

log = logging.getLogger(__name__)
access_log = logging.getLogger("ondata.access")

__all__ = ["Principal", "ServerLimits", "create_app", "error_response", "principal_dependency", "parse_json_body"]

AUDIT_KEY = "ondata.audit"


@dataclass(frozen=True)
class ServerLimits:
    """What one request may cost the server (``ONDATA_SERVE_*`` settings; see the module docstring)."""

    max_body_bytes: int = 1 << 20
    max_concurrency: int = 8
    request_timeout_seconds: float = 120.0
    max_question_tokens: int = 2000
    max_json_depth: int = 32
    retry_after_seconds: int = 1


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _error_bytes(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def error_response(exc: OndataError):
    """The HTTP error for a typed failure of the facade or the chat model."""
    if isinstance(exc, OYDRequestError):
        return _error(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, ContentFilteredError):
        return _error(400, "content_filter", exc.message)
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(int(exc.retry_after + 0.999))} if exc.retry_after else None
        return _error(429, "429", exc.message, headers)
    if isinstance(exc, ChatModelError):
        return _error(502, "BadGateway", exc.message)
    return _error(500, "InternalServerError", exc.message)


DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
          "for an active subscription and use a correct regional API endpoint for your resource.")


def _audit(scope_or_request: Any) -> dict[str, Any]:
    scope = scope_or_request.scope if hasattr(scope_or_request, "scope") else scope_or_request
    return scope.setdefault(AUDIT_KEY, {})


def principal_dependency(authenticator: Authenticator | None) -> Callable[[Request], Principal]:
    """The FastAPI dependency that yields the caller's ``Principal`` or raises a 401 ``OYDRequestError``."""
    auth = authenticator or Authenticator()

    def principal(request: Request) -> Principal:
        try:
            found = auth.authenticate(request.headers)
        except AuthenticationFailed as exc:
            _audit(request)["principal"] = "-"
            log.info("request %s: authentication failed: %s", _audit(request).get("id", "-"), exc.message)
            raise OYDRequestError(DENIED, status=401, code="401") from None
        _audit(request)["principal"] = found
        return found

    return principal


# --- JSON bodies -------------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


def parse_json_body(raw: bytes, *, max_depth: int = 32) -> Any:
    """The JSON value of a request body, or a 400 ``OYDRequestError`` saying what is wrong with it.

    Refused: invalid JSON or UTF-8, ``NaN``/``Infinity``, integers of more digits than Python
    parses, nesting deeper than ``max_depth``, strings (keys too) holding lone surrogates.
    """
    if not raw.strip():
        raise OYDRequestError("The request body is empty; it must be a JSON object.", status=400, code="400")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise OYDRequestError(f"The request body nests deeper than {max_depth} levels.", status=400, code="400") from None
    except UnicodeDecodeError:
        raise OYDRequestError("The request body is not valid UTF-8.", status=400, code="400") from None
    except ValueError as exc:
        raise OYDRequestError(f"The request body is not valid JSON: {str(exc)[:200]}", status=400, code="400") from None
    _check_json(value, max_depth)
    return value


def _check_json(value: Any, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise OYDRequestError("The request body holds a string with a lone surrogate (invalid Unicode).",
                                      status=400, code="400")
            continue
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                raise OYDRequestError(f"The request body nests deeper than {max_depth} levels.", status=400, code="400")
            if isinstance(item, dict):
                for k, v in item.items():
                    stack.append((k, depth))
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in item)


# --- ASGI middlewares ------------------------------------------------------------------------------

async def _send_json(send, status: int, payload: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})


class BodyTooLarge(Exception):
    """A request body grew past the limit while it was being read."""


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: from ``Content-Length`` before reading, or counted while reading."""

    def __init__(self, app, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"The request body is larger than {self.max_bytes} bytes."
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return await _send_json(send, 400, _error_bytes("400", "Content-Length is not a number."))
                if length > self.max_bytes:
                    return await _send_json(send, 413, _error_bytes("413", message), [(b"connection", b"close")])
        seen = 0
        started = exceeded = False

        async def counted_receive():
            nonlocal seen, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge(message)
            return msg

        async def watched_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:  # BodyTooLarge, possibly wrapped in an ExceptionGroup by a task group on the way up
            if not exceeded or started:
                raise
            await _send_json(send, 413, _error_bytes("413", message), [(b"connection", b"close")])


class GuardMiddleware:
    """At most ``max_concurrency`` requests in flight (else 429 + Retry-After); 408 when no response in time.

    A request that timed out keeps its slot until its work (a thread) really ends, so runaway work
    cannot pile up behind the limit. ``/healthz`` is not counted.
    """

    def __init__(self, app, *, max_concurrency: int, timeout_seconds: float, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.max_concurrency = max_concurrency
        self.timeout = timeout_seconds
        self.retry_after = retry_after_seconds
        self.active = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") == "/healthz":
            return await self.app(scope, receive, send)
        if self.active >= self.max_concurrency:
            return await _send_json(
                send, 429, _error_bytes("429", f"More than {self.max_concurrency} requests are in flight; retry later."),
                [(b"retry-after", str(self.retry_after).encode())])
        self.active += 1
        started = asyncio.Event()
        abandoned = False

        async def watched_send(msg):
            if abandoned:
                return
            if msg["type"] == "http.response.start":
                started.set()
            await send(msg)

        task = asyncio.ensure_future(self.app(scope, receive, watched_send))
        release = True
        try:
            waiter = asyncio.ensure_future(started.wait())
            done, _ = await asyncio.wait({task, waiter}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                waiter.cancel()
                abandoned = True
                release = False
                task.add_done_callback(self._finished)
                task.cancel()
                _audit(scope)["timed_out"] = True
                await _send_json(send, 408, _error_bytes(
                    "408", f"The request took longer than {self.timeout:g} seconds and was abandoned."))
                return
            waiter.cancel()
            await task
        finally:
            if release:
                self.active -= 1

    def _finished(self, task: asyncio.Future) -> None:
        self.active -= 1
        if not task.cancelled() and task.exception() is not None:
            log.warning("an abandoned request ended with %s", type(task.exception()).__name__)


_FIELD = re.compile(r"[^\w.@:/+-]")


def _field(value: Any, limit: int = 64) -> str:
    text = "-" if value is None or value == "" else str(value)
    return _FIELD.sub("_", text)[:limit]


class AuditMiddleware:
    """A request id for every request, one audit line per request, and the JSON 500 catch-all."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = uuid.uuid4().hex[:16]
        audit = _audit(scope)
        audit["id"] = rid
        start = time.perf_counter()
        status = 0

        async def stamped_send(msg):
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
                msg = {**msg, "headers": [*msg.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(msg)

        try:
            await self.app(scope, receive, stamped_send)
        except Exception:  # noqa: BLE001 - the catch-all: details in the server log only
            log.exception("request %s failed", rid)
            if status == 0:
                status = 500
                await _send_json(send, 500, _error_bytes(
                    "InternalServerError", f"The server had an error processing your request (request id {rid})."),
                    [(b"x-request-id", rid.encode())])
        finally:
            principal = audit.get("principal")
            name, groups = ("-", "-") if not isinstance(principal, Principal) else (principal.name, principal.group_count)
            access_log.info(
                "request=%s method=%s path=%s principal=%s groups=%s index=%s query_type=%s citations=%s status=%s "
                "latency_ms=%.1f", rid, _field(scope.get("method")), _field(scope.get("path"), 96), _field(name),
                groups, _field(audit.get("index")), _field(audit.get("query_type")), audit.get("citations", "-"),
                status, (time.perf_counter() - start) * 1000)


def json_error_http_protocol():
    """uvicorn's h11 protocol whose answer to a request it cannot parse (bad framing, an illegal header) is
    On Your Data's JSON error shape, like every other answer of the server (pass as ``uvicorn.run(http=...)``)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JSONErrorH11Protocol(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            payload = _error_bytes("400", f"Invalid HTTP request: {msg}")
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                       (b"connection", b"close")]
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=payload)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
            self.transport.close()

    return JSONErrorH11Protocol


# --- the app ---------------------------------------------------------------------------------------

def _request_summary(body: Any) -> tuple[Any, Any]:
    """(index_name, query_type) of a body as the audit shows them, when they are there."""
    try:
        params = body["data_sources"][0]["parameters"]
        return params.get("index_name"), params.get("query_type", "simple")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None, None


def _citation_count(result: dict[str, Any]) -> int:
    try:
        return len(result["choices"][0]["message"]["context"].get("citations", []))
    except (KeyError, IndexError, TypeError, AttributeError):
        return 0


def create_app(facade: OnYourDataFacade, *, authenticator: Authenticator | None = None, api_key: str | None = None,
               limits: ServerLimits = ServerLimits(), page: bool = False, index_names: Sequence[str] = (),
               documents: Any = None) -> Any:
    """The FastAPI app serving ``facade`` (see the module docstring).

    ``authenticator``: who may call and with which groups (None: anonymous public-only callers);
    ``api_key`` is a shorthand for a shared key whose callers see public chunks only.
    ``page``: also serve the chat web page (``retrieval.webapp``) over the indexes ``index_names``
    (the first is the default), opening original documents through ``documents`` (a
    ``retrieval.documents.DocumentFiles``, or None for links to document URLs only).
    """
    if authenticator is None and api_key is not None:
        authenticator = Authenticator(shared_key=api_key)
    app = FastAPI(title="ondata On-Your-Data compatible chat completions", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.principal = principal_dependency(authenticator)
    app.state.limits = limits

    @app.exception_handler(OYDRequestError)
    async def oyd_error(_request: Request, exc: OYDRequestError):
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        message = {404: "Resource not found.", 405: "The method is not allowed on this route."}.get(
            exc.status_code, str(exc.detail))
        return _error(exc.status_code, str(exc.status_code), message, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = "/".join(str(p) for p in first.get("loc", ()))
        return _error(400, "400", f"Validation error at #/{where}: {first.get('msg', 'invalid')}"[:500])

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request: Request, exc: BodyTooLarge):
        return _error(413, "413", str(exc), {"connection": "close"})

    def caller(request: Request) -> Principal:  # sync: FastAPI runs it in its thread pool
        return request.app.state.principal(request)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/openai/deployments/{deployment}/chat/completions")
    async def chat_completions(deployment: str, request: Request, principal: Principal = Depends(caller)):
        if not request.query_params.get("api-version"):
            return _error(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
        body = parse_json_body(await request.body(), max_depth=limits.max_json_depth)
        audit = _audit(request)
        audit["index"], audit["query_type"] = _request_summary(body)
        try:
            if isinstance(body, dict) and body.get("stream") is True:
                chunks = await run_in_threadpool(facade.stream_chat_completions, body, deployment=deployment,
                                                 groups=principal.groups)

                def events():
                    for i, chunk in enumerate(chunks):
                        if i == 0:
                            audit["citations"] = len(((chunk.get("choices") or [{}])[0].get("delta", {})
                                                      .get("context") or {}).get("citations", []))
                        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                    yield "data: [DONE]\n\n"

                return StreamingResponse(events(), media_type="text/event-stream")
            result = await run_in_threadpool(facade.chat_completions, body, deployment=deployment,
                                             groups=principal.groups)
            audit["citations"] = _citation_count(result)
            return JSONResponse(result)
        except OndataError as exc:
            log.info("chat completions failed: %s", exc)
            return error_response(exc)

    if page:
        from retrieval.webapp import add_chat_page

        add_chat_page(app, facade=facade, caller=caller, index_names=index_names, documents=documents)
    # Added last = outermost: the audit line and the catch-all see everything, the guard counts
    # every request, the body limit sits nearest the routes.
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)
    app.add_middleware(GuardMiddleware, max_concurrency=limits.max_concurrency,
                       timeout_seconds=limits.request_timeout_seconds, retry_after_seconds=limits.retry_after_seconds)
    app.add_middleware(AuditMiddleware)
    return app
