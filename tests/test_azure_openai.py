"""AzureOpenAIEmbedder through the real ``openai`` SDK against the in-repo Azure OpenAI test double
(tests/servers/azure_openai.py), plus the double's chat completions as the SDK sees them.
``pytest -m live`` with AZURE_OPENAI_ENDPOINT (and AZURE_OPENAI_API_KEY or an Entra ID login) runs
the live checks against a real deployment."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import openai
import pytest

from indexers.embedders.azure_openai import AzureOpenAIEmbedder
from indexers.errors import EmbeddingError, TransientError
from indexers.retry import RetryPolicy
from indexers.tokens import count_tokens
from tests.servers.azure_openai import (
    ChatReply,
    FakeAzureOpenAI,
    content_filter_error,
    content_filter_reply,
    fake_embedding,
)

KEY = "test-key-0123456789abcdef"
API_VERSION = "2024-10-21"


@pytest.fixture
def server():
    with FakeAzureOpenAI(api_key=KEY, embedding_deployments={"emb": 64, "text-embedding-3-small": 1536}) as s:
        yield s


def make(server, **kw) -> AzureOpenAIEmbedder:
    attempts = kw.pop("attempts", 5)
    options = dict(endpoint=server.url, deployment="emb", api_key=KEY, dimensions=32,
                   retry=RetryPolicy(attempts=attempts, backoff_seconds=0.01, max_backoff_seconds=0.05))
    options.update(kw)
    return AzureOpenAIEmbedder(**options)


def embedding_bodies(server):
    return list(server.embedding_calls)


# ---------------------------------------------------------------------- embeddings
def test_vectors_dimensions_and_model_id(server):
    emb = make(server)
    texts = ["the cat sat on the mat", "rockets burn kerosene", "the cat purrs"]
    out = emb.embed_documents(texts)
    assert out.shape == (3, 32) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    for row, text in zip(out, texts):
        assert np.allclose(row, fake_embedding(text, 32), atol=1e-5)
    assert emb.model_id == "azure-openai:emb:32" and emb.dimensions == 32
    (body,) = embedding_bodies(server)
    assert body["dimensions"] == 32 and body["model"] == "emb" and body["input"] == texts
    q = emb.embed_query("the cat")
    assert q.shape == (32,) and float(q @ out[0]) > float(q @ out[1])


def test_azure_request_shape_and_api_key_header(server):
    make(server).embed_query("hello")
    req = server.requests[-1]
    assert req.path == "/openai/deployments/emb/embeddings"
    assert req.query["api-version"] == [API_VERSION]
    assert req.headers["api-key"] == KEY


def test_dimensions_not_sent_unless_configured_and_probed_when_unknown(server):
    emb = make(server, dimensions=None)
    assert emb.dimensions == 64  # one probe call to an unknown deployment
    emb.embed_documents(["a", "b"])
    assert all("dimensions" not in b for b in embedding_bodies(server))
    assert emb.model_id == "azure-openai:emb:64"


def test_known_model_dimensions_need_no_probe(server):
    emb = make(server, deployment="text-embedding-3-small", dimensions=None)
    assert emb.dimensions == 1536 and server.requests == []


def test_entra_id_bearer_token(server):
    from azure.core.credentials import AccessToken

    class FakeCredential:
        def __init__(self):
            self.scopes = []

        def get_token(self, *scopes, **kwargs):
            self.scopes.extend(scopes)
            return AccessToken("entra-token", int(time.time()) + 3600)

    server.bearer_tokens = ("entra-token",)
    cred = FakeCredential()
    emb = AzureOpenAIEmbedder(endpoint=server.url, deployment="emb", credential=cred, dimensions=8)
    assert emb.embed_query("x").shape == (8,)
    assert server.requests[-1].headers["authorization"] == "Bearer entra-token"
    assert cred.scopes == ["https://cognitiveservices.azure.com/.default"]


def test_openai_compatible_base_url(server):
    emb = AzureOpenAIEmbedder(base_url=server.url + "/v1", deployment="emb", api_key=KEY, dimensions=16)
    assert emb.embed_query("x").shape == (16,)
    req = server.requests[-1]
    assert req.path == "/v1/embeddings" and req.headers["authorization"] == f"Bearer {KEY}"
    assert emb.model_id == "openai:emb:16"


def test_batches_by_input_count_and_keeps_order(server):
    emb = make(server, max_batch_inputs=3)
    texts = [f"text number {i}" for i in range(7)]
    out = emb.embed_documents(texts)
    assert sorted(len(b["input"]) for b in embedding_bodies(server)) == [1, 3, 3]
    for row, text in zip(out, texts):
        assert np.allclose(row, fake_embedding(text, 32), atol=1e-5)


def test_batches_by_tokens(server):
    emb = make(server, max_batch_tokens=20, max_input_tokens=10)
    texts = ["one two three four five six seven"] * 6  # 7 tokens each
    emb.embed_documents(texts)
    bodies = embedding_bodies(server)
    assert len(bodies) == 3
    for b in bodies:
        assert sum(count_tokens(t) for t in b["input"]) <= 20


def test_default_limits_split_at_2048_inputs(server):
    emb = make(server)
    emb.embed_documents([f"w{i}" for i in range(2050)])
    assert sorted(len(b["input"]) for b in embedding_bodies(server)) == [2, 2048]


def test_overlong_inputs_are_truncated_with_one_warning(server, caplog):
    emb = make(server, max_input_tokens=5)
    long_text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    caplog.set_level(logging.WARNING, logger="indexers.embedders.azure_openai")
    out = emb.embed_documents([long_text, "short"])
    assert out.shape == (2, 32)
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert warnings == ["truncated 1 of 2 input(s) to 5 tokens for embedding deployment 'emb'"]
    sent = embedding_bodies(server)[0]["input"][0]
    assert count_tokens(sent) <= 5 and long_text.startswith(sent)


def test_service_limit_would_reject_untruncated_input(server):
    # the double enforces 8191 tokens per input: with truncation the default embedder never trips it
    emb = make(server)
    out = emb.embed_query("word " * 9000)
    assert out.shape == (32,)


def test_empty_inputs(server):
    emb = make(server)
    assert emb.embed_documents([]).shape == (0, 32)
    assert emb.embed_documents([""]).shape == (1, 32)


def test_429_honours_retry_after_and_halves_concurrency(server):
    emb = make(server)
    server.fail_next(1, retry_after=0.3, kind="embeddings")
    t0 = time.monotonic()
    emb.embed_query("x")
    assert time.monotonic() - t0 >= 0.3
    assert emb.limiter.throttles == 1
    assert emb.limiter.limit < 4
    assert len(embedding_bodies(server)) == 1


def test_429_retry_after_ms_header(server):
    emb = make(server)
    server.fail_next(1, retry_after=None, retry_after_ms=250, kind="embeddings")
    t0 = time.monotonic()
    emb.embed_query("x")
    assert time.monotonic() - t0 >= 0.25


def test_concurrency_adapts_to_throttling_and_grows_back(server):
    server.latency = 0.05
    emb = make(server, max_batch_inputs=1, max_concurrency=4)
    emb.embed_documents([f"t{i}" for i in range(8)])
    assert 2 <= server.max_in_flight <= 4
    server.fail_next(2, retry_after=0.1, kind="embeddings")
    emb.embed_documents([f"u{i}" for i in range(4)])
    assert emb.limiter.throttles == 2
    assert emb.limiter.lowest == 1  # 4 -> 2 -> 1
    after_throttle = emb.limiter.limit
    assert after_throttle < 4
    emb.embed_documents([f"v{i}" for i in range(6)])
    assert after_throttle < emb.limiter.limit < 4  # growing back, slowly


def test_slows_down_when_ratelimit_headers_near_zero(server):
    server.latency = 0.05
    server.remaining_requests = 1
    emb = make(server, max_batch_inputs=1, max_concurrency=4)
    emb.embed_query("first")
    assert emb.limiter.current == 1
    server.max_in_flight = 0
    emb.embed_documents([f"t{i}" for i in range(4)])
    assert server.max_in_flight == 1
    server.remaining_requests = 1000
    server.remaining_tokens = 1_000_000


def test_throttling_beyond_the_attempts_is_transient(server):
    emb = make(server, attempts=2)
    server.fail_next(2, retry_after=0.05, kind="embeddings")
    before = len(server.requests)
    with pytest.raises(TransientError) as info:
        emb.embed_query("x")
    assert info.value.retry_after == pytest.approx(0.05) and info.value.attempts == 2
    assert len(server.requests) - before == 2  # the SDK's own retries are off


def test_tpm_quota_answers_429_with_the_wait_and_the_embedder_honours_it(server):
    server.tokens_per_minute, server.quota_window = 60, 0.8  # a short window stands in for Azure's 60 s
    server.latency = (0.01, 0.03)
    texts = [" ".join(f"w{i}x{j}" for j in range(5)) for i in range(6)]
    per_text = count_tokens(texts[0])
    emb = make(server, max_batch_inputs=2, max_concurrency=1)
    t0 = time.monotonic()
    vectors = emb.embed_documents(texts)
    elapsed = time.monotonic() - t0
    assert vectors.shape == (6, 32)
    answered = sum(len(b["input"]) * per_text for b in server.embedding_calls)
    assert answered == 6 * per_text  # every input answered once: throttled requests were not counted
    assert 6 * per_text > server.tokens_per_minute and server.throttled >= 1
    assert elapsed >= 0.8 - 0.05  # waited (at least) until the first batch left the window
    sent = [r for r in server.requests if r.path.endswith("/embeddings")]
    assert len(sent) == len(server.embedding_calls) + server.throttled


def test_tpm_quota_retry_after_says_when_the_request_fits(server):
    server.tokens_per_minute, server.quota_window = 10, 5.0
    emb = make(server, attempts=1)
    emb.embed_documents(["one two three four five six seven eight"])
    with pytest.raises(TransientError) as info:
        emb.embed_documents(["nine ten eleven twelve thirteen fourteen"])
    assert 4.0 < info.value.retry_after <= 5.0 and server.throttled == 1


def test_5xx_is_retried(server):
    emb = make(server)
    server.fail_next(1, status=503, retry_after=0.05, kind="embeddings")
    assert emb.embed_query("x").shape == (32,)


def test_wrong_key_is_an_embedding_error_and_no_key_is_logged(server, caplog):
    secret = "sk-wrong-secret-key-abcdef123456"
    caplog.set_level(logging.DEBUG)
    emb = make(server, api_key=secret)
    with pytest.raises(EmbeddingError, match="rejected the credentials"):
        emb.embed_query("x")
    assert secret not in caplog.text and secret not in repr(emb)
    caplog.clear()
    make(server).embed_query("y")  # a successful call, debug logging on
    assert KEY not in caplog.text


def test_unknown_deployment_is_a_clear_error(server):
    with pytest.raises(EmbeddingError, match="'nope' was not found"):
        make(server, deployment="nope").embed_query("x")


def test_too_many_dimensions_is_a_clear_error(server):
    with pytest.raises(EmbeddingError, match="HTTP 400"):
        make(server, dimensions=100).embed_query("x")


def test_no_client_created_at_construction():
    emb = AzureOpenAIEmbedder(endpoint="http://127.0.0.1:9", deployment="d", api_key="k", dimensions=4)
    assert emb._client is None


# ---------------------------------------------------------------------- chat completions on the double
def chat_client(server):
    return openai.AzureOpenAI(azure_endpoint=server.url, api_key=KEY, api_version=API_VERSION, max_retries=0)


def test_chat_scripted_reply_and_request_recorded(server):
    server.script_chat(ChatReply(content=lambda body: f"echo: {body['messages'][-1]['content']}"))
    r = chat_client(server).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "echo: hi" and r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens > 0
    assert server.requests[-1].path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert server.chat_calls[-1]["messages"] == [{"role": "user", "content": "hi"}]


def test_chat_streaming_sse(server):
    server.script_chat("Paris is the capital of France [doc1].")
    stream = chat_client(server).chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "capital?"}], stream=True,
        stream_options={"include_usage": True},
    )
    parts, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "".join(parts) == "Paris is the capital of France [doc1]."
    assert finish == "stop" and usage is not None and usage.completion_tokens > 0


def test_chat_content_filter_finish_reason_and_400(server):
    client = chat_client(server)
    server.script_chat(content_filter_reply("partial"), content_filter_error())
    r = client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].finish_reason == "content_filter"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "content_filter"


def test_chat_429_with_retry_after(server):
    server.fail_next(1, retry_after=0.2, kind="chat")
    with pytest.raises(openai.RateLimitError) as info:
        chat_client(server).chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "0.2"


# ---------------------------------------------------------------------- live
@pytest.mark.live
def test_live_embeddings(request):
    if "live" not in (request.config.getoption("-m") or ""):
        pytest.skip("live tests run only with `pytest -m live`")
    endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT") or os.environ.get("ONDATA_AZURE_OPENAI_ENDPOINT")
    if not endpoint:
        pytest.skip("set AZURE_OPENAI_ENDPOINT (and AZURE_OPENAI_API_KEY, or log in for Entra ID) to run live Azure OpenAI tests")
    dims = os.environ.get("AZURE_OPENAI_EMBEDDING_DIMENSIONS")
    emb = AzureOpenAIEmbedder(
        endpoint=endpoint,
        deployment=os.environ.get("AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "text-embedding-3-small"),
        api_key=os.environ.get("AZURE_OPENAI_API_KEY"),
        api_version=os.environ.get("AZURE_OPENAI_API_VERSION", API_VERSION),
        dimensions=int(dims) if dims else None,
    )
    out = emb.embed_documents(["the cat sat on the mat", "a kitten sleeps", "rocket engines burn kerosene"])
    assert out.shape == (3, emb.dimensions)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    assert float(out[0] @ out[1]) > float(out[0] @ out[2])
