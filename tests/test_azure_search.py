"""AzureSearchIndex through the real azure-search-documents SDK.

- ``TestAzureSearchConformance``: the SearchIndex conformance suite against the in-repo test double
  (tests/servers/azure_search.py), over HTTP.
- ``TestAzureSearchLive``: the same suite against a real service (``pytest -m live`` with
  ``AZURE_SEARCH_ENDPOINT`` and ``AZURE_SEARCH_KEY`` or an Entra ID login), on a temporary index
  deleted afterwards.
- Backend-specific behaviour: 207 partial failures, 429/503 + Retry-After, batch splitting by count
  and bytes, schema checks, OData escaping, query types, error mapping.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid

import numpy as np
import pytest

from indexers.azure_search import (
    AzureSearchAuthError,
    AzureSearchIndex,
    IndexWriteError,
)
from indexers.embedders.hashing import HashingEmbedder
from indexers.errors import IndexError_, IndexSchemaError, TransientError
from indexers.filters import FilterError, eq
from indexers.records import ALL_GROUPS, Chunk, SearchRequest, chunk_id_for
from indexers.retry import RetryPolicy
from tests.servers.azure_search import FakeAzureSearch

try:
    from tests.conformance.search_index_suite import SearchIndexConformance, make_chunks
except ImportError:  # pragma: no cover - rootdir import mode
    from conformance.search_index_suite import SearchIndexConformance, make_chunks

KEY = "test-search-key"
DIMS = 64
META = {"lang": "string", "year": "int"}


@pytest.fixture(scope="module")
def server():
    with FakeAzureSearch(api_key=KEY) as s:
        yield s


@pytest.fixture
def embedder():
    return HashingEmbedder(dimensions=DIMS)


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


def make_index(server: FakeAzureSearch, embedder=None, **kw) -> AzureSearchIndex:
    dims = kw.pop("dimensions", embedder.dimensions if embedder else DIMS)
    options = dict(
        endpoint=server.url,
        index_name=kw.pop("index_name", None) or _name(),
        api_key=kw.pop("api_key", KEY),
        dimensions=dims,
        model_id=kw.pop("model_id", embedder.model_id if embedder else f"hashing-v1:{dims}"),
        filterable_metadata=kw.pop("filterable_metadata", META),
        retry=RetryPolicy(attempts=kw.pop("attempts", 5), backoff_seconds=0.01, max_backoff_seconds=0.05),
    )
    options.update(kw)
    return AzureSearchIndex(**options)


@pytest.fixture
def index(server, embedder):
    ix = make_index(server, embedder)
    ix.ensure()
    yield ix
    ix.close()


class TestAzureSearchConformance(SearchIndexConformance):
    """The shared SearchIndex suite, through the SDK, against the test double."""


# ---------------------------------------------------------------------- live (real service)
def _live_enabled(config) -> bool:
    return "live" in (config.getoption("-m") or "")


@pytest.fixture
def live_index(request, embedder):
    if not _live_enabled(request.config):
        pytest.skip("live tests run only with `pytest -m live`")
    endpoint = os.environ.get("AZURE_SEARCH_ENDPOINT") or os.environ.get("ONDATA_AZURE_SEARCH_ENDPOINT")
    if not endpoint:
        pytest.skip("set AZURE_SEARCH_ENDPOINT (and AZURE_SEARCH_KEY, or log in for Entra ID) to run live Azure AI Search tests")
    key = os.environ.get("AZURE_SEARCH_KEY") or os.environ.get("ONDATA_AZURE_SEARCH_KEY")
    ix = AzureSearchIndex(
        endpoint=endpoint,
        index_name=f"ondata-test-{uuid.uuid4().hex[:12]}",
        api_key=key,
        dimensions=embedder.dimensions,
        model_id=embedder.model_id,
        filterable_metadata=META,
    )
    ix.ensure()
    try:
        yield _Settling(ix, settle=float(os.environ.get("ONDATA_LIVE_SETTLE_SECONDS", "2")))
    finally:
        ix.delete_index()
        ix.close()


class _Settling:
    """Live only: the real service is eventually consistent, so wait a moment after each write."""

    def __init__(self, inner: AzureSearchIndex, *, settle: float) -> None:
        self._inner, self._settle = inner, settle

    def upsert(self, chunks, *, vectors, **kw):
        self._inner.upsert(chunks, vectors=vectors, **kw)
        time.sleep(self._settle)

    def delete_sources(self, ids):
        self._inner.delete_sources(ids)
        time.sleep(self._settle)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.mark.live
class TestAzureSearchLive(SearchIndexConformance):
    @pytest.fixture
    def index(self, live_index):
        return live_index


# ---------------------------------------------------------------------- helpers
def chunks_for(source: str, n: int, *, size: int = 0, version: str = "v1") -> list[Chunk]:
    out = []
    for i in range(n):
        text = f"{source} chunk {i} " + ("x" * size)
        out.append(Chunk(id=chunk_id_for(source, i, text), source_id=source, content=text, chunk_index=i,
                         source_version=version, source_chunks=n))
    return out


def vectors_for(embedder, chunks):
    return embedder.embed_documents([c.content for c in chunks])


def index_requests(server: FakeAzureSearch, name: str) -> list:
    return [r for r in server.requests if r.path == f"/indexes('{name}')/docs/search.index"]


def search_bodies(server: FakeAzureSearch, name: str) -> list[dict]:
    return [r.json() for r in server.requests if r.path == f"/indexes('{name}')/docs/search.post.search"]


# ---------------------------------------------------------------------- schema
def test_ensure_creates_documented_schema(server, embedder):
    ix = make_index(server, embedder, quantization="scalar")
    ix.ensure()
    definition = server.indexes[ix.index_name].definition
    fields = {f["name"]: f for f in definition["fields"]}
    assert fields["id"]["key"] is True
    assert fields["content"]["searchable"] and fields["title"]["searchable"]
    for name in ("source_id", "source_version", "source_chunks"):
        assert fields[name]["filterable"] and fields[name]["facetable"], name
    assert fields["groups"]["type"] == "Collection(Edm.String)" and fields["groups"]["filterable"]
    assert fields["metadata"]["type"] == "Edm.String"
    assert fields["meta_lang"]["filterable"] and fields["meta_year"]["type"] == "Edm.Int64"
    vec = fields["content_vector"]
    assert vec["dimensions"] == DIMS and vec["retrievable"] is False
    vs = definition["vectorSearch"]
    (profile,) = vs["profiles"]
    assert profile["name"] == vec["vectorSearchProfile"]
    assert vs["algorithms"][0]["kind"] == "hnsw" and vs["algorithms"][0]["hnswParameters"]["metric"] == "cosine"
    (compression,) = vs["compressions"]
    assert compression["kind"] == "scalarQuantization" and profile["compression"] == compression["name"]
    assert definition["semantic"]["configurations"][0]["prioritizedFields"]["titleField"] == {"fieldName": "title"}
    meta = json.loads(definition["description"][len("ondata "):])
    assert meta == {"dimensions": DIMS, "model_id": embedder.model_id, "schema": 1}


def test_binary_quantization(server, embedder):
    ix = make_index(server, embedder, quantization="binary")
    ix.ensure()
    (compression,) = server.indexes[ix.index_name].definition["vectorSearch"]["compressions"]
    assert compression["kind"] == "binaryQuantization"


def test_existing_index_with_other_dimensions_is_refused(server):
    name = _name()
    make_index(server, index_name=name, dimensions=8).ensure()
    with pytest.raises(IndexSchemaError, match="stores 8-dimensional vectors but the embedder produces 16"):
        make_index(server, index_name=name, dimensions=16).ensure()


def test_existing_index_with_other_model_is_refused(server):
    name = _name()
    make_index(server, index_name=name, dimensions=8, model_id="model-a").ensure()
    with pytest.raises(IndexSchemaError, match="model-a"):
        make_index(server, index_name=name, dimensions=8, model_id="model-b").ensure()


def test_foreign_index_is_refused(server):
    name = _name()
    server.indexes[name] = __import__("tests.servers.azure_search", fromlist=["_Index"])._Index(
        {"name": name, "fields": [{"name": "key", "type": "Edm.String", "key": True}]}
    )
    with pytest.raises(IndexSchemaError, match="not created by ondata"):
        make_index(server, index_name=name).ensure()


def test_ensure_adds_new_filterable_metadata_field(server, embedder):
    name = _name()
    make_index(server, embedder, index_name=name, filterable_metadata=["lang"]).ensure()
    ix = make_index(server, embedder, index_name=name, filterable_metadata=["lang", "team"])
    ix.ensure()
    assert "meta_team" in {f["name"] for f in server.indexes[name].definition["fields"]}


def test_missing_index_is_a_clear_error(server):
    ix = make_index(server)
    with pytest.raises(IndexError_, match="does not exist"):
        ix.count()


# ---------------------------------------------------------------------- writes
def test_partial_failure_207_retries_retryable_and_names_the_permanent_ones(server, index, embedder):
    chunks = chunks_for("partial", 6)
    ids = [c.id for c in chunks]
    server.fail_documents({ids[0]: [503], ids[1]: [422, 409], ids[2]: [400]})
    with pytest.raises(IndexWriteError) as info:
        index.upsert(chunks, vectors=vectors_for(embedder, chunks))
    err = info.value
    assert set(err.failures) == {ids[2]}
    assert err.failures[ids[2]][0] == 400
    assert ids[2] in str(err) and err.doc_id == ids[2]
    stored = server.documents(index.index_name)
    assert set(stored) == set(ids) - {ids[2]}
    statuses = [b["status"] for b in server.index_batches[-3:]]
    assert statuses == [207, 207, 200]  # first try, retry of ids[0] + ids[1], last retry of ids[1]
    assert index.count() == 5


def test_retryable_document_failures_give_up_after_the_attempts(server, embedder):
    ix = make_index(server, embedder, attempts=3)
    ix.ensure()
    chunks = chunks_for("give-up", 2)
    server.fail_documents({chunks[0].id: [503] * 5})
    batches = len(server.index_batches)
    with pytest.raises(IndexWriteError, match=chunks[0].id):
        ix.upsert(chunks, vectors=vectors_for(embedder, chunks))
    assert [b["index"] for b in server.index_batches[batches:]] == [ix.sources_index_name] + [ix.index_name] * 3
    # the sources marked as being written, then the configured attempts, no more (no final record)
    server.clear_failures()


def test_throttling_and_207_retries_share_one_budget_per_batch(server, embedder):
    ix = make_index(server, embedder, attempts=4)
    ix.ensure()
    chunks = chunks_for("budget", 2)
    server.fail_documents({chunks[0].id: [503] * 10})
    before = len(index_requests(server, ix.index_name))
    server.fail_next(2, status=429, retry_after=0.01, path=f"/indexes('{ix.index_name}')/docs/search.index")
    with pytest.raises(IndexWriteError, match=chunks[0].id):  # two throttled chunk writes, then 207s
        ix.upsert(chunks, vectors=vectors_for(embedder, chunks))
    assert len(index_requests(server, ix.index_name)) - before == 4  # 429, 429, 207, 207: not 4 x 4
    server.clear_failures()


def test_throttling_429_honours_retry_after(server, index, embedder):
    chunks = chunks_for("doc", 3)
    server.fail_next(2, status=429, retry_after=0.3)
    t0 = time.monotonic()
    index.upsert(chunks, vectors=vectors_for(embedder, chunks))
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.6
    assert elapsed < 3.0
    assert index.count() == 3


def test_503_with_retry_after_on_search_is_retried(server, index, embedder):
    chunks = chunks_for("doc", 2)
    index.upsert(chunks, vectors=vectors_for(embedder, chunks))
    server.fail_next(1, status=503, retry_after=0.2)
    t0 = time.monotonic()
    hits = index.search(SearchRequest(text="doc chunk", mode="text"))
    assert time.monotonic() - t0 >= 0.2
    assert len(hits) == 2


def test_throttling_beyond_the_attempts_is_a_transient_error(server, embedder):
    ix = make_index(server, embedder, attempts=2)
    ix.ensure()
    before = len(server.requests)
    server.fail_next(2, status=429, retry_after=0.05)
    with pytest.raises(TransientError) as info:
        ix.count()
    assert info.value.retry_after == pytest.approx(0.05) and info.value.attempts == 2
    assert len(server.requests) - before == 2  # one try + one retry: the SDK's own retry is off


def test_sdk_retry_policy_is_disabled(server, embedder):
    ix = make_index(server, embedder, attempts=1)
    ix.ensure()
    before = len(server.requests)
    server.fail_next(1, status=503, retry_after=0.01)
    with pytest.raises(TransientError):
        ix.count()
    assert len(server.requests) - before == 1


def test_batches_split_by_count(server, embedder):
    ix = make_index(server, embedder, batch_size=10)
    ix.ensure()
    chunks = chunks_for("doc", 25)
    ix.upsert(chunks, vectors=vectors_for(embedder, chunks))
    sizes = [len(r.json()["value"]) for r in index_requests(server, ix.index_name)]
    assert sizes == [10, 10, 5]
    assert ix.count() == 25


def test_batches_split_by_serialized_bytes(server, embedder):
    limit = 12_000
    ix = make_index(server, embedder, max_batch_bytes=limit)
    ix.ensure()
    chunks = chunks_for("big", 12, size=3000)  # ~4 KB each serialized with the vector
    ix.upsert(chunks, vectors=vectors_for(embedder, chunks))
    reqs = index_requests(server, ix.index_name)
    assert len(reqs) > 3
    assert all(len(r.body) <= limit for r in reqs), [len(r.body) for r in reqs]
    assert sum(len(r.json()["value"]) for r in reqs) == 12
    assert ix.count() == 12


def test_default_batches_stay_within_service_limits(server, embedder):
    ix = make_index(server, embedder)
    ix.ensure()
    chunks = chunks_for("many", 1500)
    ix.upsert(chunks, vectors=vectors_for(embedder, chunks))
    sizes = [len(r.json()["value"]) for r in index_requests(server, ix.index_name)]
    assert sizes == [1000, 500]


def test_document_larger_than_a_request_is_refused_by_id(server, embedder):
    ix = make_index(server, embedder, max_batch_bytes=2048)
    ix.ensure()
    (chunk,) = chunks_for("huge", 1, size=5000)
    with pytest.raises(IndexError_) as info:
        ix.upsert([chunk], vectors=vectors_for(embedder, [chunk]))
    assert info.value.doc_id == chunk.id


def test_invalid_chunk_key_is_refused_before_sending(server, index, embedder):
    bad = Chunk(id="not a key!", source_id="s", content="x", chunk_index=0)
    with pytest.raises(IndexError_, match="valid Azure AI Search key"):
        index.upsert([bad], vectors=vectors_for(embedder, [bad]))


def test_wrong_vector_dimensions_are_refused(index):
    (chunk,) = chunks_for("s", 1)
    with pytest.raises(IndexSchemaError):
        index.upsert([chunk], vectors=np.ones((1, DIMS + 1), dtype=np.float32))


def test_delete_sources_escapes_quotes(server, index, embedder):
    quoted = "it's a 'quoted' id"
    keep = chunks_for("it", 2)
    gone = chunks_for(quoted, 3)
    index.upsert([*keep, *gone], vectors=vectors_for(embedder, [*keep, *gone]))
    index.delete_sources([quoted, "it''s", "' or 1 eq 1 or id eq '"])
    assert {s.source_id for s in index.list_sources()} == {"it"}
    assert index.count() == 2
    filters = [b.get("filter") for b in search_bodies(server, index.index_name) if b.get("filter")]
    assert any("source_id eq 'it''s a ''quoted'' id'" in f for f in filters), filters


def test_delete_and_list_page_beyond_one_page(server, index, embedder, monkeypatch):
    import indexers.azure_search as mod

    monkeypatch.setattr(mod, "_PAGE", 4)
    a, b = chunks_for("a", 9), chunks_for("b", 5)
    index.upsert([*a, *b], vectors=vectors_for(embedder, [*a, *b]))
    records = {r.source_id: r for r in index.list_sources()}
    assert records["a"].chunk_count == 9 and records["a"].complete
    assert records["b"].chunk_count == 5 and records["b"].complete
    index.delete_sources(["a"])
    assert index.count() == 5
    many = [c for i in range(9) for c in chunks_for(f"s{i}", 2)]  # 10 sources: three pages of the sources index
    index.upsert(many, vectors=vectors_for(embedder, many))
    assert [r.source_id for r in index.list_sources()] == ["b"] + [f"s{i}" for i in range(9)]


# ---------------------------------------------------------------------- the sources index
def test_list_sources_reads_one_document_per_source_not_the_chunks(server, index, embedder):
    chunks = [c for i in range(3) for c in chunks_for(f"doc{i}", 40)]
    index.upsert(chunks, vectors=vectors_for(embedder, chunks))
    assert sorted(d["source_id"] for d in server.documents(index.sources_index_name).values()) == ["doc0", "doc1", "doc2"]
    before = len(server.requests)
    records = index.list_sources()
    asked = server.requests[before:]
    assert [r.path for r in asked] == [f"/indexes('{index.sources_index_name}')/docs/search.post.search"]
    assert "content" not in asked[0].json()["select"] and "chunks" not in asked[0].json()["select"]
    assert [(r.source_id, r.version, r.chunk_count, r.complete) for r in records] == [
        (f"doc{i}", "v1", 40, True) for i in range(3)]
    index.delete_sources(["doc1"])
    assert sorted(d["source_id"] for d in server.documents(index.sources_index_name).values()) == ["doc0", "doc2"]


def test_an_index_name_leaves_room_for_its_sources_index(server):
    assert make_index(server, index_name="a" * 120).sources_index_name == "a" * 120 + "-sources"  # 128: the limit
    with pytest.raises(ValueError, match="over 120 characters"):
        make_index(server, index_name="a" * 121)


def test_a_write_cut_short_leaves_its_source_incomplete_until_written_whole(server, index, embedder):
    old = chunks_for("doc", 3)
    index.upsert(old, vectors=vectors_for(embedder, old))
    new = chunks_for("doc", 2, version="v2", size=5)
    server.fail_documents({new[1].id: [400]})  # the write fails after the source was marked as being written
    with pytest.raises(IndexWriteError):
        index.upsert(new, vectors=vectors_for(embedder, new), replace_sources=["doc"])
    (record,) = index.list_sources()
    assert not record.complete  # the next run re-ingests it
    index.upsert(new, vectors=vectors_for(embedder, new), replace_sources=["doc"])
    (record,) = index.list_sources()
    assert (record.version, record.chunk_count, record.complete) == ("v2", 2, True)
    assert index.count() == 2


def test_ensure_builds_the_sources_index_of_an_index_that_predates_it(server, embedder):
    name = _name()
    ix = make_index(server, embedder, index_name=name)
    ix.ensure()
    chunks = chunks_for("a", 3) + chunks_for("b", 2) + chunks_for("c", 2, version="v2")[:1]
    ix.upsert(chunks, vectors=vectors_for(embedder, chunks))
    want = [(r.scope, r.source_id, r.version, r.chunk_count, r.complete) for r in ix.list_sources()]
    assert want == [("", "a", "v1", 3, True), ("", "b", "v1", 2, True), ("", "c", "v2", 1, False)]
    del server.indexes[ix.sources_index_name]  # as an index written before the sources index existed
    again = make_index(server, embedder, index_name=name)
    again.ensure()
    assert [(r.scope, r.source_id, r.version, r.chunk_count, r.complete) for r in again.list_sources()] == want
    assert server.indexes[again.sources_index_name].definition["description"] == "ondata sources 1"
    more = chunks_for("c", 2, version="v2")[1:]
    again.upsert(more, vectors=vectors_for(embedder, more))  # the built state merges with later writes
    assert {r.source_id: (r.chunk_count, r.complete) for r in again.list_sources()}["c"] == (2, True)


def test_change_tokens_are_stored_with_the_source(server, index, embedder):
    chunks = [Chunk(**{**c.__dict__, "source_stat": "1:2:3:4:5@9"}) for c in chunks_for("doc", 2)]
    index.upsert(chunks, vectors=vectors_for(embedder, chunks))
    assert [r.stat for r in index.list_sources()] == ["1:2:3:4:5@9"]
    index.record_source_stats("", {"doc": "1:2:7:4:5@11"})
    (record,) = index.list_sources()
    assert (record.stat, record.version, record.complete) == ("1:2:7:4:5@11", "v1", True)
    index.record_source_stats("", {"gone": "1:1:1:1:1@1"})  # a source deleted meanwhile: nothing to merge into
    assert [r.source_id for r in index.list_sources()] == ["doc"]


# ---------------------------------------------------------------------- search
def load(index, embedder):
    chunks = [c for key in ("cats", "volcano", "bread", "tax", "rocket", "chess") for c in make_chunks(key)]
    index.upsert(chunks, vectors=vectors_for(embedder, chunks))
    return chunks


def test_semantic_query_type_uses_the_semantic_configuration(server, index, embedder):
    load(index, embedder)
    req = SearchRequest(text="kitten milk mother", mode="text")
    hits = index.search(req, query_type="semantic")
    body = search_bodies(server, index.index_name)[-1]
    assert body["queryType"] == "semantic" and body["semanticConfiguration"] == "ondata-semantic"
    assert hits[0].chunk.source_id == "cats"
    assert 0.0 <= hits[0].score <= 4.0


def test_vector_semantic_hybrid_is_one_service_request(server, index, embedder):
    load(index, embedder)
    text = "rocket engines kerosene"
    req = SearchRequest(text=text, vector=tuple(embedder.embed_query(text)), mode="hybrid", groups=ALL_GROUPS)
    before = len(search_bodies(server, index.index_name))
    hits = index.search(req, query_type="vector_semantic_hybrid")
    bodies = search_bodies(server, index.index_name)[before:]
    assert len(bodies) == 1
    assert bodies[0]["queryType"] == "semantic" and bodies[0]["vectorQueries"][0]["fields"] == "content_vector"
    assert hits[0].chunk.source_id == "rocket"


def test_service_side_hybrid_fusion(server, embedder):
    ix = make_index(server, embedder, hybrid_fusion="service")
    ix.ensure()
    load(ix, embedder)
    text = "income tax deduction"
    before = len(search_bodies(server, ix.index_name))
    hits = ix.search(SearchRequest(text=text, vector=tuple(embedder.embed_query(text)), mode="hybrid", k_candidates=7,
                                   groups=ALL_GROUPS))
    (body,) = search_bodies(server, ix.index_name)[before:]
    assert body["search"] and body["vectorQueries"][0]["k"] == 7 and body["vectorQueries"][0]["kind"] == "vector"
    assert hits[0].chunk.source_id == "tax"
    assert hits[0].text_rank is None  # the service does not report per-arm ranks


def test_query_type_needs_its_inputs(index, embedder):
    with pytest.raises(ValueError, match="needs a query vector"):
        index.search(SearchRequest(text="x", mode="text"), query_type="vector_simple_hybrid")
    plain = make_index_like(index, semantic=False)
    with pytest.raises(ValueError, match="semantic"):
        plain.search(SearchRequest(text="x", mode="text"), query_type="semantic")


def make_index_like(index: AzureSearchIndex, **kw) -> AzureSearchIndex:
    return AzureSearchIndex(endpoint=index.endpoint, index_name=index.index_name, api_key=KEY,
                            dimensions=index.dimensions, model_id=index.model_id, **kw)


def test_filter_on_unconfigured_metadata_key_is_a_filter_error(index, embedder):
    req = SearchRequest(text="cats", mode="text", filter=eq("metadata.colour", "red"))
    with pytest.raises(FilterError, match="filterable_metadata"):
        index.search(req)


def test_acl_filter_shape(index):
    req = SearchRequest(text="cats", mode="text", groups=("a|b", "c"), public_when_no_groups=True,
                        filter=eq("source_id", "x"))
    flt = index.odata_filter(req)
    assert flt == "(source_id eq 'x') and (groups/any(g: search.in(g, 'a|b,c', ',')) or not groups/any())"
    assert index.odata_filter(SearchRequest(text="x", mode="text", groups=(), public_when_no_groups=False)) == "false"
    # deny by default: no groups given is public-only; only ALL_GROUPS drops the security filter
    assert index.odata_filter(SearchRequest(text="x", mode="text")) == "not groups/any()"
    assert index.odata_filter(SearchRequest(text="x", mode="text", public_when_no_groups=False)) == "false"
    assert index.odata_filter(SearchRequest(text="x", mode="text", groups=ALL_GROUPS)) is None


def test_operators_in_user_text_are_escaped(server, index, embedder):
    load(index, embedder)
    index.search(SearchRequest(text="-cats +mice \"purr", mode="text"))
    assert search_bodies(server, index.index_name)[-1]["search"] == '\\-cats \\+mice \\"purr'


# ---------------------------------------------------------------------- errors and secrets
def test_wrong_key_is_an_auth_error_and_the_key_is_never_logged(server, caplog):
    secret = "wrong-secret-key-1234567890"
    ix = make_index(server, api_key=secret)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AzureSearchAuthError, match="rejected the credentials"):
        ix.ensure()
    assert secret not in caplog.text
    assert secret not in repr(ix)


def test_unreachable_endpoint_is_a_transient_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ix = AzureSearchIndex(endpoint=f"http://127.0.0.1:{port}", index_name="x", api_key="k", dimensions=4,
                          model_id="m", retry=RetryPolicy(attempts=2, backoff_seconds=0.01))
    with pytest.raises(TransientError, match="unreachable"):
        ix.count()
