"""The chat web page of ``ondata serve``: static files and the two routes the page needs beside the API.

``add_chat_page(app, facade=..., caller=..., index_names=..., documents=...)`` adds to the FastAPI app
of ``retrieval.server``:

- ``GET /``: the page (``retrieval/web/index.html``; plain HTML, CSS and one JavaScript module, no
  build step, nothing from a CDN) with a Content-Security-Policy that allows only this origin's
  own script and style (no inline script);
- ``GET /static/...``: its CSS and JavaScript;
- ``GET /api/config``: what the page needs to know (served indexes, whether answers are
  extractive, the abstention sentence, the API version to call); signing in on the page is
  checking a key or token against this route;
- ``POST /api/citation`` ``{"index_name", "chunk_id", "claim"}``: the cited chunk (title, section,
  pages, content), where the claim's sentence stands in it (``highlight``) and its page, and how to
  open the original document;
- ``GET /documents/{chunk_id}?index=NAME``: the original file of a chunk (``retrieval.documents``).

The page asks its questions through the On Your Data endpoint itself
(``POST /openai/deployments/{d}/chat/completions`` with ``stream: true``), so it sees exactly what
an API client sees. Every route here takes the caller from the same dependency as the API
(``caller``): a chunk the caller may not see is a 404, indistinguishable from a missing one, and
the document route opens only files of chunks the caller may see, under the source root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from retrieval.citations import locate_claim
from retrieval.documents import DocumentFiles, DocumentNotFoundError, OpenedDocument, media_type_for
from retrieval.errors import OYDRequestError
from retrieval.oyd import MAX_TOP_N, QUERY_TYPES, OnYourDataFacade
from retrieval.extractive import PREFIX as EXTRACTIVE_PREFIX
from retrieval.prompt import NOT_AVAILABLE
from retrieval.server import parse_json_body

WEB_DIR = Path(__file__).resolve().parent / "web"
API_VERSION = "2024-10-21"
DEPLOYMENT = "ondata"
MAX_CLAIM_CHARS = 4000
MAX_ID_CHARS = 256

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
#: A document that is not a PDF is sandboxed too (a unique origin, no script), should a browser render it.
DOCUMENT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
NOT_FOUND = "The document was not found."


def _not_found(what: str = NOT_FOUND) -> OYDRequestError:
    return OYDRequestError(what, status=404, code="404")


def _bad(message: str) -> OYDRequestError:
    return OYDRequestError(message, status=400, code="400")


def _web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _content_disposition(name: str, *, inline: bool) -> str:
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name) or "document"
    return f"{'inline' if inline else 'attachment'}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def _iter_file(opened: OpenedDocument, block: int = 1 << 16) -> Iterator[bytes]:
    try:
        while data := opened.file.read(block):
            yield data
    finally:
        opened.close()


def add_chat_page(app: FastAPI, *, facade: OnYourDataFacade, caller: Callable[..., Any],
                  index_names: Sequence[str], documents: DocumentFiles | None = None) -> None:
    """Add the chat page and its routes to ``app`` (see the module docstring)."""
    names = list(dict.fromkeys(index_names)) or ["ondata"]
    extractive = bool(facade.answerer.extractive)

    @app.middleware("http")
    async def page_headers(request: Request, call_next):
        response = await call_next(request)
        if request.url.path == "/" or request.url.path.startswith("/static/"):
            for key, value in PAGE_HEADERS.items():
                response.headers.setdefault(key, value)
        return response

    @app.get("/", include_in_schema=False)
    def index_page():
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/api/config")
    def config(principal=Depends(caller)) -> dict[str, Any]:
        return {
            "principal": principal.name,
            "indexes": names,
            "default_index": names[0],
            "extractive": extractive,
            "extractive_prefix": EXTRACTIVE_PREFIX if extractive else None,
            "abstention": NOT_AVAILABLE,
            "deployment": DEPLOYMENT,
            "api_version": API_VERSION,
            "query_types": list(QUERY_TYPES),
            "max_top_n": MAX_TOP_N,
            "documents": documents is not None,
        }

    def _lookup(index_name: Any, chunk_id: Any, principal: Any, missing: str = "The cited passage was not found."):
        if not isinstance(index_name, str) or index_name not in names:
            raise _bad("index_name must name an index served here")
        if not isinstance(chunk_id, str) or not chunk_id or len(chunk_id) > MAX_ID_CHARS:
            raise _bad("chunk_id must be a non-empty string")
        chunk = facade.retriever(index_name).get_chunk(chunk_id, groups=principal.groups)
        if chunk is None:
            raise _not_found(missing)
        return chunk

    @app.post("/api/citation")
    async def citation(request: Request, principal=Depends(caller)) -> JSONResponse:
        body = parse_json_body(await request.body())
        if not isinstance(body, dict):
            raise _bad("The request body must be a JSON object.")
        claim = body.get("claim") or ""
        if not isinstance(claim, str) or len(claim) > MAX_CLAIM_CHARS:
            raise _bad(f"claim must be a string of at most {MAX_CLAIM_CHARS} characters")
        chunk = await run_in_threadpool(_lookup, body.get("index_name"), body.get("chunk_id"), principal)
        span = locate_claim(claim, chunk.content) if claim.strip() else None
        document = None
        if documents is not None and documents.path_of(chunk) is not None:
            media = media_type_for(chunk.filepath or chunk.source_id)
            document = {
                "kind": "local", "href": f"/documents/{quote(chunk.id, safe='')}?index={quote(body['index_name'], safe='')}",
                "content_type": media.content_type, "inline": media.inline,
                "name": Path(chunk.filepath or chunk.source_id).name,
                "paged": media.content_type == "application/pdf",
            }
        elif chunk.url and _web_url(chunk.url):
            document = {"kind": "url", "href": chunk.url, "paged": urlsplit(chunk.url).path.lower().endswith(".pdf")}
        return JSONResponse({
            "chunk_id": chunk.id,
            "title": chunk.title or chunk.source_id,
            "section": chunk.section,
            "filepath": chunk.filepath,
            "source_id": chunk.source_id,
            "page_start": chunk.page_start,
            "page_end": chunk.page_end,
            "page": chunk.page_at(span[0]) if span else chunk.page_start,
            "content": chunk.content,
            "highlight": {"start": span[0], "end": span[1]} if span else None,
            "document": document,
        }, headers={"Cache-Control": "no-store"})

    @app.get("/documents/{chunk_id}")
    async def document(chunk_id: str, index: str = "", principal=Depends(caller)):
        if documents is None:
            raise _not_found()
        chunk = await run_in_threadpool(_lookup, index, chunk_id, principal, NOT_FOUND)
        try:
            opened = await run_in_threadpool(documents.open, chunk)
        except DocumentNotFoundError:
            raise _not_found() from None
        headers = {
            "Content-Disposition": _content_disposition(opened.name, inline=opened.media.inline),
            "Content-Length": str(opened.size),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Referrer-Policy": "no-referrer",
        }
        if opened.media.content_type != "application/pdf":
            headers["Content-Security-Policy"] = DOCUMENT_CSP
        return StreamingResponse(_iter_file(opened), media_type=opened.media.content_type, headers=headers)
