"""The local index's cached allowed sets (indexers/local_allowed.py) equal what SQL says, at every
generation, whether the writes came from this instance or from another one (another process)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexers.filters import any_of, eq, prefix
from indexers.local_allowed import AllowedSet
from indexers.local_index import LocalIndex
from indexers.records import ALL_GROUPS, Chunk, SearchRequest

DIMS = 8
GROUPS = ("hr", "eng", "sales")
SOURCES = ("a.md", "b.md", "c.md", "d.md")


def chunk(source: str, i: int, groups: tuple[str, ...]) -> Chunk:
    return Chunk(id=f"{source}#{i}", source_id=source, content=f"text {source} {i} policy", chunk_index=i,
                 title=source, section="s" if i % 2 else "t", groups=groups)


def vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sql_allowed(index: LocalIndex, request: SearchRequest) -> set[int]:
    where, params = index._where(request)
    if where == "(0)":
        return set()
    sql = "SELECT c.rid FROM chunks c" + (f" WHERE {where}" if where else "")
    return {r for (r,) in index._con().execute(sql, params)}


def cached_allowed(index: LocalIndex, request: SearchRequest) -> set[int] | None:
    con = index._con()
    con.execute("BEGIN")
    try:
        got = index._allowed(con, request)
    finally:
        con.execute("COMMIT")
    return None if got is None else set(got.ids().tolist())


REQUESTS = [
    SearchRequest(text="x", mode="text", groups=("hr",)),
    SearchRequest(text="x", mode="text", groups=("eng", "sales"), public_when_no_groups=False),
    SearchRequest(text="x", mode="text", groups=()),
    SearchRequest(text="x", mode="text", groups=ALL_GROUPS, filter=eq("source_id", "b.md")),
    SearchRequest(text="x", mode="text", groups=("hr",), filter=any_of("section", ["s"])),
    SearchRequest(text="x", mode="text", groups=("sales",), filter=prefix("source_id", "c")),
]

write = st.tuples(
    st.sampled_from(["upsert", "delete"]),
    st.sampled_from(SOURCES),
    st.integers(min_value=1, max_value=4),
    st.lists(st.sampled_from(GROUPS), max_size=2, unique=True),
    st.booleans(),  # written through the other instance (another process)
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(write, min_size=1, max_size=8))
def test_cached_allowed_sets_equal_sql_after_any_writes(tmp_path_factory, writes):
    directory = tmp_path_factory.mktemp("allowed")
    mine = LocalIndex(directory, dimensions=DIMS, model_id="m")
    other = LocalIndex(directory, dimensions=DIMS, model_id="m")
    try:
        for step, (op, source, n, groups, elsewhere) in enumerate(writes):
            target = other if elsewhere else mine
            if op == "upsert":
                chunks = [chunk(source, i, tuple(groups)) for i in range(n)]
                target.upsert(chunks, vectors=vectors(n, step), replace_sources=[source])
            else:
                target.delete_sources([source])
            for request in REQUESTS:
                assert cached_allowed(mine, request) == sql_allowed(mine, request), (step, request)
        assert cached_allowed(mine, SearchRequest(text="x", mode="text", groups=ALL_GROUPS)) is None
        # caught up incrementally: built once, at the first trimmed search
        assert mine._allowed_cache.full_builds == 1
    finally:
        mine.close()
        other.close()


def test_a_pruned_tombstone_log_rebuilds_the_masks(tmp_path):
    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    request = SearchRequest(text="x", mode="text", groups=("hr",))
    index.upsert([chunk("a.md", 0, ("hr",))], vectors=vectors(1, 0))
    assert cached_allowed(index, request) == sql_allowed(index, request)
    con = index._con()
    # as if the log had been pruned past this reader's generation by a writer elsewhere
    index.upsert([chunk("a.md", 0, ("eng",))], vectors=vectors(1, 1), replace_sources=["a.md"])
    con.execute("DELETE FROM chunk_tombstones")
    gen = index._generation(con)
    con.execute("UPDATE index_meta SET value = ? WHERE key = 'tombstones_since'", (str(gen),))
    assert cached_allowed(index, request) == sql_allowed(index, request) == set()
    assert index._allowed_cache.full_builds == 2
    index.close()


def test_group_change_takes_effect_in_both_arms_at_once(tmp_path):
    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    v = vectors(1, 0)
    index.upsert([chunk("a.md", 0, ("hr",))], vectors=v)
    for mode in ("text", "vector", "hybrid"):
        req = SearchRequest(text="policy", vector=v[0].tolist(), mode=mode, groups=("hr",), public_when_no_groups=False)
        assert [h.chunk.id for h in index.search(req)] == ["a.md#0"], mode
    index.upsert([chunk("a.md", 0, ("eng",))], vectors=v, replace_sources=["a.md"])
    for mode in ("text", "vector", "hybrid"):
        req = SearchRequest(text="policy", vector=v[0].tolist(), mode=mode, groups=("hr",), public_when_no_groups=False)
        assert index.search(req) == [], mode
        req = SearchRequest(text="policy", vector=v[0].tolist(), mode=mode, groups=("eng",), public_when_no_groups=False)
        assert [h.chunk.id for h in index.search(req)] == ["a.md#0"], mode
    index.close()


def test_allowed_set_type():
    mask = np.zeros(20, dtype=bool)
    mask[[0, 9, 17]] = True
    s = AllowedSet(mask)
    assert s.count == 3 and len(s) == 20
    assert s.ids().dtype == np.int64 and s.ids().tolist() == [0, 9, 17]
    assert 9 in s and 10 not in s and 25 not in s and -1 not in s
    assert s.take(np.array([17, 18, 40])).tolist() == [True, False, False]
    bits = s.bitmap()
    assert bits.dtype == np.uint8 and len(bits) == 3
    assert [i for i in range(24) if bits[i >> 3] >> (i & 7) & 1] == [0, 9, 17]


def test_faiss_bitmap_selector_keeps_to_the_allowed_set(tmp_path):
    index = LocalIndex(tmp_path, dimensions=DIMS, model_id="m")
    chunks = [chunk("a.md", i, ("hr",) if i % 3 == 0 else ()) for i in range(30)]
    v = vectors(30, 3)
    index.upsert(chunks, vectors=v)
    req = SearchRequest(vector=v[1].tolist(), mode="vector", groups=("hr",), public_when_no_groups=False,
                        top=50)
    assert {h.chunk.id for h in index.search(req)} == {c.id for c in chunks if c.groups}
    assert not index.search(SearchRequest(vector=v[1].tolist(), mode="vector", groups=("nobody",),
                                          public_when_no_groups=False))
    index.close()
