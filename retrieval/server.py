"""An HTTP server (FastAPI) speaking Azure OpenAI's On-Your-Data chat-completions API over our indexes.

``create_app(facade, api_key=...)`` exposes

- ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` — the body of an On
  Your Data request; JSON answer, or server-sent events when ``stream`` is true;
- ``GET /healthz``.

An unchanged ``openai.AzureOpenAI(azure_endpoint="http://host:port", api_key=..., api_version=...)``
client works against it (``extra_body={"data_sources": [...]}``). When ``api_key`` is set, requests
must carry it in the ``api-key`` header (or ``Authorization: Bearer``), else 401. Deny by default:
a caller runs with its principal's groups, and both the anonymous and the shared-key principal are
public-only (chunks without groups).

With ``page=True`` (``ondata serve`` does) the same app serves the chat web page at ``/`` and the
routes it uses (``retrieval.webapp``). Every route finds its caller through ONE dependency,
``app.state.principal`` (``principal_dependency``): the API, the page's citation route and the
document route all run with the same ``Principal`` and its groups.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from indexers.errors import OndataError
from indexers.records import Groups, check_groups
from retrieval.errors import ChatModelError, ContentFilteredError, OYDRequestError, RateLimitedError
from retrieval.oyd import OnYourDataFacade

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


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


@dataclass(frozen=True)
class Principal:
    """Who is calling: a name for logs and the ACL ``groups`` every search runs with.

    ``groups`` as in ``SearchRequest`` (validated by ``check_groups``): ``()`` is a public-only
    caller (chunks without groups), ``ALL_GROUPS`` a trusted one that sees everything.
    """

    name: str
    groups: Groups = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", check_groups(self.groups, what="Principal.groups"))


DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
          "for an active subscription and use a correct regional API endpoint for your resource.")


def principal_dependency(api_key: str | None) -> Callable[[Request], Principal]:
    """The FastAPI dependency that yields the caller's ``Principal`` or raises a 401 ``OYDRequestError``.

    The one seam between the routes and authentication: today one shared ``api_key`` (or none), and
    either way the caller is public-only (``groups=()``): it sees chunks without groups, nothing else.
    """

    def principal(request: Request) -> Principal:
        if api_key is None:
            return Principal("anonymous", ())
        given = request.headers.get("api-key")
        if given is None:
            auth = request.headers.get("authorization", "")
            given = auth[7:] if auth.lower().startswith("bearer ") else None
        if given is None or not secrets.compare_digest(given.encode(), api_key.encode()):
            raise OYDRequestError(DENIED, status=401, code="401")
        return Principal("api-key", ())

    return principal


def create_app(facade: OnYourDataFacade, *, api_key: str | None = None, page: bool = False,
               index_names: Sequence[str] = (), documents: Any = None) -> Any:
    """The FastAPI app serving ``facade``; ``api_key`` None disables the key check.

    ``page``: also serve the chat web page (``retrieval.webapp``) over the indexes ``index_names``
    (the first is the default), opening original documents through ``documents`` (a
    ``retrieval.documents.DocumentFiles``, or None for links to document URLs only).
    """
    app = FastAPI(title="ondata On-Your-Data compatible chat completions", docs_url=None, redoc_url=None)
    app.state.principal = principal_dependency(api_key)

    @app.exception_handler(OYDRequestError)
    async def oyd_error(_request: Request, exc: OYDRequestError):
        return error_response(exc)

    def caller(request: Request) -> Principal:  # sync: FastAPI runs it in its thread pool
        return request.app.state.principal(request)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/openai/deployments/{deployment}/chat/completions")
    async def chat_completions(deployment: str, request: Request, principal: Principal = Depends(caller)):
        if not request.query_params.get("api-version"):
            return _error(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return _error(400, "400", "The request body is not valid JSON.")
        try:
            if isinstance(body, dict) and body.get("stream") is True:
                chunks = await run_in_threadpool(facade.stream_chat_completions, body, deployment=deployment,
                                                 groups=principal.groups)

                def events():
                    for chunk in chunks:
                        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                    yield "data: [DONE]\n\n"

                return StreamingResponse(events(), media_type="text/event-stream")
            result = await run_in_threadpool(facade.chat_completions, body, deployment=deployment,
                                             groups=principal.groups)
            return JSONResponse(result)
        except OndataError as exc:
            log.info("chat completions failed: %s", exc)
            return error_response(exc)

    if page:
        from retrieval.webapp import add_chat_page

        add_chat_page(app, facade=facade, caller=caller, index_names=index_names, documents=documents)
    return app
