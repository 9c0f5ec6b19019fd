"""`ondata serve`'s app, driven by an unchanged openai SDK AzureOpenAI client over HTTP (uvicorn in a thread)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import openai
import pytest
from test_retrieval_corpus import build_index

from retrieval.errors import RateLimitedError
from retrieval.chat_answerer import ChatAnswerer
from retrieval.extractive import ExtractiveAnswerer
from retrieval.oyd import OnYourDataFacade
from retrieval.retriever import Retriever
from retrieval.server import create_app

KEY = "serve-test-key"


def data_sources(**params):
    p = {"endpoint": "https://unused.search.windows.net", "index_name": "docs",
         "authentication": {"type": "api_key", "key": "x"}, "query_type": "vector_simple_hybrid", "strictness": 1}
    p.update(params)
    return [{"type": "azure_search", "parameters": p}]


class _Throttled:
    extractive = False

    def complete(self, messages, **opts):
        raise RateLimitedError("the chat model is rate limited", retry_after=2.0)

    def stream(self, messages, **opts):  # pragma: no cover
        raise RateLimitedError("the chat model is rate limited", retry_after=2.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    index, embedder = build_index(tmp_path_factory.mktemp("serve"))
    retriever = Retriever(index, embedder)
    facade = OnYourDataFacade({"docs": retriever}, ExtractiveAnswerer())
    throttled = OnYourDataFacade({"docs": retriever}, ChatAnswerer(_Throttled()))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    servers = []
    urls = []
    for app in (create_app(facade, api_key=KEY), create_app(throttled, api_key=None)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=p, log_level="warning"))
        threading.Thread(target=srv.run, daemon=True).start()
        servers.append(srv)
        urls.append(f"http://127.0.0.1:{p}")
    deadline = time.time() + 20
    for srv in servers:
        while not srv.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
    yield urls
    for srv in servers:
        srv.should_exit = True
    index.close()


def client(url, key=KEY):
    return openai.AzureOpenAI(azure_endpoint=url, api_key=key, api_version="2024-10-21", max_retries=0)


def test_sdk_round_trip_with_citations(server):
    completion = client(server[0]).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "How many days of paid vacation do employees get?"}],
        extra_body={"data_sources": data_sources(include_contexts=["citations", "intent", "all_retrieved_documents"])},
    )
    msg = completion.choices[0].message
    assert "25 days" in msg.content and "[doc1]" in msg.content
    ctx = msg.model_extra["context"]
    assert ctx["citations"][0]["filepath"] == "handbook.pdf"
    assert ctx["intent"] and ctx["all_retrieved_documents"]


def test_sdk_streaming(server):
    stream = client(server[0]).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "How many days of paid vacation do employees get?"}],
        extra_body={"data_sources": data_sources()},
        stream=True,
    )
    chunks = list(stream)
    ctx = chunks[0].choices[0].delta.model_extra["context"]
    assert ctx["citations"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "25 days" in text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_bad_parameter_is_a_400_through_the_sdk(server):
    with pytest.raises(openai.BadRequestError) as info:
        client(server[0]).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "q"}],
            extra_body={"data_sources": data_sources(strictness=9)},
        )
    assert info.value.status_code == 400
    assert "strictness" in info.value.message


def test_wrong_key_is_401(server):
    with pytest.raises(openai.AuthenticationError):
        client(server[0], key="nope").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "q"}], extra_body={"data_sources": data_sources()}
        )


def test_api_version_required_and_healthz(server):
    r = httpx.post(f"{server[0]}/openai/deployments/d/chat/completions", headers={"api-key": KEY}, json={})
    assert r.status_code == 400 and "api-version" in r.json()["error"]["message"]
    r = httpx.post(f"{server[0]}/openai/deployments/d/chat/completions?api-version=2024-10-21",
                   headers={"api-key": KEY}, content=b"{not json")
    assert r.status_code == 400
    assert httpx.get(f"{server[0]}/healthz").json() == {"status": "ok"}


def test_chat_model_throttling_is_a_429_with_retry_after(server):
    r = httpx.post(f"{server[1]}/openai/deployments/d/chat/completions?api-version=2024-10-21",
                   json={"messages": [{"role": "user", "content": "vacation days?"}], "data_sources": data_sources()})
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
