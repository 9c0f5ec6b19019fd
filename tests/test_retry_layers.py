"""One layer retries per backend (issue 10 point 8): HTTP attempts counted against the test doubles.

A 429 storm on one batch costs at most the configured attempts, not their product: here through the
local engine (``pipelines.ingest.ingest``) and the wiring; the same through the Prefect flow is in
test_flows.py (one Prefect harness per test module).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from indexers.azure_search import AzureSearchIndex
from indexers.embedders.azure_openai import AzureOpenAIEmbedder
from indexers.embedders.hashing import HashingEmbedder
from indexers.local_index import LocalIndex
from indexers.retry import RetryPolicy
from ondata.settings import Settings
from pipelines.chunking import ChunkingConfig
from pipelines.ingest import IngestOptions, ingest
from pipelines.sources.local import LocalFolderSource
from tests.servers.azure_openai import FakeAzureOpenAI
from tests.servers.azure_search import FakeAzureSearch

KEY = "test-key-0123456789abcdef"
POLICY = RetryPolicy(attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.02, max_retry_after_seconds=0.02)
ONE_BATCH = IngestOptions(chunking=ChunkingConfig(chunk_size=64, overlap=0), batch_chunks=10_000, prefetch=0)


def embedding_requests(server) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/embeddings"))


def index_requests(server) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/docs/search.index"))


@pytest.fixture
def docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(3):
        (folder / f"doc-{n}.txt").write_text(f"Document {n} talks about orchards and apples, edition {n}.\n")
    return folder


def test_an_embedding_429_storm_costs_the_configured_attempts(docs, tmp_path):
    with FakeAzureOpenAI(api_key=KEY, embedding_deployments={"emb": 32}) as server:
        embedder = AzureOpenAIEmbedder(endpoint=server.url, deployment="emb", api_key=KEY, dimensions=32, retry=POLICY)
        index = LocalIndex(tmp_path / "idx", dimensions=32, model_id=embedder.model_id)
        server.fail_next(100, retry_after=0.01, kind="embeddings")
        report = ingest(LocalFolderSource(docs), index=index, embedder=embedder, options=ONE_BATCH)
        index.close()
        assert embedding_requests(server) == 3  # one batch, 3 attempts: not split into 3 documents x 3
    assert report.counts()["failed"] == 3 and report.counts()["added"] == 0
    assert {r.error_type for r in report.failed} == {"TransientError"}
    assert all("after 3 attempts" in r.error for r in report.failed)


def test_an_index_write_429_storm_costs_the_configured_attempts(docs):
    with FakeAzureSearch(api_key=KEY) as server:
        embedder = HashingEmbedder(dimensions=16)
        index = AzureSearchIndex(endpoint=server.url, index_name="storm", api_key=KEY, dimensions=16,
                                 model_id=embedder.model_id, retry=POLICY)
        server.fail_next(100, status=429, retry_after=0.01, path="/docs/search.index")
        report = ingest(LocalFolderSource(docs), index=index, embedder=embedder, options=ONE_BATCH)
        index.close()
        assert index_requests(server) == 3
    assert report.counts()["failed"] == 3 and {r.error_type for r in report.failed} == {"TransientError"}


def test_wiring_gives_every_backend_the_one_policy_with_sdk_retries_off(tmp_path):
    from ondata.wiring import build_chat_model, build_embedder, build_index, build_source, task_retry_policy

    settings = Settings(profile="azure", index_dir=tmp_path / "idx", embedder="azure_openai",
                        azure_openai_endpoint="https://example.invalid", azure_openai_api_key=KEY,
                        azure_openai_embedding_dimensions=8, azure_search_endpoint="https://example.invalid",
                        azure_search_key=KEY, azure_storage_container="docs",
                        azure_storage_connection_string="DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;"
                                                        "BlobEndpoint=http://127.0.0.1:9/a;",
                        retry_attempts=7, retry_backoff_seconds=0.25, retry_max_wait_seconds=9)
    embedder = build_embedder(settings, cached=False)
    index = build_index(settings, embedder)
    chat = build_chat_model(settings)
    blob = build_source(settings, "az://docs/kb")
    for backend in (embedder, index, chat, blob):
        assert backend.retry == RetryPolicy(attempts=7, backoff_seconds=0.25, max_retry_after_seconds=9)
    assert task_retry_policy(settings) == RetryPolicy.off()  # the backends own the retries, not the tasks
    assert embedder._get_client().max_retries == 0 and chat.client.max_retries == 0
    assert index._kwargs()["retry_total"] == 0 and blob._client_kwargs["retry_total"] == 0


def test_blob_sdk_retries_stay_off_even_when_client_options_ask():
    from pipelines.sources.blob import BlobDocumentSource

    src = BlobDocumentSource(container="c", account_url="https://example.invalid", client_options={"retry_total": 5})
    assert src._client_kwargs["retry_total"] == 0
