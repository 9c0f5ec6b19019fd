"""The OData-subset parser, the retriever's request building, strictness, and adversarial ACL trimming."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_retrieval_corpus import DOCS, build_index, hit

from indexers.filters import And, Eq, In, Not, Or
from indexers.records import ALL_GROUPS, SearchRequest, narrow_groups
from retrieval.errors import ODataFilterError, RetrievalError
from retrieval.odata import fields_from_mapping, parse_odata, parse_oyd_filter
from retrieval.retriever import Retriever
from retrieval.strictness import LEVELS, apply_strictness, level

# ---------------------------------------------------------------- OData parser


def test_parse_supported_subset():
    f = parse_odata("title eq 'O''Brien' and (page_start eq 3 or not search.in(source_id, 'a.pdf,b.pdf', ','))")
    assert f == And((Eq("title", "O'Brien"), Or((Eq("page_start", 3), Not(In("source_id", ("a.pdf", "b.pdf")))))))
    assert parse_odata("metadata/dept ne 'hr'") == Eq("metadata.dept", "hr", negate=True)
    assert parse_odata("metadata.year eq 2024.5") == Eq("metadata.year", 2024.5)
    assert parse_odata("metadata.flag eq true") == Eq("metadata.flag", True)
    assert parse_odata("search.in(filepath, 'x y,z')") == In("filepath", ("x", "y", "z"))
    assert parse_odata("search.in(filepath, 'a|b c', '|')") == In("filepath", ("a", "b c"))
    assert parse_odata("a_title eq 'x'", field_map=fields_from_mapping({"title_field": "a_title"})) == Eq("title", "x")
    assert parse_odata("title eq 'x' or title eq 'y' or title eq 'z'") == Or(
        (Eq("title", "x"), Eq("title", "y"), Eq("title", "z"))
    )


@pytest.mark.parametrize(
    "expr, words",
    [
        ("", "empty"),
        ("title gt 'a'", "unsupported operator"),
        ("title eq", "ends too early"),
        ("title eq 'abc", "unterminated"),
        ("groups/any(g: g eq 'hr')", "unsupported function"),
        ("group_ids eq 'hr'", "unknown field"),
        ("groups eq 'hr'", "unknown field"),
        ("search.ismatch('x')", "unsupported function"),
        ("title eq 'a')", "unexpected"),
        ("(title eq 'a'", "expected ')'"),
        ("title eq null", "null"),
        ("title eq 'a'; drop table chunks", "unexpected character"),
        ("eq eq 'a'", "unexpected"),
        ("(" * 200 + "title eq 'a'" + ")" * 200, "nests deeper"),
        ("title eq 'a' " + "and title eq 'a' " * 2000, "longer than"),
    ],
)
def test_parse_errors_are_typed_and_say_why(expr, words):
    with pytest.raises(ODataFilterError) as info:
        parse_odata(expr)
    assert words in str(info.value)


# ---------------------------------------------------------------- retriever


class SpyIndex:
    def __init__(self):
        self.requests: list[SearchRequest] = []

    def search(self, request):
        self.requests.append(request)
        return []


class FixedEmbedder:
    model_id, dimensions = "fixed", 3

    def embed_query(self, text):
        import numpy as np

        return np.array([1.0, 0.0, 0.0], dtype="float32")


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_retriever_builds_requests_and_passes_groups(mode):
    spy = SpyIndex()
    r = Retriever(spy, FixedEmbedder(), public_when_no_groups=False)
    r.search("vacation days", mode=mode, top=7, groups=["hr"], filter=Eq("title", "x"))
    r.search("vacation days", mode=mode, groups=[])
    r.search("vacation days", mode=mode)
    a, b, c = spy.requests
    assert (a.mode, a.top, a.groups, a.filter, a.public_when_no_groups) == (mode, 7, ("hr",), Eq("title", "x"), False)
    assert a.text == ("vacation days" if mode != "vector" else None)
    assert (a.vector is not None) == (mode != "text")
    assert b.groups == () and c.groups == ()  # no groups given: public-only, never "trusted"
    r.search("vacation days", mode=mode, groups=ALL_GROUPS)
    assert spy.requests[-1].groups is ALL_GROUPS
    for bad in (None, "hr", ["hr", ""]):
        with pytest.raises(TypeError, match="expected"):
            r.search("vacation days", mode=mode, groups=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected"):
            r.get_chunk("x", groups=bad)  # type: ignore[arg-type]
    assert len(spy.requests) == 4  # a malformed groups value never reached the index


def test_retriever_rejects_bad_input():
    r = Retriever(SpyIndex(), FixedEmbedder())
    with pytest.raises(RetrievalError, match="unknown search mode"):
        r.search("q", mode="semantic")  # type: ignore[arg-type]
    with pytest.raises(RetrievalError, match="empty"):
        r.search("   ")


# ---------------------------------------------------------------- strictness


def test_strictness_levels_are_monotonic():
    for lo, hi in zip(range(1, 5), range(2, 6)):
        assert LEVELS[lo].min_cosine <= LEVELS[hi].min_cosine
        assert LEVELS[lo].min_relative <= LEVELS[hi].min_relative
    for bad in (0, 6, "3", True, 2.5):
        with pytest.raises(RetrievalError):
            level(bad)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-1, 1), st.one_of(st.none(), st.floats(0, 30))), min_size=1, max_size=12))
def test_stricter_never_keeps_more(scores):
    hits = [hit(f"c{i}", n=i, vector_score=v if i % 3 else None, text_score=t) for i, (v, t) in enumerate(scores)]
    kept_sets = []
    for s in range(1, 6):
        kept, dropped = apply_strictness(hits, strictness=s)
        assert len(kept) + len(dropped) == len(hits)
        kept_sets.append({id(h) for h in kept})
    for a, b in zip(kept_sets, kept_sets[1:]):
        assert b <= a


def test_strictness_uses_cosine_then_relative_text():
    hits = [hit("a", n=1, vector_score=0.5), hit("b", n=2, vector_score=0.1), hit("c", n=3, vector_score=None, text_score=10.0),
            hit("d", n=4, vector_score=None, text_score=1.0), hit("e", n=5, vector_score=0.05, text_score=8.0),
            hit("f", n=6, vector_score=0.1, text_score=2.0)]
    kept, dropped = apply_strictness(hits, strictness=3)
    # cosine >= 0.2, or BM25 >= 0.5 x the best BM25 of the list (a strong keyword match with a low cosine stays)
    assert [h.chunk.content for h in kept] == ["a", "c", "e"]
    fused_only = [hit("x", n=1, vector_score=None, score=0.03), hit("y", n=2, vector_score=None, score=0.01)]
    assert [h.chunk.content for h in apply_strictness(fused_only, strictness=3)[0]] == ["x"]
    kept1, _ = apply_strictness(hits, strictness=1)
    assert len(kept1) == len(hits)


# ---------------------------------------------------------------- ACL trimming (adversarial)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    index, embedder = build_index(tmp_path_factory.mktemp("acl"))
    yield Retriever(index, embedder)
    index.close()


GROUPS_OF = {sid: set(groups) for sid, _, groups, _, _, _ in DOCS}
GROUP_NAMES = sorted({g for gs in GROUPS_OF.values() for g in gs} | {"nobody"})


def visible(source_id: str, groups) -> bool:
    g = GROUPS_OF[source_id]
    return not g or bool(g & set(groups))


_values = st.sampled_from(["hr", "board", "it", "handbook.pdf", "salaries.xlsx", "o'brien notes.txt", "Salary bands", "", "' or 1=1 --", "x') OR ('1'='1"])
_fields = st.sampled_from(["source_id", "title", "filepath", "section", "metadata/dept", "metadata.year", "page_start"])


def _lit(v):
    return "'" + v.replace("'", "''") + "'" if isinstance(v, str) else str(v).lower()


_atom = st.one_of(
    st.builds(lambda f, op, v: f"{f} {op} {_lit(v)}", _fields, st.sampled_from(["eq", "ne"]), st.one_of(_values, st.integers(0, 2025), st.booleans())),
    st.builds(lambda f, vs: f"search.in({f}, {_lit(','.join(vs))}, ',')", _fields, st.lists(_values, max_size=4)),
)
_expr = st.recursive(
    _atom,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    ),
    max_leaves=6,
)
_junk = st.text(alphabet="abcdefgilnorstq()',/ .=|-1", max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expr=st.one_of(_expr, _junk), groups=st.lists(st.sampled_from(GROUP_NAMES), max_size=3),
       mode=st.sampled_from(["text", "vector", "hybrid"]), query=st.sampled_from(["salary band", "acquisition board", "parking", "vacation"]))
def test_no_filter_returns_a_chunk_outside_the_callers_groups(corpus, expr, groups, mode, query):
    try:
        flt = parse_odata(expr)
    except ODataFilterError:
        return  # rejected filters become a 400; nothing is searched
    hits = corpus.search(query, mode=mode, top=10, filter=flt, groups=groups)
    for h in hits:
        assert visible(h.chunk.source_id, groups), (expr, groups, h.chunk.source_id)


@pytest.mark.parametrize(
    "expr",
    [
        "source_id eq 'salaries.xlsx' or source_id ne 'salaries.xlsx'",
        "not (source_id eq 'nothing')",
        "search.in(source_id, 'salaries.xlsx,board-minutes.docx,security.pdf', ',')",
        "title eq 'Salary bands' or title eq 'x'' or ''1''=''1'",
        "metadata/dept eq 'hr' or metadata/dept ne 'hr'",
    ],
)
def test_crafted_filters_cannot_widen_access(corpus, expr):
    flt = parse_odata(expr)
    for groups in ([], ["it"], ["nobody"]):
        hits = corpus.search("salary band acquisition password parking", mode="hybrid", top=20, filter=flt, groups=groups)
        assert all(visible(h.chunk.source_id, groups) for h in hits)
    # and the same filter as a trusted caller (no trimming) does reach the protected chunks
    trusted = corpus.search("salary band acquisition password parking", mode="hybrid", top=20, filter=flt,
                            groups=ALL_GROUPS)
    assert any(GROUPS_OF[h.chunk.source_id] for h in trusted)


def test_groups_grant_access(corpus):
    hits = corpus.search("salary band", mode="text", top=10, groups=["hr"])
    assert "salaries.xlsx" in {h.chunk.source_id for h in hits}
    hits = corpus.search("salary band", mode="text", top=10, groups=["board"])
    assert "salaries.xlsx" not in {h.chunk.source_id for h in hits}


# ---------------------------------------------------------------- On Your Data's group_ids filter

@pytest.mark.parametrize("expr,rest,groups", [
    ("group_ids/any(g: search.in(g, 'a, b'))", None, ("a", "b")),  # search.in's default delimiters: space, comma
    ("group_ids/any(g: search.in(g, 'a,b'))", None, ("a", "b")),
    ("group_ids/any(g: search.in(g, 'a|b c', '|'))", None, ("a", "b c")),
    ("group_ids/any(g: search.in(g, 'a, b', ', '))", None, ("a", "b")),
    ("group_ids/any(g: g eq 'fin''ance')", None, ("fin'ance",)),
    ("group_ids/any(g: search.in(g, ''))", None, ()),
    ("title eq 'x' and group_ids/any(g: search.in(g, 'a, b'))", Eq("title", "x"), ("a", "b")),
    ("(group_ids/any(u: search.in(u, 'a b c')) and source_id eq 's') and group_ids/any(g: g eq 'b')",
     Eq("source_id", "s"), ("b",)),  # several terms intersect
    ("GROUP_IDS/ANY(g: search.in(g, 'a'))", None, ("a",)),
    ("title eq 'x'", Eq("title", "x"), None),
])
def test_group_ids_filter_is_taken_apart_as_groups(expr, rest, groups):
    assert parse_oyd_filter(expr) == (rest, groups)


@pytest.mark.parametrize("expr,problem", [
    ("group_ids/any(g: search.in(g, 'a')) or title eq 'x'", "only be combined with 'and'"),
    ("not group_ids/any(g: g eq 'a')", "only be combined with 'and'"),
    ("title eq 'y' or (title eq 'x' and group_ids/any(g: g eq 'a'))", "only be combined with 'and'"),
    ("group_ids/any(g: search.in(h, 'a'))", "expected the lambda variable 'g'"),
    ("group_ids/any(g: g ne 'a')", "unsupported operator 'ne'"),
    ("group_ids/any(g: g eq 5)", "expected a group name string"),
    ("group_ids/any(g search.in(g, 'a'))", "expected ':'"),
    ("group_ids/all(g: g eq 'a')", "unsupported function"),
    ("group_ids eq 'a'", "unknown field"),
])
def test_malformed_group_ids_filters_are_refused(expr, problem):
    with pytest.raises(ODataFilterError, match=problem):
        parse_oyd_filter(expr)


def test_the_acl_field_is_configurable_and_plain_filters_refuse_it():
    assert parse_oyd_filter("acl/any(g: g eq 'a')", acl_field="acl") == (None, ("a",))
    with pytest.raises(ODataFilterError, match="unsupported function"):
        parse_oyd_filter("group_ids/any(g: g eq 'a')", acl_field="acl")
    with pytest.raises(ODataFilterError, match="unsupported function"):
        parse_odata("group_ids/any(g: g eq 'a')")  # the CLI's --filter: no ACL term


@pytest.mark.parametrize("caller,to,expected", [
    (ALL_GROUPS, ("a", "b"), ("a", "b")),  # a trusted caller narrowed
    ((), ("a", "b"), ()),  # public-only stays public-only
    (("a", "c"), ("a", "b"), ("a",)),
    (("c",), ("a", "b"), ()),
    (("a",), None, ("a",)),
    (ALL_GROUPS, None, ALL_GROUPS),
    (ALL_GROUPS, (), ()),
])
def test_narrowing_never_widens(caller, to, expected):
    assert narrow_groups(caller, to) == expected
