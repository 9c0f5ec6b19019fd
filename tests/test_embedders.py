"""Embedders: the hashing embedder, the SQLite embedding cache + CachedEmbedder, and the real
all-MiniLM-L6-v2 sentence-transformer (offline, windowing of long texts)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
from indexers.embedders.hashing import HashingEmbedder
from indexers.errors import EmbeddingError
from indexers.ports import Embedder

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- hashing embedder

def test_hashing_embedder_is_an_embedder_with_normalised_float32_rows():
    e = HashingEmbedder(dimensions=64)
    assert isinstance(e, Embedder)
    assert (e.model_id, e.dimensions) == ("hashing-v1", 64)
    m = e.embed_documents(["Hello world", "", "!!!", "Ünïcödé 日本語"])
    assert m.shape == (4, 64) and m.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, rtol=1e-5)
    q = e.embed_query("Hello world")
    assert q.shape == (64,) and q.dtype == np.float32
    np.testing.assert_array_equal(q, m[0])
    assert e.embed_documents([]).shape == (0, 64)


def test_hashing_embedder_is_deterministic_across_processes():
    e = HashingEmbedder()
    here = e.embed_query("Deterministic feature hashing of words").tolist()
    code = (
        f"import sys, json; sys.path.insert(0, {str(REPO)!r});"
        "from indexers.embedders.hashing import HashingEmbedder;"
        "print(json.dumps(HashingEmbedder().embed_query('Deterministic feature hashing of words').tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different salt for hash(): must not matter
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    import json

    assert json.loads(out.stdout) == here


def test_hashing_embedder_similarity_follows_shared_words():
    e = HashingEmbedder()
    base, near, far = e.embed_documents([
        "the volcano erupted with lava and ash",
        "lava and ash poured from the erupting volcano",
        "quarterly tax returns for small businesses",
    ])
    assert float(base @ near) > 0.4
    assert float(base @ near) > float(base @ far) + 0.3
    # char trigrams make morphological variants similar
    a, b, c = e.embed_documents(["erupting volcanoes", "erupted volcano", "taxation"])
    assert float(a @ b) > float(a @ c)


def test_hashing_embedder_rejects_bad_input():
    with pytest.raises(ValueError):
        HashingEmbedder(dimensions=0)
    with pytest.raises(TypeError):
        HashingEmbedder().embed_documents("a single string")


# ---------------------------------------------------------------- cache

class CountingEmbedder:
    """Wraps an embedder and records every batch the model sees."""

    def __init__(self, inner):
        self.inner = inner
        self.batches: list[list[str]] = []
        self.queries: list[str] = []

    model_id = property(lambda self: self.inner.model_id)
    dimensions = property(lambda self: self.inner.dimensions)

    def embed_documents(self, texts):
        self.batches.append(list(texts))
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        self.queries.append(text)
        return self.inner.embed_query(text)


def test_cached_embedder_computes_only_misses_in_one_batch(tmp_path):
    inner = CountingEmbedder(HashingEmbedder(dimensions=32))
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    e = CachedEmbedder(inner, cache)
    assert isinstance(e, Embedder) and e.model_id == "hashing-v1" and e.dimensions == 32

    first = e.embed_documents(["a b", "c d", "a b"])
    assert inner.batches == [["a b", "c d"]]  # a repeated text is embedded once
    assert (e.stats.cache_hits, e.stats.computed) == (0, 2)
    exact = inner.inner.embed_documents(["a b", "c d", "a b"])
    # returned at the cache's precision (float16 by default), whether computed now or read back later
    np.testing.assert_array_equal(first, exact.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(first, exact, rtol=0, atol=1e-3)

    second = e.embed_documents(["c d", "e f", "a b"])
    assert inner.batches[-1] == ["e f"]
    assert (e.stats.cache_hits, e.stats.computed) == (2, 3)
    np.testing.assert_array_equal(second[0], first[1])
    assert e.stats.seconds_in_model > 0


def test_second_run_computes_nothing(tmp_path):
    texts = [f"chunk number {i} about topic {i % 7}" for i in range(50)]
    run1 = CachedEmbedder(CountingEmbedder(HashingEmbedder()), EmbeddingCache(tmp_path / "c.sqlite"))
    v1 = run1.embed_documents(texts)
    assert run1.stats.computed == 50
    run1.cache.close()
    inner2 = CountingEmbedder(HashingEmbedder())
    run2 = CachedEmbedder(inner2, EmbeddingCache(tmp_path / "c.sqlite"))  # a new process, same file
    v2 = run2.embed_documents(texts)
    assert (run2.stats.computed, run2.stats.cache_hits) == (0, 50)
    assert inner2.batches == []
    np.testing.assert_array_equal(v1, v2)


def test_cache_key_includes_model_and_dimensions(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    CachedEmbedder(HashingEmbedder(dimensions=32), cache).embed_documents(["same text"])
    other = CachedEmbedder(HashingEmbedder(dimensions=64), cache)
    other.embed_documents(["same text"])
    assert other.stats.computed == 1
    assert cache.get_many("another-model", 32, ["same text"]) == {}
    assert set(cache.get_many("hashing-v1", 32, ["x", "same text"])) == {1}


def test_float32_cache_round_trips_exactly(tmp_path):
    inner = HashingEmbedder(dimensions=48)
    texts = [f"exact text {i}" for i in range(5)]
    e = CachedEmbedder(inner, EmbeddingCache(tmp_path / "c.sqlite", dtype="float32"))
    np.testing.assert_array_equal(e.embed_documents(texts), inner.embed_documents(texts))
    e.cache.close()
    again = EmbeddingCache(tmp_path / "c.sqlite", dtype="float32").get_many(inner.model_id, 48, texts)
    np.testing.assert_array_equal(np.stack([again[i] for i in range(5)]), inner.embed_documents(texts))
    with pytest.raises(ValueError, match="dtype"):
        EmbeddingCache(tmp_path / "x.sqlite", dtype="int4")


def test_float16_cache_stores_two_bytes_a_dimension_in_a_rowid_table(tmp_path):
    import sqlite3

    inner = HashingEmbedder(dimensions=384)
    texts = [f"compact {i}" for i in range(20)]
    e = CachedEmbedder(inner, EmbeddingCache(tmp_path / "c.sqlite"))
    got = e.embed_documents(texts)
    np.testing.assert_allclose(got, inner.embed_documents(texts), rtol=0, atol=1e-3)
    e.cache.close()
    con = sqlite3.connect(tmp_path / "c.sqlite")
    assert {n for (n,) in con.execute("SELECT length(vector) FROM embedding_vectors")} == {2 * 384}
    assert con.execute("SELECT sql FROM sqlite_master WHERE name = 'embedding_vectors'").fetchone()[0].find("WITHOUT ROWID") < 0
    con.close()


def test_schema1_cache_is_migrated_in_place_without_loss(tmp_path, caplog):
    import logging
    import sqlite3

    from indexers.embedders.cache import text_key

    path = tmp_path / "old.sqlite"
    inner = HashingEmbedder(dimensions=32)
    texts = [f"old text {i}" for i in range(30)]
    vecs = inner.embed_documents(texts)
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE embedding_cache (model_id TEXT NOT NULL, dimensions INTEGER NOT NULL, text_sha256 BLOB NOT NULL,"
        " vector BLOB NOT NULL, PRIMARY KEY (model_id, dimensions, text_sha256)) WITHOUT ROWID"
    )
    con.executemany(
        "INSERT INTO embedding_cache VALUES (?, ?, ?, ?)",
        [(inner.model_id, 32, text_key(t), vecs[i].tobytes()) for i, t in enumerate(texts)]
        + [("other-model", 32, text_key("q"), vecs[0].tobytes())],
    )
    con.commit()
    con.close()

    counting = CountingEmbedder(inner)
    with caplog.at_level(logging.INFO, logger="indexers.embedders.cache"):
        e = CachedEmbedder(counting, EmbeddingCache(path))
        got = e.embed_documents(texts)
    assert counting.batches == [] and e.stats.cache_hits == 30  # every old vector was kept
    np.testing.assert_allclose(got, vecs, rtol=0, atol=1e-3)
    assert e.cache.count() == 31 and e.cache.count("other-model") == 1
    assert any("migrated 31 vectors" in r.getMessage() for r in caplog.records)
    e.cache.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT 1 FROM sqlite_master WHERE name = 'embedding_cache'").fetchone() is None
    con.close()


def test_a_rowid_collision_is_a_miss_never_another_texts_vector(tmp_path, monkeypatch):
    import indexers.embedders.cache as cache_mod

    monkeypatch.setattr(cache_mod, "row_key", lambda ref, digest: 7)  # every text lands on one rowid
    inner = CountingEmbedder(HashingEmbedder(dimensions=32))
    e = CachedEmbedder(inner, EmbeddingCache(tmp_path / "c.sqlite"))
    e.embed_documents(["first text"])
    second = e.embed_documents(["second text"])  # replaces row 7
    assert e.stats.computed == 2
    found = e.cache.get_many("hashing-v1", 32, ["first text", "second text"])
    assert set(found) == {1}
    np.testing.assert_array_equal(found[1], second[0])


def test_cached_query_uses_inner_embed_query_and_cache(tmp_path):
    inner = CountingEmbedder(HashingEmbedder(dimensions=32))
    e = CachedEmbedder(inner, EmbeddingCache(tmp_path / "c.sqlite"))
    q1 = e.embed_query("what is lava?")
    q2 = e.embed_query("what is lava?")
    assert inner.queries == ["what is lava?"] and inner.batches == []
    np.testing.assert_array_equal(q1, q2)
    assert q1.shape == (32,)
    assert (e.stats.computed, e.stats.cache_hits) == (1, 1)


def test_cache_shares_a_file_with_the_local_index_and_other_connections(tmp_path):
    from indexers.local_index import LocalIndex

    emb = HashingEmbedder(dimensions=32)
    ix = LocalIndex(tmp_path, dimensions=32, model_id=emb.model_id)
    ix.ensure()
    caches = [EmbeddingCache(ix.sqlite_path) for _ in range(3)]
    errors = []

    def work(k):
        try:
            ce = CachedEmbedder(emb, caches[k])
            for i in range(20):
                ce.embed_documents([f"t{k}-{i}", f"shared-{i}"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert caches[0].count("hashing-v1") == 60 + 20
    assert ix.count() == 0  # the index tables are untouched
    ix.close()


def test_cached_embedder_rejects_wrong_shapes(tmp_path):
    class Broken(CountingEmbedder):
        def embed_documents(self, texts):
            return np.zeros((len(texts), 3), dtype=np.float32)

    e = CachedEmbedder(Broken(HashingEmbedder(dimensions=32)), EmbeddingCache(tmp_path / "c.sqlite"))
    with pytest.raises(EmbeddingError):
        e.embed_documents(["x"])
    assert e.cache.count() == 0


# ---------------------------------------------------------------- real model (all-MiniLM-L6-v2)

@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from indexers.embedders.local import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.mark.slow
def test_minilm_dimensions_known_without_loading(minilm):
    from indexers.embedders.local import SentenceTransformerEmbedder

    fresh = SentenceTransformerEmbedder()
    assert fresh.dimensions == 384
    assert fresh._model is None  # noqa: SLF001 - lazy loading is the behaviour under test
    assert fresh.model_id == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.slow
def test_minilm_loads_offline_and_embeds(minilm):
    m = minilm.embed_documents([
        "A man is playing a guitar on stage.",
        "Someone performs a song with a guitar.",
        "The central bank raised interest rates again.",
    ])
    assert m.shape == (3, 384) and m.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, rtol=1e-4)
    assert float(m[0] @ m[1]) > float(m[0] @ m[2]) + 0.3
    q = minilm.embed_query("A man is playing a guitar on stage.")
    np.testing.assert_allclose(q, m[0], atol=1e-5)


@pytest.mark.slow
def test_minilm_long_text_is_not_truncated(minilm):
    from indexers.tokens import count_tokens

    sentences = [
        "Volcanic eruptions release sulfur dioxide that cools the climate for several years.",
        "Marine biologists tracked humpback whales migrating between feeding and breeding grounds.",
        "The court ruled that the contract clause was unenforceable under consumer law.",
        "Sourdough fermentation relies on wild yeast and lactic acid bacteria in the starter.",
    ]
    parts: list[str] = []
    i = 0
    while count_tokens(" ".join(parts)) < 600:
        parts.append(sentences[(i // 8) % 4] if i < 32 else sentences[3])
        i += 1
    long_text = " ".join(parts)
    head = " ".join(long_text.split()[:130])
    assert 180 <= count_tokens(head) <= 220
    windows = minilm.windows([long_text])[0]
    assert len(windows) >= 3
    model = minilm._load()  # noqa: SLF001
    for window, _n in windows:  # measured with special tokens and without truncation
        assert len(model.plain.encode(window, add_special_tokens=True).ids) <= model.max_seq_length
    assert "".join(w for w, _ in windows).replace(" ", "") == long_text.replace(" ", "")
    full, first = minilm.embed_documents([long_text, head])
    np.testing.assert_allclose(np.linalg.norm(full), 1.0, rtol=1e-4)
    assert float(full @ first) < 0.97  # the tail (mostly about sourdough) changed the vector
    tail_topic = minilm.embed_query(sentences[3])
    assert float(full @ tail_topic) > float(first @ tail_topic)


@pytest.mark.slow
def test_minilm_is_safe_to_share_between_threads(minilm):
    texts = [f"Document {i} talks about topic number {i % 4} in some detail." for i in range(12)]
    expected = minilm.embed_documents(texts)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(k):
        try:
            results[k] = minilm.embed_documents(texts[k::4])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k in range(4):
        np.testing.assert_allclose(results[k], expected[k::4], atol=1e-5)


@pytest.mark.slow
def test_minilm_runs_without_sentence_transformers_and_gives_its_vectors_exactly(minilm):
    """The torch-only BERT (indexers.embedders.bert) against sentence-transformers on the same folder:
    short and long texts, padded batches and single queries give bit-for-bit the same vectors."""
    import subprocess
    import sys

    from indexers.embedders.local import SentenceTransformerEmbedder, _SentenceTransformer

    assert minilm.backend == "bert"
    probe = subprocess.run([sys.executable, "-c", (
        "import sys; from indexers.embedders.local import SentenceTransformerEmbedder as E; e = E(); e.embed_query('x'); "
        "print(sorted(m for m in ('sentence_transformers', 'transformers', 'sklearn', 'scipy') if m in sys.modules))")],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stderr[-2000:]

    reference = SentenceTransformerEmbedder()
    reference._model = _SentenceTransformer(str(reference._model_path()), "cpu")  # noqa: SLF001
    sentences = ["Orders with a value above £500 are delivered free of charge.", "Leave requests go to the line manager.",
                 "Der Akku kostet 529 Euro; délai de livraison: 7 jours.", "ok"]
    texts = sentences + [" ".join(sentences * k) for k in (3, 9, 20)]  # up to several windows each
    ours, theirs = minilm.embed_documents(texts), reference.embed_documents(texts)
    assert ours.dtype == theirs.dtype == np.float32 and np.array_equal(ours, theirs)
    for q in ("Is delivery free for parts orders?", "battery pack price"):
        assert np.array_equal(minilm.embed_query(q), reference.embed_query(q))


def test_settings_choose_the_cache_precision(tmp_path, monkeypatch):
    from ondata.settings import Settings
    from ondata.wiring import build_embedder

    monkeypatch.setenv("ONDATA_EMBEDDING_CACHE_DTYPE", "float32")
    exact = build_embedder(Settings(index_dir=tmp_path / "a", embedder="hashing", hashing_dimensions=32))
    assert isinstance(exact, CachedEmbedder) and exact.cache.dtype == "float32"
    np.testing.assert_array_equal(exact.embed_documents(["t"]), HashingEmbedder(dimensions=32).embed_documents(["t"]))
    monkeypatch.delenv("ONDATA_EMBEDDING_CACHE_DTYPE")
    half = build_embedder(Settings(index_dir=tmp_path / "b", embedder="hashing", hashing_dimensions=32))
    assert half.cache.dtype == "float16"


def test_cached_embedder_counts_each_threads_own_call_while_others_embed(tmp_path):
    import threading
    import time

    from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
    from indexers.embedders.hashing import HashingEmbedder

    inner = HashingEmbedder(dimensions=16)

    class Slow:
        model_id, dimensions = inner.model_id, inner.dimensions

        def embed_documents(self, texts):
            time.sleep(0.2)
            return inner.embed_documents(texts)

        def embed_query(self, text):
            return inner.embed_query(text)

    cached = CachedEmbedder(Slow(), EmbeddingCache(tmp_path / "cache.sqlite"))
    cached.embed_documents(["seen before"])
    got: dict[int, tuple[int, int]] = {}

    def work(n: int) -> None:
        cached.embed_documents(["seen before"] + [f"thread {n} text {i}" for i in range(n)])
        call = cached.last_call()
        got[n] = (call.computed, call.cache_hits)

    threads = [threading.Thread(target=work, args=(n,)) for n in (2, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {2: (2, 1), 5: (5, 1)}  # each call's own counts, not the other thread's
    assert cached.stats.computed == 1 + 2 + 5 and cached.stats.cache_hits == 2
