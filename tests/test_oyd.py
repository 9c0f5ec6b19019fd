"""The On-Your-Data facade: request validation (OYD-style 400s naming the parameter), response shape, streaming."""

from __future__ import annotations

import copy
import json

import pytest
from test_retrieval_corpus import build_index

from indexers.records import ALL_GROUPS
from retrieval.chat import ChatResult
from retrieval.errors import OYDRequestError
from retrieval.chat_answerer import ChatAnswerer
from retrieval.extractive import ExtractiveAnswerer
from retrieval.oyd import OnYourDataFacade, parse_request
from retrieval.retriever import Retriever


def body(**params) -> dict:
    p = {
        "endpoint": "https://search.example.net",
        "index_name": "docs",
        "authentication": {"type": "api_key", "key": "search-secret"},
        "query_type": "vector_simple_hybrid",
        "strictness": 1,
    }
    p.update(params)
    return {
        "messages": [{"role": "user", "content": "How many days of paid vacation do employees get?"}],
        "data_sources": [{"type": "azure_search", "parameters": p}],
    }


@pytest.fixture(scope="module")
def facade(tmp_path_factory):
    index, embedder = build_index(tmp_path_factory.mktemp("oyd"))
    yield OnYourDataFacade({"docs": Retriever(index, embedder)}, ExtractiveAnswerer())
    index.close()


def test_response_shape_with_all_contexts(facade):
    out = facade.chat_completions(body(include_contexts=["citations", "intent", "all_retrieved_documents"]), deployment="gpt-4o")
    assert out["object"] == "chat.completion" and out["model"] == "gpt-4o"
    msg = out["choices"][0]["message"]
    assert msg["role"] == "assistant" and msg["end_turn"] is True
    assert "[doc1]" in msg["content"]
    ctx = msg["context"]
    cit = ctx["citations"][0]
    assert set(cit) == {"content", "title", "url", "filepath", "chunk_id", "page"}  # OYD's keys plus the page
    assert cit["filepath"] == "handbook.pdf" and "25 days" in cit["content"] and cit["page"] == 3
    assert cit["url"] == "https://docs.example.com/handbook.pdf#page=3"  # a paged document's url opens at the page
    assert json.loads(ctx["intent"]) == ["How many days of paid vacation do employees get?"]
    docs = ctx["all_retrieved_documents"]
    assert docs and all(set(d) >= {"search_queries", "data_source_index", "original_search_score", "rerank_score", "filter_reason",
                                   "page"} for d in docs)
    assert {d["filter_reason"] for d in docs} <= {None, "score", "rerank"}
    for d in docs:  # a retrieved paged document carries its (first) page, also in its url; an unpaged one has none
        assert (d["url"] or "").endswith(f"#page={d['page']}") if d["page"] is not None else "#page=" not in (d["url"] or "")
    assert docs[0]["search_queries"] == ["How many days of paid vacation do employees get?"]
    # every marker points at a citation
    n = len(ctx["citations"])
    assert all(1 <= int(k) <= n for k in __import__("re").findall(r"\[doc(\d+)\]", msg["content"]))


def test_default_contexts_and_filter(facade):
    out = facade.chat_completions(body(filter="source_id eq 'benefits.md'"), deployment="d")
    ctx = out["choices"][0]["message"]["context"]
    assert set(ctx) == {"citations", "intent"}
    assert all(c["filepath"] == "benefits.md" for c in ctx["citations"])


def test_groups_trim(facade):
    b = body(filter=None)
    b["messages"][0]["content"] = "What is the salary band L3 range?"
    b["data_sources"][0]["parameters"]["include_contexts"] = ["citations", "all_retrieved_documents"]

    def seen(**kw):
        ctx = facade.chat_completions(b, deployment="d", **kw)["choices"][0]["message"]["context"]
        return {d["filepath"] for d in ctx["all_retrieved_documents"]} | {c["filepath"] for c in ctx["citations"]}

    assert "salaries.xlsx" in seen(groups=ALL_GROUPS)
    assert "salaries.xlsx" in seen(groups=["hr"])
    assert "salaries.xlsx" not in seen(groups=["it"])
    assert "salaries.xlsx" not in seen()  # no groups: public-only (deny by default), never "trusted"
    streamed = list(facade.stream_chat_completions(b, deployment="d"))
    assert all(c["filepath"] != "salaries.xlsx"
               for c in streamed[0]["choices"][0]["delta"]["context"].get("citations", []))
    with pytest.raises(TypeError, match="expected"):
        facade.chat_completions(b, deployment="d", groups=None)
    with pytest.raises(TypeError, match="the string 'hr'"):
        facade.chat_completions(b, deployment="d", groups="hr")


def test_group_ids_filter_narrows_the_callers_groups_and_never_widens(facade):
    def seen(flt, **kw):
        b = body(filter=flt, include_contexts=["citations", "all_retrieved_documents"])
        b["messages"][0]["content"] = "salary band acquisition password parking vacation"
        ctx = facade.chat_completions(b, deployment="d", **kw)["choices"][0]["message"]["context"]
        return {d["filepath"] for d in ctx["all_retrieved_documents"]}

    restricted = {"salaries.xlsx", "board-minutes.docx", "security.pdf", "o'brien notes.txt"}
    hr = "group_ids/any(g: search.in(g, 'hr, nobody'))"
    assert seen(hr, groups=ALL_GROUPS) & restricted == {"salaries.xlsx", "o'brien notes.txt"}  # narrowed to hr
    assert seen(hr, groups=("hr", "board")) & restricted == {"salaries.xlsx", "o'brien notes.txt"}
    assert seen(hr, groups=("board",)) & restricted == set()  # the intersection is empty: public only
    assert seen(hr) & restricted == set()  # a public-only caller stays public-only
    assert seen(hr + " and filepath eq 'salaries.xlsx'", groups=ALL_GROUPS) == {"salaries.xlsx"}
    assert seen("group_ids/any(g: search.in(g, 'it|board', '|'))", groups=ALL_GROUPS) & restricted == {
        "board-minutes.docx", "security.pdf", "o'brien notes.txt"}
    stream = body(filter=hr)
    first = next(iter(facade.stream_chat_completions(stream, deployment="d", groups=("board",))))
    assert all(c["filepath"] not in restricted for c in first["choices"][0]["delta"]["context"]["citations"])
    with pytest.raises(OYDRequestError, match="only be combined with 'and'"):
        facade.chat_completions(body(filter=hr + " or title eq 'x'"), deployment="d", groups=ALL_GROUPS)


def test_in_scope_abstains(facade):
    b = body(strictness=5)
    b["messages"][0]["content"] = "Who won the football world cup in 1998?"
    msg = facade.chat_completions(b, deployment="d")["choices"][0]["message"]
    assert "not available in the retrieved data" in msg["content"]
    assert msg["context"]["citations"] == []


def _mutate(path, value):
    b = body()
    target = b
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return b


_DELETE = object()
P = ("data_sources", 0, "parameters")


@pytest.mark.parametrize(
    "path, value, needle",
    [
        (P + ("strictness",), 6, "strictness"),
        (P + ("strictness",), "3", "strictness"),
        (P + ("strictness",), True, "strictness"),
        (P + ("top_n_documents",), 0, "top_n_documents"),
        (P + ("top_n_documents",), 21, "top_n_documents"),
        (P + ("in_scope",), "yes", "in_scope"),
        (P + ("query_type",), "fulltext", "query_type"),
        (P + ("index_name",), _DELETE, "index_name"),
        (P + ("index_name",), 7, "index_name"),
        (P + ("query_type",), {"a": 1}, "query_type"),
        (("temperature",), "hot", "temperature"),
        (("temperature",), 3, "temperature"),
        (("max_tokens",), 0, "max_tokens"),
        (("max_tokens",), 2.5, "max_tokens"),
        (("top_p",), True, "top_p"),
        (("stop",), ["a", "b", "c", "d", "e"], "stop"),
        (("seed",), 2**70, "seed"),
        (P + ("foo",), 1, "foo"),
        (P + ("filter",), "title gt 'a'", "filter"),
        (P + ("filter",), 3, "filter"),
        (P + ("include_contexts",), ["citations", "everything"], "include_contexts"),
        (P + ("authentication",), {"type": "password"}, "authentication"),
        (P + ("fields_mapping",), {"title": "t"}, "fields_mapping"),
        (P + ("embedding_dependency",), {"type": "magic"}, "embedding_dependency"),
        (P + ("max_search_queries",), 0, "max_search_queries"),
        (P + ("role_information",), ["x"], "role_information"),
        (("data_sources", 0, "type"), "pinecone", "type"),
        (("data_sources",), [], "data_sources"),
        (("data_sources",), _DELETE, "data_sources"),
        (("messages",), [], "messages"),
        (("messages",), [{"role": "assistant", "content": "hi"}], "messages"),
        (("messages",), [{"role": "robot", "content": "hi"}], "role"),
        (("messages",), [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "content"),
        (("logprobs",), True, "logprobs"),
        (("tools",), [{"type": "function"}], "tools"),
        (("n",), 2, "n"),
        (("stream",), "yes", "stream"),
    ],
)
def test_invalid_requests_get_oyd_400s_naming_the_parameter(facade, path, value, needle):
    with pytest.raises(OYDRequestError) as info:
        facade.chat_completions(_mutate(path, value), deployment="d")
    err = info.value
    assert err.status == 400
    assert err.body["error"]["code"] == "400"
    assert needle in err.body["error"]["message"]
    assert "search-secret" not in err.body["error"]["message"]


def test_an_index_not_served_is_a_404_naming_it(facade):
    with pytest.raises(OYDRequestError) as info:
        facade.chat_completions(_mutate(P + ("index_name",), "other"), deployment="d")
    assert info.value.status == 404 and info.value.code == "404" and "'other'" in info.value.message


def test_parse_request_maps_query_types_and_history():
    for qt, mode in [("simple", "text"), ("semantic", "text"), ("vector", "vector"),
                     ("vector_simple_hybrid", "hybrid"), ("vector_semantic_hybrid", "hybrid")]:
        assert parse_request(body(query_type=qt)).mode == mode
    b = body(fields_mapping={"title_field": "doc_title"}, filter="doc_title eq 'Employee Handbook'")
    b["messages"] = [
        {"role": "system", "content": "You are the HR bot."},
        {"role": "user", "content": "leave?"},
        {"role": "assistant", "content": "25 days [doc1]", "context": {"citations": []}},
        {"role": "user", "content": [{"type": "text", "text": "and"}, {"type": "text", "text": "remote work?"}]},
    ]
    b["temperature"] = 0.2
    req = parse_request(b)
    assert req.question == "and\nremote work?"
    assert req.history == [{"role": "user", "content": "leave?"}, {"role": "assistant", "content": "25 days [doc1]"}]
    assert req.role_information == "You are the HR bot."
    assert req.options == {"temperature": 0.2}
    from indexers.filters import Eq

    assert req.filter == Eq("title", "Employee Handbook")


def test_streaming_chunks(facade):
    b = body(include_contexts=["citations", "intent"])
    chunks = list(facade.stream_chat_completions(b, deployment="d"))
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["context"]["citations"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:])
    assert "25 days" in text and "[doc" in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    n = len(first["context"]["citations"])
    assert all(1 <= int(k) <= n for k in __import__("re").findall(r"\[doc(\d+)\]", text))


def test_streaming_validates_before_streaming(facade):
    with pytest.raises(OYDRequestError):
        facade.stream_chat_completions(body(strictness=0), deployment="d")


def test_streaming_removes_unknown_markers_and_forwards_options(tmp_path):
    index, embedder = build_index(tmp_path)

    class Scripted:
        extractive = False
        opts = None

        def complete(self, messages, **opts):  # pragma: no cover
            return ChatResult("x")

        def stream(self, messages, **opts):
            Scripted.opts = opts
            yield from ["Vacation is 25 days [do", "c1] and more [doc", "42].", " Done [doc1, doc77]."]

    f = OnYourDataFacade(lambda name: Retriever(index, embedder), ChatAnswerer(Scripted()))
    b = body()
    b["temperature"] = 0.1
    chunks = list(f.stream_chat_completions(b, deployment="d"))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:])
    assert text == "Vacation is 25 days [doc1] and more . Done [doc1]."
    assert Scripted.opts == {"temperature": 0.1}
    index.close()
