"""Property: over HTTP, no chunk outside the caller's groups ever comes back, whoever calls and however.

Callers are API-key principals (a keys file with a key per group set) and JWT principals (tokens
minted with a local RSA key, groups in the ``groups`` and ``roles`` claims); hypothesis draws the
groups, the question, the query type, ``top_n_documents``, strictness, an OData filter, On Your
Data's ``group_ids/any(g: search.in(g, '...'))`` narrowing (may narrow, never widen) and streaming. Every chunk in ``citations`` and ``all_retrieved_documents`` (and the streamed context)
must be public or share a group with the caller, and every chunk the caller may see must be
reachable (a vector search with top 20 returns them all on this small corpus).
"""

from __future__ import annotations

import itertools
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt_helpers import AUDIENCE, ISSUER, TokenMint
from test_retrieval_corpus import DOCS, build_index
from serve_process import serving

from retrieval.extractive import ExtractiveAnswerer
from retrieval.oyd import OnYourDataFacade
from retrieval.principals import Authenticator, JWTVerifier, KeysFile
from retrieval.retriever import Retriever
from retrieval.server import create_app

CHAT = "/openai/deployments/d/chat/completions?api-version=2024-10-21"
UNIVERSE = ("hr", "board", "it", "security", "finance")
GROUPS_OF = {sid: set(groups) for sid, _p, groups, *_ in DOCS}
QUESTIONS = ["What is salary band L3?", "Which acquisition did the board approve?", "passwords characters",
             "How are parking spaces assigned?", "How many days of paid vacation do employees get?", "insurance",
             "euros", "the"]
FILTERS = [None, "title eq 'Salary bands'", "metadata/dept eq 'hr'", "not (metadata/dept eq 'hr')",
           "search.in(filepath, 'salaries.xlsx,board-minutes.docx,handbook.pdf')", "metadata/year eq 2024",
           "source_id ne 'handbook.pdf' or title eq 'Board minutes'"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("http-acl")
    index, embedder = build_index(base / "index")
    store = KeysFile.load(base / "keys.toml", missing_ok=True)
    keys = {}
    for n in range(len(UNIVERSE) + 1):
        for combo in itertools.combinations(UNIVERSE, n):
            keys[combo] = store.add("k-" + ("-".join(combo) or "public"), groups=combo)
    store.save()
    mint = TokenMint()
    auth = Authenticator(keys=KeysFile.load(base / "keys.toml"),
                         tokens=JWTVerifier(str(mint.jwks(base / "jwks.json")), issuer=ISSUER, audience=AUDIENCE))
    facade = OnYourDataFacade({"docs": Retriever(index, embedder)}, ExtractiveAnswerer())
    with serving(create_app(facade, authenticator=auth)) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield {"client": client, "keys": keys, "mint": mint}
    index.close()


def _visible(groups: set[str]) -> set[str]:
    return {sid for sid, need in GROUPS_OF.items() if not need or need & groups}


def _documents(response: httpx.Response, stream: bool) -> list[dict]:
    assert response.status_code == 200, response.text
    if stream:
        first = json.loads(response.text.split("\n\n")[0].removeprefix("data: "))
        ctx = first["choices"][0]["delta"]["context"]
    else:
        ctx = response.json()["choices"][0]["message"]["context"]
    return [*ctx.get("citations", []), *ctx.get("all_retrieved_documents", [])]


callers = st.fixed_dictionaries({
    "kind": st.sampled_from(["key", "bearer-key", "jwt"]),
    "groups": st.sets(st.sampled_from(UNIVERSE)),
    "roles": st.sets(st.sampled_from(UNIVERSE)),
})
requests = st.fixed_dictionaries({
    "question": st.sampled_from(QUESTIONS),
    "query_type": st.sampled_from(["simple", "semantic", "vector", "vector_simple_hybrid", "vector_semantic_hybrid"]),
    "top_n_documents": st.integers(1, 20),
    "strictness": st.integers(1, 5),
    "filter": st.sampled_from(FILTERS),
    "narrow": st.none() | st.sets(st.sampled_from(UNIVERSE), min_size=1),
    "stream": st.booleans(),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caller=callers, req=requests)
def test_no_chunk_outside_the_callers_groups(site, caller, req):
    if caller["kind"] == "jwt":
        groups = caller["groups"] | caller["roles"]
        token = site["mint"].token(groups=sorted(caller["groups"]), roles=sorted(caller["roles"]))
        headers = {"authorization": f"Bearer {token}"}
    else:
        groups = caller["groups"]
        key = site["keys"][tuple(g for g in UNIVERSE if g in groups)]
        headers = {"api-key": key} if caller["kind"] == "key" else {"authorization": f"Bearer {key}"}
    params = {"index_name": "docs", "query_type": req["query_type"], "top_n_documents": req["top_n_documents"],
              "strictness": req["strictness"], "include_contexts": ["citations", "all_retrieved_documents"]}
    filters = [f"({req['filter']})"] if req["filter"] else []
    if req["narrow"] is not None:  # On Your Data's document-level access filter: narrows, never widens
        filters.append(f"group_ids/any(g: search.in(g, '{', '.join(sorted(req['narrow']))}'))")
        groups = groups & req["narrow"]
    if filters:
        params["filter"] = " and ".join(filters)
    body = {"messages": [{"role": "user", "content": req["question"]}], "stream": req["stream"],
            "data_sources": [{"type": "azure_search", "parameters": params}]}
    r = site["client"].post(CHAT, json=body, headers=headers)
    seen = {d["filepath"] for d in _documents(r, req["stream"])}
    assert seen <= _visible(groups), (groups, seen - _visible(groups))


@pytest.mark.parametrize("kind", ["key", "jwt"])
def test_every_visible_chunk_is_reachable(site, kind):
    """The property above cannot pass by returning nothing: each caller reaches exactly what it may see."""
    for groups in [(), ("hr",), ("board", "it"), UNIVERSE]:
        if kind == "jwt":
            headers = {"authorization": f"Bearer {site['mint'].token(groups=list(groups))}"}
        else:
            headers = {"api-key": site["keys"][groups]}
        body = {"messages": [{"role": "user", "content": "the"}], "data_sources": [{"type": "azure_search", "parameters": {
            "index_name": "docs", "query_type": "vector", "top_n_documents": 20, "strictness": 1,
            "include_contexts": ["all_retrieved_documents"]}}]}
        seen = {d["filepath"] for d in _documents(site["client"].post(CHAT, json=body, headers=headers), False)}
        assert seen == _visible(set(groups))
