"""retrieval.server under hostile input: every malformed request is a 4xx in On Your Data's error shape.

Over real HTTP (uvicorn in a thread, httpx): bad JSON, deep nesting, lone surrogates, huge numbers,
wrong types, oversized bodies (Content-Length and chunked), a question over the token limit, the
JSON 500 catch-all with a request id, the per-request timeout, the concurrency limit, no OpenAPI
document, named indexes (unknown -> 404, a path is never opened), and the audit line.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from serve_process import serving
from test_retrieval_corpus import build_index

from retrieval.extractive import ExtractiveAnswerer
from retrieval.oyd import OnYourDataFacade
from retrieval.principals import Authenticator, KeysFile
from retrieval.retriever import Retriever
from retrieval.server import ServerLimits, create_app

CHAT = "/openai/deployments/d/chat/completions?api-version=2024-10-21"


def body(question: Any = "How many days of paid vacation do employees get?", **params) -> dict[str, Any]:
    p = {"index_name": "docs", "query_type": "vector_simple_hybrid", "strictness": 1}
    p.update(params)
    return {"messages": [{"role": "user", "content": question}], "data_sources": [{"type": "azure_search", "parameters": p}]}


class Gate(OnYourDataFacade):
    """A facade whose answers wait for ``release`` (to hold requests in flight) or fail unexpectedly."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def chat_completions(self, body, *, deployment, groups=()):
        question = self.parse(body).question
        if question == "crash":
            raise RuntimeError("an unexpected bug with a detail that must stay in the server log")
        if question == "wait":
            self.entered.release()
            self.release.wait(30)
        return super().chat_completions(body, deployment=deployment, groups=groups)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("hardening")
    index, embedder = build_index(base / "index")
    retriever = Retriever(index, embedder)
    store = KeysFile.load(base / "keys.toml", missing_ok=True)
    key = store.add("tester", groups=("hr",))
    limits = ServerLimits(max_body_bytes=64 * 1024, max_concurrency=2, request_timeout_seconds=3.0, max_question_tokens=50)
    facade = Gate({"docs": retriever, "other": retriever}, ExtractiveAnswerer(), max_question_tokens=50)
    app = create_app(facade, authenticator=Authenticator(keys=store), limits=limits, page=True, index_names=["docs", "other"])
    facade.chat_completions(body(), deployment="d")  # warm up (tokenizer, index) so no first request nears the timeout
    with serving(app) as url:
        yield {"url": url, "key": key, "facade": facade, "base": base}
    facade.release.set()
    index.close()


def post(site, payload=None, *, content=None, headers=None, path=CHAT, **kw):
    h = {"api-key": site["key"], **(headers or {})}
    if content is None:
        content = json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass") if not isinstance(payload, bytes) else payload
    return httpx.post(site["url"] + path, content=content, headers={"content-type": "application/json", **h}, timeout=30, **kw)


def assert_oyd_error(r, status):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"]
    return err


def test_a_valid_request_answers_with_the_keys_groups(site):
    r = post(site, body())
    assert r.status_code == 200, r.text
    assert "25 days" in r.json()["choices"][0]["message"]["content"]
    assert r.headers["x-request-id"]


MALFORMED = {
    "invalid json": b"{not json",
    "empty": b"",
    "invalid utf-8": b'{"messages": "\xff\xfe"}',
    "deep nesting": b"[" * 30_000 + b"]" * 30_000,
    "nesting over 32 levels in a field": json.dumps({**body(), "user": json.loads("[" * 40 + "]" * 40)}).encode(),
    "lone surrogate in question": json.dumps(body("\ud800 vacation")).encode("utf-8", "surrogatepass"),
    "escaped lone surrogate": b'{"messages":[{"role":"user","content":"\\udc80 days"}],"data_sources":[]}',
    "surrogate in filter": json.dumps(body(filter="title eq '\udfff'")).encode("utf-8", "surrogatepass"),
    "21-digit integer in filter": json.dumps(body(filter="metadata/year eq 123456789012345678901")).encode(),
    "5000-digit integer in filter": json.dumps(body(filter="metadata/year eq " + "9" * 5000)).encode(),
    "5000-digit integer in body": ('{"max_tokens": ' + "9" * 5000 + "}").encode(),
    "NaN": b'{"temperature": NaN}',
    "huge float in filter": json.dumps(body(filter="metadata/year eq 1e999")).encode(),
    "max_tokens 0": json.dumps({**body(), "max_tokens": 0}).encode(),
    "max_tokens string": json.dumps({**body(), "max_tokens": "10"}).encode(),
    "temperature string": json.dumps({**body(), "temperature": "hot"}).encode(),
    "temperature bool": json.dumps({**body(), "temperature": True}).encode(),
    "stop object": json.dumps({**body(), "stop": {"a": 1}}).encode(),
    "top_n huge": json.dumps(body(top_n_documents=10**30)).encode(),
    "strictness float": json.dumps(body(strictness=2.5)).encode(),
    "messages not list": json.dumps({"messages": {"a": 1}, "data_sources": []}).encode(),
    "body is a list": b"[1, 2, 3]",
    "body is a string": b'"hello"',
    "index_name number": json.dumps(body(index_name=7)).encode(),
    "question too long": json.dumps(body("vacation " * 500)).encode(),
    "filter on unknown field": json.dumps(body(filter="secret eq 'x'")).encode(),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_input_is_a_400_in_oyd_shape(site, name):
    assert_oyd_error(post(site, MALFORMED[name]), 400)


def test_the_question_limit_counts_tokens_not_bytes(site):
    question = "vacation days" + " days" * 12  # 73 bytes, over the 50 of the limit, but 14 tokens
    assert post(site, body(question)).status_code == 200


def test_body_over_the_limit_is_413_from_content_length_without_reading(site):
    # Content-Length says 10 MB but only a few bytes are sent: the answer comes without the body being read.
    with socket.create_connection(("127.0.0.1", int(site["url"].rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\napi-key: " + site["key"].encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{")
        reply = b""
        while chunk := s.recv(65536):  # the server closes the connection after its answer
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413"), reply
    assert json.loads(reply.split("\r\n\r\n", 1)[1])["error"]["code"] == "413"


def test_chunked_body_over_the_limit_is_413_while_streaming(site):
    sent = {"bytes": 0}

    def chunks():
        for _ in range(400):  # 400 x 4 KiB = 1.6 MiB offered, far over the 64 KiB limit
            sent["bytes"] += 4096
            yield b" " * 4096

    try:
        r = httpx.post(site["url"] + CHAT, content=chunks(), headers={"api-key": site["key"]}, timeout=30)
    except httpx.HTTPError:  # the server may close the connection while the client is still sending
        return
    assert_oyd_error(r, 413)


def test_unexpected_exception_is_a_json_500_with_a_request_id(site, caplog):
    with caplog.at_level(logging.ERROR, logger="retrieval.server"):
        r = post(site, body("crash"))
    err = assert_oyd_error(r, 500)
    rid = r.headers["x-request-id"]
    assert rid in err["message"]
    assert "unexpected bug" not in r.text
    assert any(rid in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_timeout_is_a_408_and_the_concurrency_limit_a_429(site):
    facade = site["facade"]
    facade.release.clear()
    results: list[httpx.Response] = []

    def held():
        results.append(post(site, body("wait")))

    threads = [threading.Thread(target=held) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in threads:
        assert facade.entered.acquire(timeout=10)
    busy = post(site, body())
    assert_oyd_error(busy, 429)
    assert busy.headers["retry-after"] == "1"
    assert httpx.get(site["url"] + "/healthz").status_code == 200  # health checks are never refused
    for t in threads:
        t.join(10)
    assert [r.status_code for r in results] == [408, 408]
    assert busy.status_code == 429
    # the abandoned work still holds its slots until it really ends
    assert_oyd_error(post(site, body()), 429)
    facade.release.set()
    deadline = time.time() + 10
    while post(site, body()).status_code == 429:
        assert time.time() < deadline
        time.sleep(0.05)


def test_no_openapi_or_docs_and_unknown_routes_are_json(site):
    for path in ("/openapi.json", "/docs", "/redoc", "/nothing"):
        assert_oyd_error(httpx.get(site["url"] + path, headers={"api-key": site["key"]}), 404)
    assert_oyd_error(httpx.get(site["url"] + CHAT, headers={"api-key": site["key"]}), 405)
    assert_oyd_error(post(site, body(), headers={"api-key": "wrong"}), 401)


def test_named_indexes_and_paths_are_never_opened(site, tmp_path):
    assert post(site, body(index_name="other")).status_code == 200
    err = assert_oyd_error(post(site, body(index_name="missing")), 404)
    assert "missing" in err["message"]
    # a real index folder on disk, given as index_name, is just an unknown name
    real = str(site["base"] / "index")
    assert_oyd_error(post(site, body(index_name=real)), 404)
    assert_oyd_error(post(site, body(index_name="../index")), 404)
    config = httpx.get(site["url"] + "/api/config", headers={"api-key": site["key"]}).json()
    assert config["indexes"] == ["docs", "other"] and config["principal"] == "tester"


def test_audit_line_per_request_without_question_or_key(site, caplog):
    with caplog.at_level(logging.INFO, logger="ondata.access"):
        post(site, body("How many days of paid vacation do employees get?", query_type="simple"))
        post(site, body(), headers={"api-key": "not-the-key"})
        deadline = time.time() + 5  # the line is written once the response is sent: a moment after the client has it

        def mine() -> list[str]:  # this test's two requests (the server is shared: an earlier test's GET may log late)
            return [r.getMessage() for r in caplog.records
                    if r.name == "ondata.access" and f"path={CHAT.split('?')[0]} " in r.getMessage()]

        while len(mine()) < 2 and time.time() < deadline:
            time.sleep(0.02)
    lines = mine()
    assert len(lines) == 2
    ok, denied = lines
    for part in ("principal=tester", "groups=1", "index=docs", "query_type=simple", "status=200", "latency_ms="):
        assert part in ok, ok
    assert "citations=" in ok and "citations=-" not in ok
    assert "status=401" in denied and "principal=-" in denied
    for line in lines:
        assert "vacation" not in line and site["key"] not in line and "not-the-key" not in line
