"""LocalIndex (SQLite + FTS5 + FAISS): the SearchIndex conformance suite plus local-only behaviour
(derived FAISS rebuilt when missing/stale/corrupt, crash safety, schema checks, persistence)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from indexers.embedders.hashing import HashingEmbedder
from indexers.errors import IndexError_, IndexSchemaError
from indexers.local_index import FAISS_NAME, LocalIndex, fts_query
from indexers.local_vectors import VectorConfig
from indexers.ports import SearchIndex
from indexers.records import ALL_GROUPS, Chunk, SearchRequest

try:  # pytest rootdir import mode differs with/without tests/__init__.py
    from tests.conformance.search_index_suite import CORPUS, SearchIndexConformance, make_chunks
except ImportError:  # pragma: no cover
    from conformance.search_index_suite import CORPUS, SearchIndexConformance, make_chunks

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def embedder():
    return HashingEmbedder(dimensions=128)


@pytest.fixture
def index(tmp_path, embedder):
    ix = LocalIndex(tmp_path / "ix", dimensions=embedder.dimensions, model_id=embedder.model_id)
    ix.ensure()
    yield ix
    ix.close()


class TestLocalIndexConformance(SearchIndexConformance):
    pass


class TestLocalIndexApproximateConformance(SearchIndexConformance):
    """The same contract with an approximate vector index forced on a small index (HNSW; IVF trained
    on its few vectors): filtered searches through the ID selector (``exact_allowed_max=0``) or
    exactly among a small allowed set, deletes as tombstones."""

    @pytest.fixture(params=[("hnsw", 0), ("hnsw", 4096), ("ivf", 0), ("ivf", 4096)],
                    ids=["hnsw-selector", "hnsw-exact-small-allowed", "ivf-selector", "ivf-exact-small-allowed"])
    def index(self, request, tmp_path, embedder):
        kind, exact_allowed_max = request.param
        config = VectorConfig(kind=kind, exact_allowed_max=exact_allowed_max)
        ix = LocalIndex(tmp_path / "ix", dimensions=embedder.dimensions, model_id=embedder.model_id, vectors=config)
        ix.ensure()
        yield ix
        ix.close()


# ---------------------------------------------------------------- helpers

def put(ix, emb, chunks):
    ix.upsert(chunks, vectors=emb.embed_documents([c.content for c in chunks]))


def vsearch(ix, emb, text, **kw):
    """A vector search that sees every chunk (these tests are not about trimming)."""
    kw.setdefault("groups", ALL_GROUPS)
    return ix.search(SearchRequest(vector=tuple(emb.embed_query(text)), mode="vector", **kw))


def all_chunks():
    return [c for key in CORPUS for c in make_chunks(key)]


# ---------------------------------------------------------------- FTS query building

def test_fts_query_quotes_words_and_drops_stopwords():
    assert fts_query("What is the Rocket's thrust?") == '"rocket" OR "thrust"'  # possessive "s" is a stopword
    assert fts_query("the and of") == '"the" OR "and" OR "of"'  # only stopwords: keep them
    assert fts_query('NEAR(a b) "x" * -y OR') == '"near" OR "b" OR "x" OR "y"'
    assert fts_query("!!! ??? ---") == ""
    assert fts_query("Café café") == '"café"'


# ---------------------------------------------------------------- derived FAISS

def test_faiss_file_written_and_rebuilt_when_deleted(tmp_path, index, embedder):
    put(index, embedder, all_chunks())
    index.flush()
    faiss_file = index.directory / FAISS_NAME
    assert faiss_file.exists()
    index.close()
    faiss_file.unlink()
    reopened = LocalIndex(index.directory, dimensions=embedder.dimensions, model_id=embedder.model_id)
    hits = vsearch(reopened, embedder, "rocket engines kerosene liquid oxygen")
    assert hits[0].chunk.source_id == "rocket"
    assert faiss_file.exists()  # rebuilt and saved
    reopened.close()


def test_corrupt_faiss_file_is_rebuilt(index, embedder):
    put(index, embedder, all_chunks())
    index.close()
    (index.directory / FAISS_NAME).write_bytes(b"garbage" * 100)
    reopened = LocalIndex(index.directory, dimensions=embedder.dimensions, model_id=embedder.model_id)
    assert vsearch(reopened, embedder, "sourdough bread yeast")[0].chunk.source_id == "bread"
    reopened.close()


def test_stale_faiss_file_is_rebuilt(index, embedder):
    put(index, embedder, all_chunks())
    index.flush()
    old = (index.directory / FAISS_NAME).read_bytes()
    new = Chunk(id="zebra", source_id="zebra", content="Zebras gallop over the savanna", chunk_index=0)
    put(index, embedder, [new])
    index.close()
    (index.directory / FAISS_NAME).write_bytes(old)  # a FAISS file from before the last write
    reopened = LocalIndex(index.directory, dimensions=embedder.dimensions, model_id=embedder.model_id)
    assert vsearch(reopened, embedder, "zebras gallop savanna")[0].chunk.id == "zebra"
    assert reopened.stats().vectors_fresh
    reopened.close()


def test_writes_by_another_instance_are_seen(index, embedder):
    put(index, embedder, all_chunks())
    assert vsearch(index, embedder, "cats purr")[0].chunk.source_id == "cats"  # FAISS now in memory
    other = LocalIndex(index.directory, dimensions=embedder.dimensions, model_id=embedder.model_id)
    put(other, embedder, [Chunk(id="zebra", source_id="zebra", content="Zebras gallop", chunk_index=0)])
    other.delete_sources(["cats"])
    other.close()
    hits = vsearch(index, embedder, "zebras gallop", top=20)
    assert hits[0].chunk.id == "zebra"
    assert all(h.chunk.source_id != "cats" for h in hits)
    assert len(hits) == 6


def test_in_process_updates_keep_faiss_in_step(index, embedder):
    chunks = all_chunks()
    put(index, embedder, chunks[:3])
    assert len(vsearch(index, embedder, "x", top=50)) == 3
    put(index, embedder, chunks[3:])
    assert len(vsearch(index, embedder, "x", top=50)) == 7
    index.delete_sources(["cats"])
    assert len(vsearch(index, embedder, "x", top=50)) == 5
    assert index.stats().vectors_fresh


def test_rebuild_vectors_matches_incremental(index, embedder):
    put(index, embedder, all_chunks())
    before = [(h.chunk.id, round(h.score, 5)) for h in vsearch(index, embedder, "chess pawn", top=7)]
    index.rebuild_vectors()
    after = [(h.chunk.id, round(h.score, 5)) for h in vsearch(index, embedder, "chess pawn", top=7)]
    assert before == after


# ---------------------------------------------------------------- crash safety

CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {repo!r})
    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex
    from indexers.records import SearchRequest
    from tests.conformance.search_index_suite import CORPUS, make_chunks

    emb = HashingEmbedder(dimensions=128)
    ix = LocalIndex({directory!r}, dimensions=128, model_id=emb.model_id)
    chunks = [c for key in CORPUS for c in make_chunks(key)]
    first, second = chunks[:3], chunks[3:]
    ix.upsert(first, vectors=emb.embed_documents([c.content for c in first]))
    ix.search(SearchRequest(vector=tuple(emb.embed_query("x")), mode="vector"))  # FAISS saved
    if {where!r} == "mid-transaction":
        def die(*a, **k):
            os._exit(17)
        LocalIndex._write_vectors = die  # killed after chunks/FTS rows were written, before COMMIT
        ix.upsert(second, vectors=emb.embed_documents([c.content for c in second]))
    else:  # committed, but the process dies before FAISS is saved
        ix.upsert(second, vectors=emb.embed_documents([c.content for c in second]))
        os._exit(17)
    """
)


@pytest.mark.parametrize("where,expected_count", [("mid-transaction", 3), ("after-commit", 7)])
def test_crash_leaves_an_index_that_opens_and_answers(tmp_path, embedder, where, expected_count):
    directory = str(tmp_path / "ix")
    script = CRASH_SCRIPT.format(repo=str(REPO), directory=directory, where=where)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr

    ix = LocalIndex(directory, dimensions=128, model_id=embedder.model_id)
    assert ix.count() == expected_count
    for mode in ("text", "vector", "hybrid"):
        req = SearchRequest(text="kitten milk", vector=tuple(embedder.embed_query("kitten milk")), mode=mode, top=20,
                            groups=ALL_GROUPS)
        hits = ix.search(req)
        assert hits and hits[0].chunk.source_id == "cats"
        assert len({h.chunk.id for h in hits}) == len(hits)
    assert len(vsearch(ix, embedder, "anything", top=50)) == expected_count
    # The re-run converges: upserting everything again gives the full, consistent index.
    chunks = all_chunks()
    put(ix, embedder, chunks)
    assert ix.count() == 7
    assert all(s.complete for s in ix.list_sources()) and len(ix.list_sources()) == 6
    assert len(vsearch(ix, embedder, "anything", top=50)) == 7
    text_hits = ix.search(SearchRequest(text="rocket kerosene", mode="text", groups=ALL_GROUPS))
    assert text_hits[0].chunk.source_id == "rocket"
    ix.close()


def test_exception_inside_transaction_rolls_back(index, embedder, monkeypatch):
    chunks = all_chunks()
    put(index, embedder, chunks[:3])

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(LocalIndex, "_write_vectors", boom)
    with pytest.raises(RuntimeError):
        put(index, embedder, chunks[3:])
    monkeypatch.undo()
    assert index.count() == 3
    assert index.search(SearchRequest(text="rocket kerosene", mode="text", groups=ALL_GROUPS)) == []
    put(index, embedder, chunks[3:])
    assert index.count() == 7
    assert index.search(SearchRequest(text="rocket kerosene", mode="text", groups=ALL_GROUPS))[0].chunk.source_id == "rocket"


# ---------------------------------------------------------------- schema, persistence, stats

def test_schema_mismatch_raises_clear_error(tmp_path, embedder):
    directory = tmp_path / "ix"
    LocalIndex(directory, dimensions=384, model_id="sentence-transformers/all-MiniLM-L6-v2").ensure()
    with pytest.raises(IndexSchemaError) as err:
        LocalIndex(directory, dimensions=embedder.dimensions, model_id=embedder.model_id).ensure()
    msg = str(err.value)
    assert "all-MiniLM-L6-v2 (384 dims)" in msg and "hashing-v1 (128 dims)" in msg and str(directory) in msg


def test_wrong_vector_shapes_raise_typed_errors(index, embedder):
    chunks = all_chunks()[:2]
    with pytest.raises(IndexSchemaError):
        index.upsert(chunks, vectors=np.ones((2, 64), dtype=np.float32))
    with pytest.raises(IndexError_):
        index.upsert(chunks, vectors=np.ones((1, 128), dtype=np.float32))
    with pytest.raises(IndexError_):
        index.upsert(chunks, vectors=np.full((2, 128), np.nan, dtype=np.float32))
    with pytest.raises(IndexSchemaError):
        index.search(SearchRequest(vector=(1.0, 0.0), mode="vector"))
    assert index.count() == 0


def test_persistence_and_open_existing(tmp_path, embedder):
    directory = tmp_path / "ix"
    with LocalIndex(directory, dimensions=128, model_id=embedder.model_id) as ix:
        put(ix, embedder, all_chunks())
    with pytest.raises(IndexError_):
        LocalIndex.open_existing(tmp_path / "nothing-here")
    reopened = LocalIndex.open_existing(directory)
    assert isinstance(reopened, SearchIndex)
    assert (reopened.model_id, reopened.dimensions) == ("hashing-v1", 128)
    assert reopened.count() == 7
    hits = reopened.search(SearchRequest(text="volcano lava", vector=tuple(embedder.embed_query("volcano lava")),
                                         groups=ALL_GROUPS))
    assert hits[0].chunk.source_id == "volcano"
    st = reopened.stats()
    assert (st.chunks, st.sources, st.model_id, st.dimensions) == (7, 6, "hashing-v1", 128)
    assert st.bytes_on_disk > 0
    reopened.close()


def test_close_after_ingestion_writes_a_fresh_faiss_file(tmp_path, embedder):
    directory = tmp_path / "ix"
    with LocalIndex(directory, dimensions=128, model_id=embedder.model_id) as ix:
        for chunk in all_chunks():  # many small upserts, no search: FAISS is never loaded
            put(ix, embedder, [chunk])
        assert not ix._vectors.loaded  # noqa: SLF001 - no rebuild per upsert
        assert not ix.stats().vectors_fresh
    reopened = LocalIndex(directory, dimensions=128, model_id=embedder.model_id)
    assert reopened.stats().vectors_fresh  # close() saved it
    mtime = (directory / FAISS_NAME).stat().st_mtime_ns
    assert reopened.count() == 7
    reopened.close()  # nothing changed: the file is not rewritten
    assert (directory / FAISS_NAME).stat().st_mtime_ns == mtime


def test_other_schema_version_is_refused_before_touching_it(tmp_path, embedder):
    import sqlite3

    directory = tmp_path / "ix"
    LocalIndex(directory, dimensions=128, model_id=embedder.model_id).ensure()
    con = sqlite3.connect(directory / "index.sqlite")
    con.execute("UPDATE index_meta SET value = '999' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(IndexSchemaError, match="schema version 999"):
        LocalIndex(directory, dimensions=128, model_id=embedder.model_id).count()


# ---------------------------------------------------------------- consistent reads (row ids, snapshots)

def _rids(ix, source_id):
    import sqlite3

    con = sqlite3.connect(ix.sqlite_path)
    try:
        return [r for (r,) in con.execute("SELECT rid FROM chunks WHERE source_id = ? ORDER BY rid", (source_id,))]
    finally:
        con.close()


def test_row_ids_are_never_reused_after_deletes(tmp_path, embedder):
    directory = tmp_path / "ix"
    with LocalIndex(directory, dimensions=128, model_id=embedder.model_id) as ix:
        put(ix, embedder, all_chunks())
        highest = max(_rids(ix, "chess"))  # the last source written holds the highest ids
        ix.delete_sources(["chess"])
        put(ix, embedder, make_chunks("chess", version="v2"))
        again = _rids(ix, "chess")
        assert min(again) > highest
        ix.delete_sources(["chess", "cats"])
    with LocalIndex(directory, dimensions=128, model_id=embedder.model_id) as reopened:  # kept on disk
        put(reopened, embedder, make_chunks("chess", version="v3"))
        assert min(_rids(reopened, "chess")) > max(again)


def test_a_search_reads_one_snapshot_while_another_process_writes(tmp_path, embedder, monkeypatch):
    # A writer (another connection, as another process would) replaces the public "cats" document by a
    # restricted version between the search's allowed set and its fetch: the search answers from the
    # state it started in, and a public-only caller never sees the restricted version.
    directory = tmp_path / "ix"
    reader = LocalIndex(directory, dimensions=128, model_id=embedder.model_id)
    put(reader, embedder, all_chunks())
    writer = LocalIndex(directory, dimensions=128, model_id=embedder.model_id)
    secret = make_chunks("cats", version="v2", texts=["Cats purr: the secret kitten budget."], groups=("finance",))
    original = LocalIndex._text_arm
    wrote: list[str] = []

    def text_arm_then_write(self, con, text, allowed, n):
        ranked = original(self, con, text, allowed, n)
        if self is reader and not wrote:
            writer.upsert(secret, vectors=embedder.embed_documents([c.content for c in secret]),
                          replace_sources=["cats"])
            wrote.append("cats")
        return ranked

    monkeypatch.setattr(LocalIndex, "_text_arm", text_arm_then_write)
    query = "cats purr kitten"
    for mode in ("text", "hybrid"):
        wrote.clear()
        put(writer, embedder, make_chunks("cats"))  # public again; replaced during the search below
        hits = reader.search(SearchRequest(text=query, vector=tuple(embedder.embed_query(query)), mode=mode, top=10,
                                           groups=()))
        assert wrote == ["cats"]
        assert all(not h.chunk.groups and "secret" not in h.chunk.content for h in hits), mode
        # the search answered from the state it started in: the public chunks the writer deleted meanwhile
        assert {h.chunk.id for h in hits} >= {c.id for c in make_chunks("cats")}, mode
        assert {s.source_id: s.version for s in reader.list_sources()}["cats"] == "v2"
        after = reader.search(SearchRequest(text=query, mode="text", top=10, groups=ALL_GROUPS))
        assert [h.chunk.content for h in after if h.chunk.source_id == "cats"] == [secret[0].content]
        writer.delete_sources(["cats"])
    monkeypatch.undo()
    writer.close()
    reader.close()


# ---------------------------------------------------------------- hybrid: the arms run concurrently

def _synthetic_chunks(n: int, *, seed: int = 3, tag: str = "") -> list[Chunk]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(300)]
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    out = []
    for i in range(n):
        words = " ".join(vocab[k] for k in rng.choice(len(vocab), size=25, p=p))
        groups = () if i % 5 == 0 else (f"g{i % 3}",)
        out.append(Chunk(id=f"s{i // 4}#{i % 4}{tag}", source_id=f"s{i // 4}", content=words, chunk_index=i % 4,
                         title=words[:20], filepath=f"d{i % 2}/s{i // 4}.md", groups=groups, source_chunks=4))
    return out


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_hybrid_arms_in_parallel_answer_as_one_after_the_other(tmp_path, embedder, kind):
    # The vector arm's FAISS part runs on the index's worker thread while this thread scores the
    # keyword arm: every hit (chunk, fused score, each arm's score and rank) must be what the arms
    # give one after the other, unrestricted, trimmed (ID selector / exact among the allowed rows),
    # filtered, and after deletes (the dead-row selector).
    from indexers.filters import prefix

    config = VectorConfig(kind=kind, exact_allowed_max=16)
    ix = LocalIndex(tmp_path / "ix", dimensions=embedder.dimensions, model_id=embedder.model_id, vectors=config)
    put(ix, embedder, _synthetic_chunks(1200))
    ix.delete_sources([f"s{i}" for i in range(0, 300, 7)])
    queries = ["w1 w17 w40", "w3 w250", "w299 w5 w6 w7", "w120"]
    requests = [SearchRequest(text=q, vector=tuple(embedder.embed_query(q)), mode="hybrid", top=10, k_candidates=50,
                              **kw)
                for q in queries
                for kw in ({"groups": ALL_GROUPS}, {"groups": ("g1",)}, {"groups": ("g2",), "public_when_no_groups": False},
                           {"groups": ("g0", "g1"), "filter": prefix("filepath", "d1/")})]
    ix.parallel_arms = False
    sequential = [ix.search(r) for r in requests]
    ix.parallel_arms = True
    parallel = [ix.search(r) for r in requests]
    assert ix._worker is not None  # the persistent worker did run them
    assert all(s for s in sequential)
    assert parallel == sequential
    ix.close()
    assert ix._worker is None


def test_hybrid_errors_of_either_arm_propagate_and_the_worker_is_waited_for(index, embedder, monkeypatch):
    import threading

    put(index, embedder, all_chunks())
    request = SearchRequest(text="cats", vector=tuple(embedder.embed_query("cats")), mode="hybrid", groups=ALL_GROUPS)
    released = threading.Event()
    finished: list[str] = []
    original = index._vectors.prepare

    def slow_prepare(*args):
        run = original(*args)

        def slow():
            released.wait(5)
            finished.append("vector")
            return run()
        return slow

    def failing_text_arm(*args):
        released.set()
        raise IndexError_("keyword arm failed")

    monkeypatch.setattr(index._vectors, "prepare", slow_prepare)
    monkeypatch.setattr(index, "_text_arm", failing_text_arm)
    with pytest.raises(IndexError_, match="keyword arm failed"):
        index.search(request)
    assert finished == ["vector"]  # the search did not leave its snapshot before FAISS was done
    monkeypatch.undo()

    def failing_prepare(*args):
        def fail():
            raise RuntimeError("faiss failed")
        return fail

    monkeypatch.setattr(index._vectors, "prepare", failing_prepare)
    with pytest.raises(RuntimeError, match="faiss failed"):
        index.search(request)
    monkeypatch.undo()
    assert index.search(request)  # the worker survives a failed search


def test_the_vector_worker_runs_faiss_on_the_configured_threads(tmp_path, embedder):
    # OpenMP's thread count is per thread: the worker (like any server thread) must set it itself
    import faiss

    ix = LocalIndex(tmp_path / "ix", dimensions=embedder.dimensions, model_id=embedder.model_id,
                    vectors=VectorConfig(threads=3))
    put(ix, embedder, all_chunks())
    ix.search(SearchRequest(text="cats", vector=tuple(embedder.embed_query("cats")), mode="hybrid", groups=ALL_GROUPS))
    assert ix._worker.submit(faiss.omp_get_max_threads).result() == 3
    ix.close()


def test_limit_threads_is_set_in_each_thread():
    import threading

    import faiss

    from indexers.local_vectors import limit_threads

    limit_threads(3)
    seen: list[int] = []

    def other() -> None:
        limit_threads(3)
        seen.append(faiss.omp_get_max_threads())
        limit_threads(1)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [3] and faiss.omp_get_max_threads() == 3
    limit_threads(1)
