"""The local index's keyword arm (indexers/local_keyword.py): derived from SQLite, incremental equals
rebuild, a missing/stale/corrupt file is rebuilt, restrictions apply before the top-k cut."""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexers import local_keyword
from indexers.local_index import LocalIndex
from indexers.local_keyword import KeywordIndex, query_terms
from indexers.records import ALL_GROUPS, Chunk, SearchRequest

DIMS = 4
WORDS = ("rocket", "engine", "kerosene", "oxygen", "cat", "kitten", "milk", "tax", "return", "deadline",
         "volcano", "lava", "chess", "pawn", "policy", "the", "and")
SOURCES = ("a.md", "b.md", "c.md", "d.md", "e.md")
QUERIES = ("rocket engine", "cat milk kitten", "tax return deadline policy", "lava", "chess pawn rocket the",
           "policies", "Kittens' milk", "nothing matches xyzzy")


def chunk(source: str, i: int, text: str, groups: tuple[str, ...] = ()) -> Chunk:
    return Chunk(id=f"{source}#{i}", source_id=source, content=text, chunk_index=i, title=source.split(".")[0],
                 section="intro" if i == 0 else "", groups=groups)


def put(index: LocalIndex, chunks: list[Chunk], replace: list[str]) -> None:
    index.upsert(chunks, vectors=np.ones((len(chunks), DIMS), dtype=np.float32), replace_sources=replace)


def text_hits(index: LocalIndex, query: str, **kw) -> list[tuple[str, float]]:
    kw.setdefault("groups", ALL_GROUPS)
    kw.setdefault("top", 20)
    return [(h.chunk.id, round(h.score, 9)) for h in index.search(SearchRequest(text=query, mode="text", **kw))]


docs = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join), min_size=1, max_size=4)
write = st.tuples(st.sampled_from(["upsert", "delete"]), st.sampled_from(SOURCES), docs, st.booleans())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(write, min_size=1, max_size=10))
def test_incremental_keyword_index_ranks_exactly_like_a_rebuild(tmp_path_factory, writes):
    directory = tmp_path_factory.mktemp("kw")
    reader = LocalIndex(directory, dimensions=DIMS, model_id="m")
    writer = LocalIndex(directory, dimensions=DIMS, model_id="m")
    try:
        reader.ensure()
        text_hits(reader, "rocket")  # the reader builds its keyword index now and catches up below
        for op, source, texts, elsewhere in writes:
            target = writer if elsewhere else reader
            if op == "upsert":
                put(target, [chunk(source, i, t) for i, t in enumerate(texts)], [source])
            else:
                target.delete_sources([source])
            if elsewhere:
                writer.flush()  # may save keyword.bin (compaction) that the reader does not reload
            incremental = {q: text_hits(reader, q) for q in QUERIES}
            # from the saved files (base + delta of the writer's flushes), caught up from SQLite
            opened = LocalIndex(directory, dimensions=DIMS, model_id="m")
            assert {q: text_hits(opened, q) for q in QUERIES} == incremental
            opened._db.close()
            fresh = LocalIndex(directory, dimensions=DIMS, model_id="m")
            fresh.keyword_path.unlink(missing_ok=True)  # from scratch out of SQLite
            assert {q: text_hits(fresh, q) for q in QUERIES} == incremental
            assert fresh._keyword.full_builds == 1
            fresh._db.close()  # no flush: leave the files as they are
        assert reader._keyword.full_builds == 1  # caught up, never rebuilt
    finally:
        reader.close()
        writer.close()


def corpus() -> list[Chunk]:
    return [chunk("a.md", 0, "rocket engines burn kerosene and liquid oxygen"),
            chunk("b.md", 0, "a kitten drinks milk", groups=("pets",)),
            chunk("c.md", 0, "the tax return deadline is in april"),
            chunk("c.md", 1, "late tax returns pay a penalty", groups=("finance",))]


def test_missing_stale_and_corrupt_keyword_files_are_rebuilt(tmp_path, caplog):
    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    put(index, corpus(), [])
    index.close()  # flush saves keyword.bin at this generation
    assert index.keyword_path.exists()
    expected = {q: text_hits(LocalIndex(tmp_path, dimensions=DIMS, model_id="m"), q) for q in QUERIES}
    assert expected["tax return deadline policy"][0][0] == "c.md#0"

    good = index.keyword_path.read_bytes()
    reopened = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    assert {q: text_hits(reopened, q) for q in QUERIES} == expected
    assert reopened._keyword.full_builds == 0  # loaded, not rebuilt
    reopened.close()

    for damage in ("missing", "truncated", "garbage"):
        if damage == "missing":
            index.keyword_path.unlink()
        elif damage == "truncated":
            index.keyword_path.write_bytes(good[: len(good) // 2])
        else:
            index.keyword_path.write_bytes(b"\0" * 100)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="indexers.local_keyword"):
            again = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
            assert {q: text_hits(again, q) for q in QUERIES} == expected, damage
        assert again._keyword.full_builds == 1, damage
        assert "keyword index" in caplog.text, damage
        again.close()  # saves a good file again

    # stale: a file of an older generation catches up from the tombstone log (no rebuild)
    stale = index.keyword_path.read_bytes()
    writer = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    put(writer, [chunk("c.md", 0, "the deadline moved to may")], ["c.md"])
    writer._db.close()  # no flush: keyword.bin stays at the old generation
    assert index.keyword_path.read_bytes() == stale
    reader = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    hits = text_hits(reader, "tax return deadline")
    assert [i for i, _ in hits] == ["c.md#0"]
    assert reader._keyword.full_builds == 0
    fresh = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    fresh.keyword_path.unlink()
    assert text_hits(fresh, "tax return deadline") == hits
    reader.close()
    fresh.close()


def test_a_small_change_saves_a_delta_not_the_whole_index(tmp_path):
    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    put(index, [chunk(f"s{i}.md", 0, f"tax return {i} policy rocket") for i in range(100)], [])
    index.flush()
    base = index.keyword_path.read_bytes()
    delta = index.keyword_path.with_name("keyword.bin.delta")
    assert not delta.exists()
    put(index, [chunk("s7.md", 0, "kitten milk rocket")], ["s7.md"])  # 1% of the rows
    index.delete_sources(["s8.md"])
    index.flush()
    assert index.keyword_path.read_bytes() == base and delta.exists()
    assert delta.stat().st_size < len(base) / 4
    expected = {q: text_hits(index, q) for q in QUERIES}
    index.close()
    opened = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    assert {q: text_hits(opened, q) for q in QUERIES} == expected
    gen = index._generation(opened._con())
    assert opened._keyword.full_builds == 0 and opened._keyword.saved_generation == gen  # read from the delta
    opened._db.close()
    delta.write_bytes(delta.read_bytes()[:40])  # a damaged delta is ignored: caught up from SQLite
    again = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    assert {q: text_hits(again, q) for q in QUERIES} == expected
    assert again._keyword.full_builds == 0
    again.close()


def test_allowed_set_applies_before_the_top_k_cut(tmp_path):
    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    # 30 public chunks that match "tax" better than the one in group finance
    put(index, [chunk("p.md", i, "tax tax tax") for i in range(30)] + [chunk("f.md", 0, "tax penalty", ("finance",))], [])
    req = SearchRequest(text="tax", mode="text", top=5, groups=("finance",), public_when_no_groups=False)
    assert [h.chunk.id for h in index.search(req)] == ["f.md#0"]
    # a group change is seen by the keyword arm at once
    put(index, [chunk("f.md", 0, "tax penalty", ("hr",))], ["f.md"])
    assert index.search(req) == []
    req = SearchRequest(text="tax", mode="text", top=5, groups=("hr",), public_when_no_groups=False)
    assert [h.chunk.id for h in index.search(req)] == ["f.md#0"]
    index.close()


def test_query_terms_are_the_text_modules_stems():
    assert query_terms("What are the Rocket's policies? policy") == ["rocket", "polici"]
    assert query_terms("the and of") == []
    assert query_terms('NEAR(a b) "x" * -y OR') == ["near", "b", "x", "y"]


def test_ties_break_by_row_id_and_top_k_is_exact(tmp_path):
    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(["alpha", "beta", "gamma"], size=int(rng.integers(1, 6)))) for _ in range(200)]
    for start in range(0, 200, 40):  # several writes: several delta parts
        put(index, [chunk("t.md", i, texts[i]) for i in range(start, start + 40)], [])
    hits = index.search(SearchRequest(text="alpha beta", mode="text", top=200, groups=ALL_GROUPS))
    assert hits and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    kw = index._keyword
    ranked = kw.search("alpha beta", None, 1000)
    assert ranked == sorted(ranked, key=lambda x: (-x[1], x[0]))  # ties by row id
    assert kw.search("alpha beta", None, 7) == ranked[:7]
    kw.compact()
    assert kw.search("alpha beta", None, 7) == ranked[:7]
    index.close()


def test_frequent_terms_looked_up_only_for_candidates_give_the_exact_top_k(tmp_path, monkeypatch):
    import indexers.local_keyword as lk

    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    rng = np.random.default_rng(3)
    common = ["policy", "return", "engine"]  # in most rows: "frequent"
    rare = [f"rare{i}" for i in range(40)]
    texts = [" ".join([*rng.choice(common, size=int(rng.integers(1, 8))), *rng.choice(rare, size=int(rng.integers(0, 3)))])
             for _ in range(600)]
    for start in range(0, 600, 150):
        put(index, [chunk("r.md", i, texts[i], ("g",) if i % 4 else ()) for i in range(start, start + 150)], [])
    queries = ["rare3 policy engine", "rare7 rare9 return policy", "policy engine return", "rare1 return"]
    pruned = {}
    for allowed in (ALL_GROUPS, ("g",)):
        for top in (3, 10):
            for q in queries:
                pruned[q, top, str(allowed)] = text_hits(index, q, top=top, k_candidates=top, groups=allowed)
    assert index._keyword.lookup_queries >= 4  # the lookup path was taken
    monkeypatch.setattr(lk, "FREQUENT_DF", 1.0)  # every term scored over all its postings
    for (q, top, allowed), hits in pruned.items():
        groups = ALL_GROUPS if allowed == str(ALL_GROUPS) else ("g",)
        assert text_hits(index, q, top=top, k_candidates=top, groups=groups) == hits, (q, top, allowed)
    index.close()


def test_compaction_by_term_scatter_equals_the_general_merge(monkeypatch):
    import copy
    import random
    import sqlite3

    import indexers.local_keyword as kw

    monkeypatch.setattr(kw, "_READ_BATCH", 3)  # many delta parts
    monkeypatch.setattr(kw, "_SLICE", 5)  # many slices of the base and of each part
    rng = random.Random(7)
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE chunks (rid INTEGER PRIMARY KEY, title TEXT, section TEXT, content TEXT)")

    def add(n):
        con.executemany("INSERT INTO chunks(title, section, content) VALUES (?, ?, ?)",
                        [(rng.choice(WORDS), "", " ".join(rng.choices(WORDS, k=rng.randint(1, 9)))) for _ in range(n)])

    def arrays(index):
        return [np.asarray(a).tolist() for a in (index._base_offsets, index._base_rids, index._base_tfs)]

    index = kw.KeywordIndex((2.0, 1.0, 1.0))
    add(40)
    index._add_rows(con, above=0)
    general = copy.deepcopy(index)
    index.compact()
    monkeypatch.setattr(general, "_rid_ranges_ascend", lambda: False)
    general.compact()
    assert arrays(index) == arrays(general) and len(index._base_rids) > 40
    add(25)
    index._add_rows(con, above=index.watermark)
    for rid in (1, 2, 17, 41, 60):  # dead rows in the base and in the delta
        index._live[rid] = False
    general = copy.deepcopy(index)
    assert index._rid_ranges_ascend()
    index.compact()
    monkeypatch.setattr(general, "_rid_ranges_ascend", lambda: False)
    general.compact()
    assert arrays(index) == arrays(general)
    assert not set(np.asarray(index._base_rids).tolist()) & {1, 2, 17, 41, 60}
    assert index._base_rids.dtype == np.int32


def brute_force_bm25(kw, text: str, allowed, n: int) -> list[tuple[int, float]]:
    """BM25 of every live, allowed row over all the postings of the query's terms, one row at a time
    (terms summed rarest first, the order the index documents), ranked by score then row id."""
    from indexers.local_keyword import query_terms as qterms

    live_rows = [r for r in range(kw._live.shape[0]) if kw._live[r]]
    avgdl = kw._total_len / len(live_rows) if kw._total_len > 0 else 1.0
    terms = []
    for tid in dict.fromkeys(kw._vocab[t] for t in qterms(text) if t in kw._vocab):
        rids, tfs = kw._postings(tid)
        postings = {int(r): float(f) for r, f in zip(rids, tfs) if kw._live[int(r)]}
        if postings:
            df = len(postings)
            terms.append((df, tid, math.log(1.0 + (len(live_rows) - df + 0.5) / (df + 0.5)), postings))
    terms.sort(key=lambda x: (x[0], x[1]))
    k1, b = kw.k1, kw.b
    scores = {}
    for row in live_rows:
        if allowed is not None and row not in allowed:
            continue
        score, matched = 0.0, False
        for _df, _tid, idf, postings in terms:
            if row in postings:
                tf = postings[row]
                score += idf * (tf * (k1 + 1.0)) / (tf + k1 * (1.0 - b + b * (float(kw._doclen[row]) / avgdl)))
                matched = True
        if matched:
            scores[row] = score
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:n]


def zipf_text(rng: np.random.Generator, skew: float) -> str:
    """1-9 words of ``WORDS``, the k-th about (k + 1) ** -skew as frequent: many terms of similar
    frequency (skew near 0) to a few frequent ones."""
    p = np.arange(1, len(WORDS) + 1, dtype=np.float64) ** -skew
    return " ".join(rng.choice(WORDS, size=int(rng.integers(1, 10)), p=p / p.sum()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_rows=st.integers(1, 240), n=st.integers(1, 12),
       skew=st.floats(0.0, 2.0),
       queries=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=10).map(" ".join), min_size=1, max_size=3),
       restrict=st.sampled_from(["none", "half", "few"]), dead=st.floats(0.0, 0.6))
def test_search_equals_brute_force_bm25_over_all_postings(tmp_path_factory, seed, n_rows, n, skew, queries,
                                                          restrict, dead):
    from indexers.local_allowed import AllowedSet

    rng = np.random.default_rng(seed)

    def text() -> str:
        return zipf_text(rng, skew)

    index = LocalIndex(tmp_path_factory.mktemp("bf"), dimensions=DIMS, model_id="m")
    try:
        sources = [f"s{i}.md" for i in range(max(1, n_rows // 4))]
        for k, source in enumerate(sources):
            put(index, [chunk(source, i, text()) for i in range(4)], [])
            if k == len(sources) // 2:
                text_hits(index, "policy")  # built now: the rest arrives in the delta, caught up
        gone = [s for s in sources if rng.random() < dead]
        for source in gone[::2]:  # dead rows: re-written and deleted sources
            put(index, [chunk(source, i, text()) for i in range(3)], [source])
        index.delete_sources(gone[1::2])
        text_hits(index, "policy")  # brings the keyword index to this generation
        kw = index._keyword
        size = kw._live.shape[0]
        allowed = None if restrict == "none" else AllowedSet(rng.random(size) < (0.5 if restrict == "half" else 0.1))
        if allowed is not None and allowed.count == 0:
            allowed = AllowedSet(np.zeros(size, dtype=bool))
        for query in queries:  # one after another: nothing of a search leaks into the next
            assert kw.search(query, allowed, n) == brute_force_bm25(kw, query, allowed, n), query
        assert not kw._acc.any()  # the scratch scores are all reset
        kw.compact()  # the same after merging the delta and dropping the dead postings
        for query in queries:
            assert kw.search(query, allowed, n) == brute_force_bm25(kw, query, allowed, n), query
    finally:
        index.close()


def test_brute_force_comparison_takes_the_lookup_paths(tmp_path):
    """The property above exercises the lookup paths: a skewed corpus, a small n."""
    from indexers.local_allowed import AllowedSet

    rng = np.random.default_rng(5)
    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    put(index, [chunk(f"s{i // 4}.md", i % 4, zipf_text(rng, 1.0)) for i in range(400)], [])
    text_hits(index, "policy")
    kw = index._keyword
    before = kw.lookup_queries
    allowed = AllowedSet(rng.random(kw._live.shape[0]) < 0.5)
    for q in ("rocket engine kerosene oxygen", "cat kitten milk rocket", "lava chess pawn policy tax return"):
        for a in (None, allowed):
            for n in (1, 3, 10):
                assert kw.search(q, a, n) == brute_force_bm25(kw, q, a, n), (q, n)
    assert kw.lookup_queries > before
    index.close()


def _gate(monkeypatch, method: str) -> tuple[threading.Event, list[str]]:
    """Make ``KeywordIndex.<method>`` wait for the returned event, recording the threads that call it."""
    gate, callers = threading.Event(), []
    original = getattr(KeywordIndex, method)

    def gated(self, *args, **kwargs):
        callers.append(threading.current_thread().name)
        assert gate.wait(30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(KeywordIndex, method, gated)
    return gate, callers


def _called(callers: list[str], timeout: float = 30) -> list[str]:
    """``callers`` once some thread has reached the gate (a background thread starts on its own time)."""
    deadline = time.monotonic() + timeout
    while not callers and time.monotonic() < deadline:
        time.sleep(0.01)
    return callers


def test_without_keyword_bin_a_large_index_answers_from_fts5_while_the_keyword_index_builds_in_the_background(
        tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(local_keyword, "BUILD_INLINE", 3)  # the 4 rows below count as many
    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    put(index, corpus(), [])
    index.close()
    expected = {q: text_hits(LocalIndex(tmp_path, dimensions=DIMS, model_id="m"), q) for q in QUERIES}
    index.keyword_path.unlink()
    gate, callers = _gate(monkeypatch, "_build")

    reader = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    with caplog.at_level(logging.WARNING, logger="indexers.local_index"):
        hits = text_hits(reader, "tax return deadline")  # answered while the build waits at the gate
        assert [i for i, _ in hits][:1] == ["c.md#0"] and reader._keyword is None
        public = [i for i, _ in text_hits(reader, "late tax returns penalty kitten milk", groups=())]
        assert public and "c.md#1" not in public and "b.md#0" not in public  # FTS5 keeps the trimming
    assert caplog.text.count("answers from SQLite FTS5") == 1
    assert _called(callers) == ["ondata-keyword-refresh"]  # never on the search's thread

    gate.set()
    reader._keyword_refresh.wait(30)
    assert reader._keyword is not None and reader._keyword.full_builds == 1
    assert {q: text_hits(reader, q) for q in QUERIES} == expected  # swapped in: BM25 ranks as before
    reader.close()  # saves keyword.bin
    assert index.keyword_path.exists() and callers == ["ondata-keyword-refresh"]


def test_a_reader_far_behind_keeps_serving_its_keyword_index_and_swaps_in_the_caught_up_one(tmp_path, monkeypatch):
    monkeypatch.setattr(local_keyword, "CATCH_UP_INLINE", 2)
    writer = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    put(writer, corpus(), [])
    writer.flush()
    reader = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    assert [i for i, _ in text_hits(reader, "rocket")] == ["a.md#0"]  # holds the keyword index
    put(writer, [chunk("v.md", i, f"volcano lava flow {i}") for i in range(3)], [])  # 3 rows: far behind
    writer.delete_sources(["a.md"])
    gate, callers = _gate(monkeypatch, "_catch_up")

    assert text_hits(reader, "volcano lava") == []  # the held structure, as it is: the new rows come later
    assert text_hits(reader, "rocket") == []  # a removed row is dropped by the fetch (the snapshot)
    assert _called(callers) == ["ondata-keyword-refresh"]

    gate.set()
    reader._keyword_refresh.wait(30)
    assert {i for i, _ in text_hits(reader, "volcano lava")} == {"v.md#0", "v.md#1", "v.md#2"}
    assert reader._keyword.full_builds == 0  # loaded keyword.bin and caught up from SQLite, never rebuilt
    fresh = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    fresh.keyword_path.unlink()
    assert {q: text_hits(reader, q) for q in QUERIES} == {q: text_hits(fresh, q) for q in QUERIES}
    for ix in (reader, writer, fresh):
        ix._db.close()
