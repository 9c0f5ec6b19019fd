"""The chat page's HTTP side (retrieval.webapp, retrieval.documents), driven over httpx (Starlette's TestClient).

The page, its static files, the citation and document routes (groups enforced, traversal, symlinks
and special files refused, safe content types) and the streaming OYD endpoint exactly as the page
calls it. Callers with groups are set through the app's one principal seam (``app.state.principal``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_retrieval_corpus import make_chunks

from indexers.records import ALL_GROUPS, Chunk, chunk_id_for
from retrieval.documents import DocumentFiles, media_type_for
from retrieval.extractive import ExtractiveAnswerer
from retrieval.oyd import OnYourDataFacade
from retrieval.retriever import Retriever
from retrieval.server import Principal, create_app

KEY = "page-test-key"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _chunk(sid: str, content: str, *, groups=(), page=None, filepath=None) -> Chunk:
    return Chunk(id=chunk_id_for(sid, 0, content), source_id=sid, content=content, chunk_index=0, title=sid,
                 filepath=sid if filepath is None else filepath, page_start=page, page_end=page, groups=groups)


EXTRA = {
    "page": _chunk("page.html", "An HTML page about cafeteria opening hours."),
    "outside": _chunk("outside", "Traversal attempt.", filepath="../outside.txt"),
    "absolute": _chunk("absolute", "Absolute path attempt.", filepath="/etc/passwd"),
    "link_out": _chunk("link-out.txt", "A symlink leaving the root."),
    "link_in": _chunk("link-in.pdf", "A symlink to a file inside the root.", page=1),
    "folder": _chunk("folder", "A directory, not a file."),
    "fifo": _chunk("pipe.txt", "A FIFO, not a regular file."),
    "gone": _chunk("gone.pdf", "A document whose file was removed.", page=2),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex

    base = tmp_path_factory.mktemp("webapp")
    root = base / "docs"
    root.mkdir()
    (base / "outside.txt").write_text("SECRET outside the root")
    (root / "handbook.pdf").write_bytes(PDF)
    (root / "salaries.xlsx").write_bytes(b"PK\x03\x04 restricted salary bands")
    (root / "benefits.md").write_text("# Benefits\n")
    (root / "page.html").write_text("<script>parent.stolen = document.cookie</script>")
    (root / "link-out.txt").symlink_to(base / "outside.txt")
    (root / "link-in.pdf").symlink_to(root / "handbook.pdf")
    (root / "folder").mkdir()
    os.mkfifo(root / "pipe.txt")

    embedder = HashingEmbedder(dimensions=256)
    index = LocalIndex(base / "index", dimensions=embedder.dimensions, model_id=embedder.model_id)
    index.ensure()
    chunks = make_chunks() + list(EXTRA.values())
    index.upsert(chunks, vectors=embedder.embed_documents([c.content for c in chunks]))
    facade = OnYourDataFacade({"docs": Retriever(index, embedder)}, ExtractiveAnswerer())
    app = create_app(facade, api_key=KEY, page=True, index_names=["docs"], documents=DocumentFiles.under(root))
    with TestClient(app) as client:
        first = {}
        for c in chunks:
            first.setdefault(c.source_id, c)  # handbook.pdf: its page-3 chunk
        yield {"client": client, "app": app, "chunks": first, "root": root}
    index.close()


@pytest.fixture
def as_groups(site):
    """``as_groups(groups)`` makes every request run as a principal with those groups (or ``ALL_GROUPS``)."""
    app = site["app"]
    original = app.state.principal

    def use(groups):
        app.state.principal = lambda request: Principal("test", groups)

    yield use
    app.state.principal = original


def get(site, path, **kw):
    return site["client"].get(path, headers={"api-key": KEY, **kw.pop("headers", {})}, **kw)


def post(site, path, body, **kw):
    return site["client"].post(path, headers={"api-key": KEY}, content=json.dumps(body), **kw)


def doc_url(site, source_id, index="docs"):
    return f"/documents/{site['chunks'][source_id].id}?index={index}"


# ------------------------------------------------------------------ the page and its static files

def test_page_is_served_with_a_strict_csp_and_no_inline_script(site):
    r = site["client"].get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp and r.headers["x-content-type-options"] == "nosniff"
    html = r.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts == [(' type="module" src="/static/app.js"', "")]  # one module, nothing inline
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", html)  # nothing from another origin


@pytest.mark.parametrize("path,kind", [("/static/app.js", "javascript"), ("/static/app.css", "text/css")])
def test_static_files(site, path, kind):
    r = site["client"].get(path)
    assert r.status_code == 200 and kind in r.headers["content-type"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"https?://", r.text)  # no CDN, no remote import


def test_static_route_does_not_leave_its_folder(site):
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py"):
        r = site["client"].get(path)
        assert r.status_code == 404, path
        assert "create_app" not in r.text


def test_config_needs_the_same_key_as_the_api(site):
    client = site["client"]
    r = client.get("/api/config")
    assert r.status_code == 401 and r.json()["error"]["code"] == "401"
    assert client.get("/api/config", headers={"api-key": "wrong"}).status_code == 401
    assert client.get("/api/config", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    cfg = get(site, "/api/config").json()
    assert cfg["indexes"] == ["docs"] and cfg["extractive"] is True and cfg["documents"] is True
    assert "not available in the retrieved data" in cfg["abstention"]


# ------------------------------------------------------------------ the citation route

def test_citation_locates_the_cited_sentence_and_its_page(site, as_groups):
    as_groups(())
    chunk = site["chunks"]["handbook.pdf"]
    claim = "Vacation requests must be approved by the line manager two weeks in advance."
    r = post(site, "/api/citation", {"index_name": "docs", "chunk_id": chunk.id, "claim": claim})
    assert r.status_code == 200, r.text
    d = r.json()
    start, end = d["highlight"]["start"], d["highlight"]["end"]
    assert d["content"][start:end] == claim
    assert d["page"] == 3 and d["section"] == "Leave" and d["title"] == "Employee Handbook"
    assert d["document"]["kind"] == "local" and d["document"]["paged"] is True
    assert d["document"]["href"] == doc_url(site, "handbook.pdf")
    # a claim that paraphrases: the sentence sharing most words
    d = post(site, "/api/citation", {"index_name": "docs", "chunk_id": chunk.id, "claim": "How many paid vacation days?"}).json()
    assert d["content"][d["highlight"]["start"]:d["highlight"]["end"]].startswith("Employees get 25 days")


def test_citation_of_a_chunk_the_caller_may_not_see_is_a_404_like_a_missing_one(site, as_groups):
    hidden = site["chunks"]["salaries.xlsx"]  # groups ("hr",)
    as_groups(("board",))
    r_hidden = post(site, "/api/citation", {"index_name": "docs", "chunk_id": hidden.id, "claim": "band"})
    r_missing = post(site, "/api/citation", {"index_name": "docs", "chunk_id": "0" * 32, "claim": "band"})
    assert r_hidden.status_code == r_missing.status_code == 404
    assert r_hidden.json() == r_missing.json()
    assert "75,000" not in r_hidden.text
    as_groups(("hr",))
    assert post(site, "/api/citation", {"index_name": "docs", "chunk_id": hidden.id}).status_code == 200


def test_the_default_principal_is_public_only(site, as_groups):
    # the app's own principal (the shared key): deny by default, like a caller with no groups
    hidden = site["chunks"]["salaries.xlsx"]  # groups ("hr",)
    assert post(site, "/api/citation", {"index_name": "docs", "chunk_id": hidden.id}).status_code == 404
    public = site["chunks"]["handbook.pdf"]  # no groups
    assert post(site, "/api/citation", {"index_name": "docs", "chunk_id": public.id}).status_code == 200

    def cited_files() -> set[str]:
        r = post(site, "/openai/deployments/d/chat/completions?api-version=2024-10-21", {
            "messages": [{"role": "user", "content": "What is the salary band L3 range?"}],
            "data_sources": [{"type": "azure_search", "parameters": {
                "endpoint": "https://x.example", "index_name": "docs", "strictness": 1,
                "authentication": {"type": "api_key", "key": "k"}}}]})
        assert r.status_code == 200, r.text
        return {c["filepath"] for c in r.json()["choices"][0]["message"]["context"]["citations"]}

    assert hidden.filepath not in cited_files()
    as_groups(ALL_GROUPS)  # the same request as a trusted principal does reach it
    assert hidden.filepath in cited_files()


@pytest.mark.parametrize("bad", [None, "hr", ["hr", ""], 0])
def test_a_principal_with_malformed_groups_cannot_be_made(bad):
    with pytest.raises(TypeError, match="Principal.groups"):
        Principal("p", bad)


@pytest.mark.parametrize("body", [
    None, [], "x", {"index_name": "other", "chunk_id": "a"}, {"index_name": "docs"},
    {"index_name": "docs", "chunk_id": 5}, {"index_name": "docs", "chunk_id": "a", "claim": ["x"]},
    {"index_name": "docs", "chunk_id": "a" * 300},
])
def test_citation_rejects_bad_bodies_with_a_400(site, body):
    r = post(site, "/api/citation", body)
    assert r.status_code == 400 and r.json()["error"]["message"]


def test_citation_route_needs_the_key(site):
    r = site["client"].post("/api/citation", json={"index_name": "docs", "chunk_id": site["chunks"]["handbook.pdf"].id})
    assert r.status_code == 401


# ------------------------------------------------------------------ the document route

def test_pdf_is_served_inline_with_safe_headers(site, as_groups):
    as_groups(())
    r = get(site, doc_url(site, "handbook.pdf"))
    assert r.status_code == 200 and r.content == PDF
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith('inline; filename="handbook.pdf"')
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "no-store" in r.headers["cache-control"]


def test_html_documents_are_attachments_never_rendered_on_the_page_origin(site, as_groups):
    as_groups(())
    r = get(site, doc_url(site, "page.html"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["content-security-policy"].startswith("sandbox")
    assert r.headers["x-content-type-options"] == "nosniff"
    d = post(site, "/api/citation", {"index_name": "docs", "chunk_id": site["chunks"]["page.html"].id}).json()
    assert d["document"]["inline"] is False


def test_documents_follow_the_callers_groups(site, as_groups):
    url = doc_url(site, "salaries.xlsx")
    as_groups(())
    hidden = get(site, url)
    missing = get(site, "/documents/" + "0" * 32 + "?index=docs")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content and b"salary" not in hidden.content
    as_groups(("board",))
    assert get(site, url).status_code == 404
    as_groups(("hr",))
    r = get(site, url)
    assert r.status_code == 200 and r.content.startswith(b"PK")
    assert r.headers["content-disposition"].startswith("attachment;")


def test_document_route_needs_the_key_and_a_served_index(site):
    assert site["client"].get(doc_url(site, "handbook.pdf")).status_code == 401
    assert get(site, doc_url(site, "handbook.pdf", index="elsewhere")).status_code == 400


@pytest.mark.parametrize("name", ["outside", "absolute", "link_out", "folder", "fifo", "gone"])
def test_paths_outside_the_root_and_non_files_are_refused(site, as_groups, name):
    as_groups(ALL_GROUPS)  # even a trusted caller
    chunk = EXTRA[name]
    r = get(site, f"/documents/{chunk.id}?index=docs")
    assert r.status_code == 404
    assert b"SECRET" not in r.content
    d = post(site, "/api/citation", {"index_name": "docs", "chunk_id": chunk.id}).json()
    assert d["document"] is None  # the page offers no link


def test_a_symlink_that_stays_inside_the_root_is_served(site, as_groups):
    as_groups(())
    r = get(site, f"/documents/{EXTRA['link_in'].id}?index=docs")
    assert r.status_code == 200 and r.content == PDF


def test_document_files_refuse_hostile_stored_paths(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("ok")
    files = DocumentFiles.under(root)
    for bad in ("../a.txt", "/etc/passwd", "a/../../x", "a\\..\\b", "a.txt\x00.pdf", "", "."):
        assert files.path_of(_chunk("x", "c", filepath=bad)) is None, bad
    assert files.path_of(_chunk("a.txt", "c")) == (root / "a.txt").resolve()


@pytest.mark.parametrize("name,content_type,inline", [
    ("a.pdf", "application/pdf", True), ("a.TXT", "text/plain; charset=utf-8", True), ("a.png", "image/png", True),
    ("a.html", "application/octet-stream", False), ("a.svg", "application/octet-stream", False),
    ("a.xml", "application/octet-stream", False), ("a.js", "application/octet-stream", False),
    ("a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", False),
    ("noext", "application/octet-stream", False),
])
def test_media_types(name, content_type, inline):
    media = media_type_for(name)
    assert (media.content_type, media.inline) == (content_type, inline)


# ------------------------------------------------------------------ the streaming endpoint the page uses

def page_body(question, *, history=(), strictness=1, top_n=5):
    """The body app.js sends (see ask() in retrieval/web/app.js)."""
    return {
        "messages": [*history, {"role": "user", "content": question}],
        "stream": True,
        "data_sources": [{"type": "azure_search", "parameters": {
            "index_name": "docs", "query_type": "vector_simple_hybrid", "strictness": strictness,
            "top_n_documents": top_n, "in_scope": True,
            "include_contexts": ["citations", "intent", "all_retrieved_documents"],
        }}],
    }


def stream_events(site, body):
    url = "/openai/deployments/ondata/chat/completions?api-version=2024-10-21"
    with site["client"].stream("POST", url, headers={"api-key": KEY}, content=json.dumps(body)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = [e[len("data: "):] for e in raw.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_streaming_endpoint_as_the_page_calls_it(site, as_groups):
    as_groups(())
    events = stream_events(site, page_body("How many days of paid vacation do employees get?"))
    first = events[0]["choices"][0]["delta"]
    ctx = first["context"]
    assert first["role"] == "assistant"
    assert ctx["citations"] and all(c["chunk_id"] for c in ctx["citations"])
    assert json.loads(ctx["intent"]) and ctx["all_retrieved_documents"]
    assert {"filter_reason", "original_search_score", "chunk_id", "title"} <= set(ctx["all_retrieved_documents"][0])
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[1:])
    assert "25 days" in text and "[doc1]" in text
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


def test_streaming_endpoint_runs_with_the_principals_groups(site, as_groups):
    question = "What are the salary bands L3 and L4?"
    salary = site["chunks"]["salaries.xlsx"].id
    as_groups(())
    ctx = stream_events(site, page_body(question))[0]["choices"][0]["delta"]["context"]
    seen = {d["chunk_id"] for d in ctx["all_retrieved_documents"]} | {c["chunk_id"] for c in ctx["citations"]}
    assert salary not in seen
    as_groups(("hr",))
    ctx = stream_events(site, page_body(question))[0]["choices"][0]["delta"]["context"]
    assert salary in {d["chunk_id"] for d in ctx["all_retrieved_documents"]}


def test_follow_up_is_rewritten_into_a_search_query(site, as_groups):
    as_groups(())
    history = [
        {"role": "user", "content": "How many days of paid vacation do employees get?"},
        {"role": "assistant", "content": "Employees get 25 days of paid vacation per year. [doc1]"},
    ]
    events = stream_events(site, page_body("And who must approve them?", history=history))
    intent = json.loads(events[0]["choices"][0]["delta"]["context"]["intent"])
    assert intent and intent[0] != "And who must approve them?"


def test_page_is_off_unless_asked(tmp_path):
    app = create_app(OnYourDataFacade({}, ExtractiveAnswerer()), api_key=None)
    with TestClient(app) as client:
        assert client.get("/").status_code == 404
        assert client.get("/api/config").status_code == 404


def test_the_wheel_ships_the_page(tmp_path):
    """A non-editable install gets the page: the built wheel holds retrieval/web/*."""
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(tmp_path), str(repo)], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.fail(f"building the wheel failed: {out.stderr[-2000:]}")
    (wheel,) = tmp_path.glob("ondata-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"retrieval/web/index.html", "retrieval/web/app.js", "retrieval/web/app.css"} <= names


def test_ondata_serve_prints_the_page_url_and_serves_it(tmp_path):
    """`ondata serve --index ... --documents ...` as a user runs it (a subprocess on a free port)."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.pdf").write_bytes(PDF)
    embedder = HashingEmbedder(dimensions=256)
    with LocalIndex(tmp_path / "idx", dimensions=256, model_id=embedder.model_id) as index:
        index.ensure()
        chunks = make_chunks()
        index.upsert(chunks, vectors=embedder.embed_documents([c.content for c in chunks]))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONDATA_")}
    env["ONDATA_SERVE_API_KEY"] = KEY
    cmd = [sys.executable, "-m", "ondata.cli", "serve", "--index", str(tmp_path / "idx"), "--documents", str(docs),
           "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "ondata serve did not start"
            time.sleep(0.2)
        page = httpx.get(url + "/")
        assert page.status_code == 200 and 'src="/static/app.js"' in page.text
        cfg = httpx.get(url + "/api/config", headers={"api-key": KEY}).json()
        assert cfg["indexes"] == ["idx"] and cfg["documents"] is True
        handbook = next(c for c in chunks if c.source_id == "handbook.pdf")
        r = httpx.get(f"{url}/documents/{handbook.id}?index=idx", headers={"api-key": KEY})
        assert r.status_code == 200 and r.content == PDF
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert f"chat page: http://127.0.0.1:{port}/" in err
    assert KEY not in err
