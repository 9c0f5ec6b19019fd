"""The SearchIndex conformance suite: behaviour every SearchIndex backend promises (indexers/ports.py).

A backend's test module subclasses ``SearchIndexConformance`` and provides two pytest fixtures:

- ``index``: an empty, ensured SearchIndex (fresh per test);
- ``embedder``: an Embedder, normally ``HashingEmbedder`` (whose ``dimensions``/``model_id`` the
  index was built for).

Only port behaviour is tested here (upsert/replace, delete, count, list_sources, recorded scopes,
the three search modes, filters, security trimming, hostile input); backend internals have their own tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexers.filters import and_, any_of, eq, ne, not_, or_, prefix
from indexers.records import ALL_GROUPS, Chunk, ScopeRecord, SearchRequest, chunk_id_for

# Six sources on unrelated topics; ``key`` -> (filepath, title, [chunk texts], metadata, groups).
CORPUS: dict[str, tuple[str, str, list[str], dict[str, Any], tuple[str, ...]]] = {
    "cats": (
        "pets/cats.md", "Cats",
        ["Cats are small domesticated felines that purr and chase mice around the barn.",
         "A kitten drinks milk and sleeps most of the day next to its mother cat."],
        {"lang": "en", "year": 2020}, (),
    ),
    "volcano": (
        "geo/volcano.md", "Volcanoes",
        ["Volcanoes erupt molten lava and ash when magma rises through the crust."],
        {"lang": "en", "year": 2021}, ("geology",),
    ),
    "bread": (
        "food/bread.md", "Sourdough",
        ["Sourdough bread is leavened with a starter of wild yeast and lactobacilli bacteria."],
        {"lang": "fr", "year": 2019}, ("kitchen", "staff"),
    ),
    "tax": (
        "hr/tax.md", "Taxes",
        ["Income tax returns must be filed by April with every deduction listed on the form."],
        {"lang": "en", "year": 2022}, ("finance",),
    ),
    "rocket": (
        "eng/rocket.md", "Rockets",
        ["Rocket engines burn liquid oxygen and kerosene to produce thrust for the launch."],
        {"lang": "de", "year": 2021}, ("engineering", "staff"),
    ),
    "chess": (
        "games/chess.md", "Chess",
        ["The queen's gambit is a chess opening in which white offers a pawn to black."],
        {"lang": "en", "year": 2018}, (),
    ),
}

ADVERSARIAL = [
    "' or 1=1 --",
    "\" OR \"\"=\"",
    "NEAR(cats mice, 2)",
    "\"",
    "*",
    "OR",
    "-cats",
    "cats AND NOT mice",
    "title:cats",
    "^cats",
    "{content}: cats",
    "'); DROP TABLE chunks; --",
    "Ünïcödé ✓ 日本語 🚀",
    "\\",
    "%_%",
    "\x00",
]


def make_chunks(key: str, *, version: str = "v1", groups: tuple[str, ...] | None = None,
                texts: list[str] | None = None, scope: str = "") -> list[Chunk]:
    filepath, title, default_texts, meta, default_groups = CORPUS[key]
    texts = default_texts if texts is None else texts
    return [
        Chunk(
            id=chunk_id_for(key, i, text, scope=scope),
            scope=scope,
            source_id=key,
            content=text,
            chunk_index=i,
            title=title,
            url=f"https://example.org/{filepath}",
            filepath=filepath,
            page_start=i + 1,
            page_end=i + 1,
            char_start=i * 100,
            char_end=i * 100 + len(text),
            section=f"{title} section",
            groups=default_groups if groups is None else groups,
            metadata=dict(meta),
            source_version=version,
            source_chunks=len(texts),
        )
        for i, text in enumerate(texts)
    ]


class SearchIndexConformance:
    """Subclass and provide the ``index`` and ``embedder`` fixtures."""

    # ------------------------------------------------------------ helpers

    def put(self, index, embedder, chunks: list[Chunk]) -> None:
        index.upsert(chunks, vectors=embedder.embed_documents([c.content for c in chunks]))

    def load_corpus(self, index, embedder) -> list[Chunk]:
        chunks = [c for key in CORPUS for c in make_chunks(key)]
        self.put(index, embedder, chunks)
        return chunks

    def request(self, embedder, text: str, *, mode: str = "hybrid", **kw) -> SearchRequest:
        """A request for ``text``; it sees every chunk (``ALL_GROUPS``) unless the test passes ``groups``.

        The tests of the deny default build their ``SearchRequest`` without groups themselves.
        """
        kw.setdefault("groups", ALL_GROUPS)
        return SearchRequest(text=text, vector=tuple(embedder.embed_query(text)), mode=mode, **kw)

    def search(self, index, embedder, text: str, *, mode: str = "hybrid", **kw):
        return index.search(self.request(embedder, text, mode=mode, **kw))

    # ------------------------------------------------------------ basics

    def test_empty_index(self, index, embedder):
        assert index.count() == 0
        assert list(index.list_sources()) == []
        for mode in ("text", "vector", "hybrid"):
            assert self.search(index, embedder, "cats", mode=mode) == []

    def test_ensure_is_idempotent(self, index, embedder):
        self.put(index, embedder, make_chunks("cats"))
        index.ensure()
        assert index.count() == 2

    def test_port_members_flush_stats_close_and_context_manager(self, index, embedder):
        from indexers.ports import SearchIndex

        assert isinstance(index, SearchIndex)
        self.load_corpus(index, embedder)
        index.flush()
        st = index.stats()
        assert (st.model_id, st.dimensions) == (embedder.model_id, embedder.dimensions)
        assert (st.sources, st.chunks) == (len(CORPUS), index.count())
        with index as same:
            assert same is index
            assert self.search(index, embedder, "cats purr mice", mode="text")[0].chunk.source_id == "cats"
        index.close()  # closing twice is fine

    def test_upsert_and_count(self, index, embedder):
        chunks = self.load_corpus(index, embedder)
        assert index.count() == len(chunks) == 7

    def test_roundtrip_preserves_every_chunk_field(self, index, embedder):
        original = make_chunks("bread")[0]
        original = Chunk(**{**original.__dict__, "metadata": {"lang": "fr", "year": 2019, "tags": "a,b"}})
        self.put(index, embedder, [original])
        hits = self.search(index, embedder, "sourdough bread yeast")
        assert len(hits) == 1
        assert hits[0].chunk == original

    def test_upsert_replaces_by_id(self, index, embedder):
        first = make_chunks("cats")[0]
        self.put(index, embedder, [first])
        changed = Chunk(**{**first.__dict__, "content": "Zebras gallop across the savanna grassland.",
                           "source_version": "v2"})
        self.put(index, embedder, [changed])
        assert index.count() == 1
        hits = self.search(index, embedder, "zebras savanna", mode="text")
        assert [h.chunk.content for h in hits] == [changed.content]
        assert self.search(index, embedder, "felines purr mice", mode="text") == []
        vhits = self.search(index, embedder, "zebras gallop across the savanna grassland", mode="vector")
        assert [h.chunk.id for h in vhits] == [first.id]
        assert vhits[0].chunk.content == changed.content
        assert [s.version for s in index.list_sources()] == ["v2"]

    def test_duplicate_ids_in_one_upsert_keep_the_last(self, index, embedder):
        a = make_chunks("cats")[0]
        b = Chunk(**{**a.__dict__, "content": "Penguins waddle on the ice."})
        self.put(index, embedder, [a, b])
        assert index.count() == 1
        assert self.search(index, embedder, "penguins ice", mode="text")[0].chunk.content == b.content

    def test_upsert_replacing_sources_swaps_a_documents_chunks_and_groups(self, index, embedder):
        self.load_corpus(index, embedder)
        new = make_chunks("cats", version="v2", texts=["Lions roar across the savanna at dusk."], groups=("zoo",))
        index.upsert(new, vectors=embedder.embed_documents([c.content for c in new]), replace_sources=["cats"])
        assert index.count() == 6  # cats' two old chunks replaced by one
        record = {s.source_id: s for s in index.list_sources()}["cats"]
        assert (record.version, record.chunk_count, record.complete) == ("v2", 1, True)
        for mode in ("text", "vector", "hybrid"):
            everything = self.search(index, embedder, "cats purr kitten mice lions savanna", mode=mode, top=20)
            assert [h.chunk.content for h in everything if h.chunk.source_id == "cats"] == [new[0].content], mode
            public = self.search(index, embedder, "cats purr kitten mice lions savanna", mode=mode, top=20, groups=())
            assert "cats" not in {h.chunk.source_id for h in public}, mode  # now restricted to "zoo"
        index.upsert([], vectors=np.zeros((0, embedder.dimensions), dtype=np.float32), replace_sources=["cats", "nope"])
        assert index.count() == 5 and "cats" not in {s.source_id for s in index.list_sources()}

    # ------------------------------------------------------------ delete / list

    def test_delete_sources(self, index, embedder):
        self.load_corpus(index, embedder)
        index.delete_sources(["cats", "tax"])
        assert index.count() == 4
        assert sorted(s.source_id for s in index.list_sources()) == ["bread", "chess", "rocket", "volcano"]
        for mode in ("text", "vector", "hybrid"):
            hits = self.search(index, embedder, "cats purr kitten mice", mode=mode, top=10)
            assert all(h.chunk.source_id not in ("cats", "tax") for h in hits)

    def test_delete_missing_sources_succeeds(self, index, embedder):
        index.delete_sources(["nope"])  # on an empty index
        self.load_corpus(index, embedder)
        index.delete_sources(["nope", "also-missing"])
        index.delete_sources([])
        assert index.count() == 7

    def test_list_sources(self, index, embedder):
        self.load_corpus(index, embedder)
        records = {s.source_id: s for s in index.list_sources()}
        assert set(records) == set(CORPUS)
        assert records["cats"].chunk_count == 2
        assert records["cats"].version == "v1"
        assert all(s.complete for s in records.values())

    def test_scopes_keep_same_named_documents_apart(self, index, embedder):
        a = make_chunks("cats", scope="/data/a", version="va")
        b = make_chunks("cats", scope="/data/b", version="vb", groups=("staff",))
        assert {c.id for c in a}.isdisjoint(c.id for c in b)  # same id and text, two scopes: two documents
        self.put(index, embedder, a + b + make_chunks("tax", scope="/data/b"))
        assert index.count() == 5
        records = [(r.scope, r.source_id, r.version, r.chunk_count, r.groups) for r in index.list_sources()]
        assert records == [("/data/a", "cats", "va", 2, ()), ("/data/b", "cats", "vb", 2, ("staff",)),
                           ("/data/b", "tax", "v1", 1, ("finance",))]
        assert [r.source_id for r in index.list_sources(scope="/data/a")] == ["cats"]
        assert index.list_sources(scope="/elsewhere") == []
        assert all(r.ingested_at for r in index.list_sources())  # ISO time of the write
        hits = self.search(index, embedder, "cats purr kitten mice", mode="text", top=10)
        assert {h.chunk.scope for h in hits} == {"/data/a", "/data/b"}

        index.delete_sources(["cats"], scope="/data/b")  # exactly that document
        assert [(r.scope, r.source_id) for r in index.list_sources()] == [("/data/a", "cats"), ("/data/b", "tax")]
        index.delete_sources(["cats", "tax"], scope="/nowhere")  # another scope: nothing
        assert index.count() == 3
        index.delete_sources(["cats", "tax"])  # no scope: in every scope
        assert index.count() == 0

    def test_documents_without_scope_are_the_empty_scope(self, index, embedder):
        self.put(index, embedder, make_chunks("cats") + make_chunks("cats", scope="/s"))
        assert [(r.scope, r.source_id) for r in index.list_sources(scope="")] == [("", "cats")]
        index.delete_sources(["cats"], scope="")
        assert [(r.scope, r.source_id) for r in index.list_sources()] == [("/s", "cats")]

    def test_list_sources_flags_partial_source(self, index, embedder):
        chunks = make_chunks("cats")
        self.put(index, embedder, chunks[:1])  # a run cut short: 1 of 2 chunks written
        (record,) = index.list_sources()
        assert record.source_id == "cats" and record.chunk_count == 1 and not record.complete

    def test_list_sources_flags_mixed_versions(self, index, embedder):
        old = make_chunks("cats", version="v1")
        new = make_chunks("cats", version="v2", texts=["Cats purr.", "Cats nap."])
        self.put(index, embedder, old)
        self.put(index, embedder, new[:1])
        (record,) = index.list_sources()
        assert record.chunk_count == 3 and not record.complete
        index.delete_sources(["cats"])
        self.put(index, embedder, new)
        (record,) = index.list_sources()
        assert record.version == "v2" and record.chunk_count == 2 and record.complete

    # ------------------------------------------------------------ search modes

    @pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
    @pytest.mark.parametrize(
        "query,source",
        [
            ("Which rocket engines burn kerosene and liquid oxygen?", "rocket"),
            ("when is the income tax return deadline", "tax"),
            ("how does magma make volcanoes erupt lava", "volcano"),
            ("queen's gambit chess opening pawn", "chess"),
        ],
    )
    def test_relevant_chunk_first(self, index, embedder, mode, query, source):
        self.load_corpus(index, embedder)
        hits = self.search(index, embedder, query, mode=mode)
        assert hits, f"no hits for {query!r} in mode {mode}"
        assert hits[0].chunk.source_id == source

    @pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
    def test_scores_descend_and_arm_details(self, index, embedder, mode):
        self.load_corpus(index, embedder)
        hits = self.search(index, embedder, "cats kitten milk mice purr", mode=mode, top=7)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert len({h.chunk.id for h in hits}) == len(hits)
        top = hits[0]
        if mode in ("text", "hybrid"):
            assert top.text_rank == 1 and top.text_score is not None
        if mode in ("vector", "hybrid"):
            assert top.vector_rank is not None and top.vector_score is not None
        if mode == "text":
            assert all(h.vector_rank is None for h in hits)
        if mode == "vector":
            assert all(h.text_rank is None for h in hits)

    @pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
    def test_top_is_respected(self, index, embedder, mode):
        self.load_corpus(index, embedder)
        # a query with a word from every source, so all arms have more than `top` candidates
        query = "cats volcanoes sourdough tax rocket chess kitten"
        for top in (1, 3):
            assert len(self.search(index, embedder, query, mode=mode, top=top)) == top
        assert len(self.search(index, embedder, query, mode=mode, top=50)) <= 7

    def test_vector_mode_returns_every_chunk_when_top_allows(self, index, embedder):
        self.load_corpus(index, embedder)
        hits = self.search(index, embedder, "anything at all", mode="vector", top=20)
        assert len(hits) == 7

    # ------------------------------------------------------------ filters

    @pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
    @pytest.mark.parametrize(
        "flt,expected",
        [
            (eq("source_id", "cats"), {"cats"}),
            (ne("source_id", "cats"), set(CORPUS) - {"cats"}),
            (any_of("source_id", ["tax", "chess", "missing"]), {"tax", "chess"}),
            (prefix("filepath", "geo/"), {"volcano"}),
            (prefix("filepath", "g"), {"volcano", "chess"}),
            (and_(eq("metadata.lang", "en"), ne("source_id", "cats")), {"volcano", "tax", "chess"}),
            (or_(eq("source_id", "bread"), eq("metadata.lang", "de")), {"bread", "rocket"}),
            (not_(eq("metadata.lang", "en")), {"bread", "rocket"}),
            (eq("metadata.year", 2021), {"volcano", "rocket"}),
            (eq("title", "Chess"), {"chess"}),
            (eq("page_start", 2), {"cats"}),
            (any_of("source_id", []), set()),
        ],
    )
    def test_filters(self, index, embedder, mode, flt, expected):
        self.load_corpus(index, embedder)
        query = "cats volcanoes sourdough tax rocket chess kitten lava"
        hits = self.search(index, embedder, query, mode=mode, top=20, filter=flt)
        # Every source matches a query word (text arm) and the vector arm returns every allowed
        # chunk when top allows, so each mode must return exactly the filtered sources.
        assert {h.chunk.source_id for h in hits} == expected

    def test_filter_applies_before_top_truncation(self, index, embedder):
        # Many near-duplicates of the query and one allowed chunk far down the ranking.
        near = [
            Chunk(id=f"near{i}", source_id=f"near{i}", content=f"alpha beta gamma delta {i}", chunk_index=0)
            for i in range(40)
        ]
        far = Chunk(id="far", source_id="far", content="omega alpha", chunk_index=0, filepath="keep/")
        self.put(index, embedder, [*near, far])
        for mode in ("text", "vector", "hybrid"):
            hits = self.search(index, embedder, "alpha beta gamma delta", mode=mode, top=1,
                               k_candidates=5, filter=prefix("filepath", "keep/"))
            assert [h.chunk.id for h in hits] == ["far"], mode

    @pytest.mark.parametrize("value", ADVERSARIAL)
    def test_adversarial_filter_values_match_nothing(self, index, embedder, value):
        self.load_corpus(index, embedder)
        for mode in ("text", "vector", "hybrid"):
            for flt in (eq("source_id", value), prefix("filepath", value), eq("metadata.lang", value),
                        any_of("title", [value, value + "x"])):
                assert self.search(index, embedder, "cats", mode=mode, filter=flt) == []
            # a negated hostile filter keeps everything (it did not turn into 1=1 or an error)
            assert len(self.search(index, embedder, "cats", mode="vector", top=20,
                                   filter=ne("source_id", value))) == 7

    # ------------------------------------------------------------ security trimming

    @staticmethod
    def allowed(chunk: Chunk, groups, public: bool) -> bool:
        if groups is ALL_GROUPS:
            return True
        if not chunk.groups:
            return public
        return bool(set(chunk.groups) & set(groups))

    @pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
    @pytest.mark.parametrize(
        "groups,public,expected",
        [
            (ALL_GROUPS, True, set(CORPUS)),
            (ALL_GROUPS, False, set(CORPUS)),
            (("staff",), True, {"bread", "rocket", "cats", "chess"}),
            (("staff",), False, {"bread", "rocket"}),
            (("finance", "geology"), False, {"tax", "volcano"}),
            ((), True, {"cats", "chess"}),
            ((), False, set()),
            (("nobody",), False, set()),
            (("Staff",), False, set()),  # group names are case-sensitive
        ],
    )
    def test_group_trimming(self, index, embedder, mode, groups, public, expected):
        self.load_corpus(index, embedder)
        query = "cats volcanoes sourdough tax rocket chess kitten lava"
        hits = self.search(index, embedder, query, mode=mode, top=20, groups=groups, public_when_no_groups=public)
        assert {h.chunk.source_id for h in hits} == expected

    @pytest.mark.parametrize(
        "groups,public,expected",
        [
            (ALL_GROUPS, True, set(CORPUS)),
            (("staff",), True, {"bread", "rocket", "cats", "chess"}),
            (("staff",), False, {"bread", "rocket"}),
            ((), True, {"cats", "chess"}),
            ((), False, set()),
            (("' or 1=1 --",), False, set()),
        ],
    )
    def test_get_chunks_by_id_applies_the_same_trimming(self, index, embedder, groups, public, expected):
        chunks = self.load_corpus(index, embedder)
        asked = [c.id for c in reversed(chunks)] + ["no-such-id", "' or 1=1 --"]
        got = index.get_chunks(asked, groups=groups, public_when_no_groups=public)
        assert {c.source_id for c in got} == expected
        assert [c.id for c in got] == [i for i in asked if i in {c.id for c in got}]  # the order asked
        by_id = {c.id: c for c in chunks}
        assert all(c == by_id[c.id] for c in got)  # every field round-trips
        assert index.get_chunks([], groups=groups) == []

    @pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
    def test_a_request_without_groups_sees_public_chunks_only(self, index, embedder, mode):
        self.load_corpus(index, embedder)
        query = "cats volcanoes sourdough tax rocket chess kitten lava"
        vector = tuple(embedder.embed_query(query))
        hits = index.search(SearchRequest(text=query, vector=vector, mode=mode, top=20))
        assert {h.chunk.source_id for h in hits} == {"cats", "chess"}  # the two sources without groups
        closed = SearchRequest(text=query, vector=vector, mode=mode, top=20, public_when_no_groups=False)
        assert index.search(closed) == []

    def test_get_chunks_without_groups_sees_public_chunks_only(self, index, embedder):
        chunks = self.load_corpus(index, embedder)
        ids = [c.id for c in chunks]
        assert {c.source_id for c in index.get_chunks(ids)} == {"cats", "chess"}
        assert index.get_chunks(ids, public_when_no_groups=False) == []
        assert len(index.get_chunks(ids, groups=ALL_GROUPS)) == len(chunks)

    @pytest.mark.parametrize("bad", ["finance", "", b"finance", None, 0, 1.5, True, ["finance", ""], [" "],
                                     ["a", None], [b"a"], {"finance": 1}, [ALL_GROUPS]])
    def test_malformed_groups_are_a_type_error_never_a_wider_search(self, index, embedder, bad):
        chunks = self.load_corpus(index, embedder)
        with pytest.raises(TypeError, match="expected"):
            self.search(index, embedder, "cats tax", mode="text", groups=bad)
        with pytest.raises(TypeError, match="expected"):
            index.get_chunks([c.id for c in chunks], groups=bad)

    def test_trimming_applies_before_top_truncation(self, index, embedder):
        near = [
            Chunk(id=f"near{i}", source_id=f"near{i}", content=f"alpha beta gamma delta {i}",
                  chunk_index=0, groups=("others",))
            for i in range(40)
        ]
        mine = Chunk(id="mine", source_id="mine", content="omega alpha", chunk_index=0, groups=("me",))
        self.put(index, embedder, [*near, mine])
        for mode in ("text", "vector", "hybrid"):
            hits = self.search(index, embedder, "alpha beta gamma delta", mode=mode, top=3,
                               k_candidates=5, groups=("me",), public_when_no_groups=False)
            assert [h.chunk.id for h in hits] == ["mine"], mode

    @pytest.mark.parametrize("value", ADVERSARIAL)
    def test_adversarial_groups_never_leak(self, index, embedder, value):
        self.load_corpus(index, embedder)
        for mode in ("text", "vector", "hybrid"):
            hits = self.search(index, embedder, "cats tax rocket", mode=mode, top=20,
                               groups=(value,), public_when_no_groups=False)
            assert hits == []

    @pytest.mark.parametrize("query", ADVERSARIAL)
    @pytest.mark.parametrize("mode", ["text", "hybrid"])
    def test_adversarial_queries_never_error(self, index, embedder, query, mode):
        self.load_corpus(index, embedder)
        hits = self.search(index, embedder, query, mode=mode, top=20, groups=("finance",),
                           public_when_no_groups=False)
        assert all(h.chunk.groups == ("finance",) for h in hits)
        assert index.count() == 7  # nothing was dropped

    def test_query_words_are_not_fts_operators(self, index, embedder):
        self.load_corpus(index, embedder)
        # "OR"/"NOT"/"NEAR" are plain words here: the query still finds the cat chunks by "cats".
        hits = self.search(index, embedder, "cats NOT mice NEAR( OR", mode="text", top=10)
        assert hits and hits[0].chunk.source_id == "cats"

    # differing_executors: each backend's subclass runs this one inherited function with its own
    # instance by design (no state is kept on self); pytest-xdist may put two of them in one worker.
    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors])
    @given(data=st.data())
    def test_property_every_hit_satisfies_trimming(self, index, embedder, data):
        pool = ["a", "b", "c", "d", "' or 1=1 --", "\""]
        if index.count() == 0:
            chunks = []
            for i in range(24):
                groups = tuple(pool[j] for j in range(len(pool)) if (i >> j) & 1 and j < 4)
                if i % 7 == 3:
                    groups = ("' or 1=1 --",)
                chunks.append(Chunk(id=f"c{i}", source_id=f"s{i % 5}", content=f"shared words topic{i % 3} item{i}",
                                    chunk_index=i, groups=groups))
            self.put(index, embedder, chunks)
        stored = {c.id: c for c in (h.chunk for h in self.search(index, embedder, "shared", mode="vector", top=50))}
        assert len(stored) == 24
        groups = data.draw(st.one_of(st.just(ALL_GROUPS), st.lists(st.sampled_from(pool + ["zz"]), max_size=3).map(tuple)))
        public = data.draw(st.booleans())
        mode = data.draw(st.sampled_from(["text", "vector", "hybrid"]))
        source = data.draw(st.one_of(st.none(), st.sampled_from([f"s{i}" for i in range(5)])))
        flt = eq("source_id", source) if source else None
        hits = self.search(index, embedder, "shared words topic1", mode=mode, top=30, groups=groups,
                           public_when_no_groups=public, filter=flt)
        expected = {cid for cid, c in stored.items()
                    if self.allowed(c, groups, public) and (source is None or c.source_id == source)}
        assert {h.chunk.id for h in hits} == expected  # every allowed chunk matches "shared"

    def test_recorded_scopes_are_listed_by_key_and_replaced_by_key(self, index, embedder):
        from dataclasses import replace

        assert index.list_scopes() == []
        folder = ScopeRecord(scope="/docs", kind="folder", root="/docs", include=("*.md",),
                             chunking='{"chunk_size": 128}', embedding=f"{embedder.model_id}/{embedder.dimensions}")
        blob = ScopeRecord(scope="acct/c/p", kind="blob", root="c", prefix="p/", account="acct", cleanup="none")
        index.record_scope(blob)
        index.record_scope(folder)
        got = index.list_scopes()
        assert [r.key for r in got] == sorted([folder.key, blob.key])
        assert all(r.ingested_at for r in got)
        assert [replace(r, ingested_at="") for r in got] == sorted([folder, blob], key=lambda r: r.key)
        index.record_scope(replace(folder, exclude=("drafts/*",)))  # the same key: the latest run replaces it
        assert [r.exclude for r in index.list_scopes() if r.key == folder.key] == [("drafts/*",)]
        assert len(index.list_scopes()) == 2
