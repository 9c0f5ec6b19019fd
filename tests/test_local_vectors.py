"""The vector arm of the local index (indexers.local_vectors): HNSW as a setting, its recall against
exact search, filtered search with HNSW, the automatic choice and switching kinds on an existing index."""

from __future__ import annotations

import numpy as np
import pytest

from indexers.filters import Eq
from indexers.local_index import LocalIndex
from indexers.local_vectors import VectorConfig, kind_of
from indexers.records import ALL_GROUPS, Chunk, SearchRequest

DIMS = 16


def _chunks(n: int) -> list[Chunk]:
    return [
        Chunk(id=f"c{i}", source_id=f"s{i // 10}", content=f"chunk {i}", chunk_index=i % 10, title="t",
              filepath=f"s{i // 10}.txt", metadata={"team": "rare" if i % 97 == 0 else "common"},
              source_version="v1", source_chunks=10)
        for i in range(n)
    ]


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _index(tmp_path, config: VectorConfig, n: int) -> tuple[LocalIndex, list[Chunk], np.ndarray]:
    ix = LocalIndex(tmp_path / "ix", dimensions=DIMS, model_id="random", vectors=config)
    chunks, vecs = _chunks(n), _vectors(n)
    ix.upsert(chunks, vectors=vecs)
    return ix, chunks, vecs


def _top(ix: LocalIndex, q: np.ndarray, k: int = 10, **kw) -> list[str]:
    hits = ix.search(SearchRequest(vector=tuple(float(x) for x in q), mode="vector", top=k, groups=ALL_GROUPS, **kw))
    return [h.chunk.id for h in hits]


def _exact(vecs: np.ndarray, q: np.ndarray, k: int = 10, rows: np.ndarray | None = None) -> list[str]:
    rows = np.arange(len(vecs)) if rows is None else rows
    scores = vecs[rows] @ q
    return [f"c{rows[i]}" for i in np.argsort(-scores, kind="stable")[:k]]


def test_hnsw_recall_at_10_against_exact_search(tmp_path):
    n = 4000
    ix, _, vecs = _index(tmp_path, VectorConfig(kind="hnsw"), n)
    queries = _vectors(50, seed=1)
    recall = np.mean([len(set(_top(ix, q)) & set(_exact(vecs, q))) / 10 for q in queries])
    assert kind_of(ix._vectors.fresh(ix._con())) == "hnsw"  # noqa: SLF001
    assert recall >= 0.9, recall
    ix.close()


def test_selective_filter_returns_exactly_the_allowed_top_hits(tmp_path):
    n = 3000
    ix, chunks, vecs = _index(tmp_path, VectorConfig(kind="hnsw"), n)  # default exact_allowed_max
    rare = np.array([i for i in range(n) if chunks[i].metadata["team"] == "rare"])
    assert 20 < len(rare) < 40
    for q in _vectors(10, seed=2):
        assert _top(ix, q, filter=Eq("metadata.team", "rare")) == _exact(vecs, q, rows=rare)
    ix.close()


def test_broad_filter_through_the_hnsw_selector_keeps_recall(tmp_path):
    n = 3000
    ix, chunks, vecs = _index(tmp_path, VectorConfig(kind="hnsw", exact_allowed_max=0), n)  # always the selector
    common = np.array([i for i in range(n) if chunks[i].metadata["team"] == "common"])
    allowed = {f"c{i}" for i in common}
    recalls = []
    for q in _vectors(30, seed=2):
        got = _top(ix, q, filter=Eq("metadata.team", "common"))
        assert set(got) <= allowed  # never a row outside the filter
        recalls.append(len(set(got) & set(_exact(vecs, q, rows=common))) / 10)
    assert np.mean(recalls) >= 0.9, np.mean(recalls)
    ix.close()


def test_auto_is_exact_below_the_threshold_and_hnsw_from_it(tmp_path):
    small = LocalIndex(tmp_path / "small", dimensions=DIMS, model_id="random", vectors=VectorConfig(kind="auto", exact_below=500))
    small.upsert(_chunks(100), vectors=_vectors(100))
    small.rebuild_vectors()
    assert kind_of(small._vectors.fresh(small._con())) == "flat"  # noqa: SLF001
    small.close()
    big = LocalIndex(tmp_path / "big", dimensions=DIMS, model_id="random", vectors=VectorConfig(kind="auto", exact_below=500))
    big.upsert(_chunks(600), vectors=_vectors(600))
    big.rebuild_vectors()
    assert kind_of(big._vectors.fresh(big._con())) == "hnsw"  # noqa: SLF001
    big.close()


def test_an_existing_flat_file_is_rebuilt_as_hnsw_when_the_setting_changes(tmp_path):
    ix, _, vecs = _index(tmp_path, VectorConfig(kind="flat"), 300)
    ix.close()  # saves a flat vectors.faiss
    reopened = LocalIndex(tmp_path / "ix", dimensions=DIMS, model_id="random", vectors=VectorConfig(kind="hnsw"))
    q = _vectors(1, seed=3)[0]
    assert _top(reopened, q) == _exact(vecs, q)  # 300 vectors: HNSW finds the exact top 10
    assert kind_of(reopened._vectors.fresh(reopened._con())) == "hnsw"  # noqa: SLF001
    reopened.close()


def test_deleted_rows_are_never_returned_with_hnsw(tmp_path):
    ix, _, vecs = _index(tmp_path, VectorConfig(kind="hnsw"), 500)
    q = vecs[7]
    assert _top(ix, q, k=1) == ["c7"]
    ix.delete_sources(["s0"])  # c0..c9
    got = _top(ix, q)
    assert not set(got) & {f"c{i}" for i in range(10)}
    assert got == _exact(vecs, q, rows=np.arange(10, 500))
    ix.close()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="auto, flat or hnsw"):
        VectorConfig(kind="ivf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ef_search"):
        VectorConfig(ef_search=0)


def test_settings_from_the_environment_reach_the_local_index(tmp_path, monkeypatch):
    from indexers.embedders.hashing import HashingEmbedder
    from ondata.settings import Settings
    from ondata.wiring import build_index

    monkeypatch.setenv("ONDATA_VECTOR_INDEX", "hnsw")
    monkeypatch.setenv("ONDATA_HNSW_EF_SEARCH", "128")
    monkeypatch.setenv("ONDATA_FAISS_THREADS", "2")
    ix = build_index(Settings(index_dir=tmp_path / "ix"), HashingEmbedder(dimensions=DIMS))
    assert (ix._vectors.config.kind, ix._vectors.config.ef_search, ix._vectors.config.threads) == ("hnsw", 128, 2)  # noqa: SLF001
