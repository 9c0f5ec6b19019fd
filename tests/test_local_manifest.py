"""The local index's per-document manifest (indexers/local_manifest.py, table ``sources``) equals a GROUP BY
over the chunks after any sequence of writes, and an index of schema 2 is migrated to the current schema in place."""

from __future__ import annotations

import sqlite3

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexers import local_manifest
from indexers.local_index import SCHEMA_VERSION, LocalIndex
from indexers.records import ALL_GROUPS, Chunk, SearchRequest
from tests.data.local_index_v2 import build_v2_index

DIMS = 8
SCOPES = ("/a", "/b")
SOURCES = ("x.md", "y.md", "z.md")
GROUPS = ("hr", "eng")


def _key(records):
    return [(r.scope, r.source_id, r.version, r.chunk_count, r.complete, frozenset(r.groups), r.ingested_at, r.stat)
            for r in records]


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


write = st.tuples(
    st.sampled_from(["upsert", "partial", "delete", "delete_any", "restat"]),
    st.sampled_from(SCOPES),
    st.sampled_from(SOURCES),
    st.integers(min_value=1, max_value=3),  # chunks
    st.sampled_from([(), ("hr",), ("hr", "eng")]),
    st.integers(min_value=0, max_value=3),  # version
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(write, min_size=1, max_size=12))
def test_manifest_equals_group_by_over_chunks_after_any_writes(tmp_path_factory, writes):
    index = LocalIndex(tmp_path_factory.mktemp("m") / "idx", dimensions=DIMS, model_id="m")
    index.ensure()
    for n, (op, scope, source, count, groups, version) in enumerate(writes):
        def chunk(i: int) -> Chunk:
            return Chunk(id=f"{scope}|{source}|{i}", source_id=source, content=f"{source} {i} v{version}", chunk_index=i,
                         groups=groups, scope=scope, source_version=f"v{version}", source_chunks=count,
                         source_stat=f"1:{version}:0:0:0@{n}")
        if op == "upsert":  # a whole document, replacing its earlier chunks
            index.upsert([chunk(i) for i in range(count)], vectors=_vectors(count, n), replace_sources=[source])
        elif op == "partial":  # one batch of a document cut short (a crash between batches): incomplete
            index.upsert([chunk(0)], vectors=_vectors(1, n))
        elif op == "delete":
            index.delete_sources([source], scope=scope)
        elif op == "delete_any":
            index.delete_sources([source])
        else:
            index.record_source_stats(scope, {source: f"9:9:9:9:9@{n}"})
        con = index._con()
        assert _key(local_manifest.read(con, None)) == _key(local_manifest.aggregate(con))
        assert _key(index.list_sources(scope=scope)) == [k for k in _key(local_manifest.aggregate(con)) if k[0] == scope]
    stats = index.stats()
    assert stats.sources == len(local_manifest.aggregate(index._con()))
    index.close()


def test_a_schema_2_index_is_migrated_to_the_current_schema_in_place(tmp_path, caplog):
    path = tmp_path / "idx"
    docs = [("/docs", "a.md", "sha256:aa|p=1", ["Alpha apples.", "More alpha."], ["hr"]),
            ("/docs", "b.md", "sha256:bb|p=1", ["Bravo bananas."], []),
            ("/other", "a.md", "sha256:cc|p=1", ["Charlie cherries."], ["eng", "hr"])]
    build_v2_index(path, docs, dimensions=DIMS)
    con = sqlite3.connect(path / "index.sqlite")
    rows_before = con.execute("SELECT rid, id, content FROM chunks ORDER BY rid").fetchall()
    con.close()
    index = LocalIndex(path, dimensions=DIMS, model_id="hashing-v1")
    with caplog.at_level("WARNING"):
        index.ensure()
    assert "from schema 2 to 4 in place" in caplog.text
    con = index._con()
    assert con.execute("SELECT value FROM index_meta WHERE key = 'schema_version'").fetchone()[0] == SCHEMA_VERSION == "4"
    assert con.execute("SELECT rid, id, content FROM chunks ORDER BY rid").fetchall() == rows_before  # nothing lost
    got = [(r.scope, r.source_id, r.version, r.chunk_count, r.complete, set(r.groups), r.stat) for r in index.list_sources()]
    assert got == [("/docs", "a.md", "sha256:aa|p=1", 2, True, {"hr"}, ""),
                   ("/docs", "b.md", "sha256:bb|p=1", 1, True, set(), ""),
                   ("/other", "a.md", "sha256:cc|p=1", 1, True, {"eng", "hr"}, "")]
    assert _key(local_manifest.read(con, None)) == _key(local_manifest.aggregate(con))
    q = np.asarray(index_embed("Bravo bananas."), dtype=np.float32)
    hits = index.search(SearchRequest(text="bananas", vector=tuple(q), mode="hybrid", groups=ALL_GROUPS))
    assert hits and hits[0].chunk.source_id == "b.md"
    # written after the migration, the manifest stays in step
    index.delete_sources(["a.md"], scope="/docs")
    assert [(r.scope, r.source_id) for r in index.list_sources()] == [("/docs", "b.md"), ("/other", "a.md")]
    index.close()
    reopened = LocalIndex(path, dimensions=DIMS, model_id="hashing-v1")
    caplog.clear()
    with caplog.at_level("WARNING"):
        reopened.ensure()
    assert "migrated" not in caplog.text
    reopened.close()


def index_embed(text: str):
    from indexers.embedders.hashing import HashingEmbedder

    return HashingEmbedder(dimensions=DIMS).embed_query(text)
