"""One property-based access-control suite: random groups, filters, modes and ``top``, through every
interface and against every backend -> no chunk outside the caller's groups, ever.

An interface is a ``Caller`` (the Python API, the CLI, the On Your Data facade with its ``group_ids``
filter); a backend is a ``Backend`` (the local index, the Azure AI Search test double over HTTP).
Every caller runs against every backend (``CALLERS`` x ``BACKENDS``). More interfaces (HTTP with key
principals, HTTP with JWT principals) plug in as more ``Caller`` classes in ``CALLERS``: a caller
gets the backend, the drawn ``Ask`` and returns the ids of the chunks it was shown.

The properties checked for every drawn request:
- every chunk shown is allowed for the caller's groups (narrowed by the request's ``group_ids`` filter,
  when the interface has one), honours ``ONDATA_PUBLIC_WHEN_NO_GROUPS`` and the filter;
- and is allowed for the caller's groups alone (a request never widens what its caller may see);
- callers that return plain search hits (``exact``) return exactly ``min(top, allowed)`` chunks, so a
  caller that returned nothing could not pass.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from indexers.records import ALL_GROUPS, Chunk, Groups, chunk_id_for, narrow_groups
from tests.servers.azure_search import FakeAzureSearch

QUERY = "ledger harbour report"
POOL = ["a", "b", "c", "d", "' or 1=1 --", "a,b", "a b", "A", "Ünï"]  # names that break naive filters
SOURCES = [f"s{i}" for i in range(8)]
SEARCH_KEY = "acl-suite-search-key"


def corpus() -> list[Chunk]:
    """32 chunks over 8 sources; a chunk's groups are a deterministic subset of ``POOL`` (a quarter public)."""
    out = []
    for i in range(32):
        groups = tuple(POOL[j] for j in range(len(POOL)) if (i * 7 + j * 3) % 5 == 0 and i % 4)
        text = f"{QUERY} entry {i} of {SOURCES[i % 8]} " + " ".join(f"w{(i * k) % 13}" for k in range(1, 6))
        out.append(Chunk(id=chunk_id_for(SOURCES[i % 8], i, text), source_id=SOURCES[i % 8], content=text,
                         chunk_index=i, title=f"Doc {SOURCES[i % 8]}", filepath=f"{SOURCES[i % 8]}.txt", groups=groups))
    return out


CHUNKS = {c.id: c for c in corpus()}


@dataclass(frozen=True)
class Ask:
    """One drawn request: who asks (``groups``), how, and what it narrows to."""

    groups: Groups
    mode: str
    top: int
    public: bool  # ONDATA_PUBLIC_WHEN_NO_GROUPS
    source: str | None  # a filter on source_id (None: no filter)
    narrow: tuple[str, ...] | None  # the group_ids filter's groups (interfaces that have one)

    @property
    def filter_text(self) -> str | None:
        return None if self.source is None else f"source_id eq '{self.source}'"


def allowed(chunk: Chunk, groups: Groups, public: bool) -> bool:
    if groups is ALL_GROUPS:
        return True
    return bool(set(chunk.groups) & set(groups)) if chunk.groups else public


# ------------------------------------------------------------------ backends

class Backend(Protocol):
    name: str

    def settings_env(self, public: bool) -> dict[str, str]:
        """The environment an ``ondata`` command needs to search this backend."""

    def retriever(self, public: bool) -> Any:
        """A ``Retriever`` over this backend."""


class LocalBackend:
    name = "local"

    def __init__(self, directory: Path) -> None:
        from ondata.settings import Settings
        from ondata.wiring import build_embedder, build_index

        self.directory = directory
        self.settings = Settings(index_dir=directory, embedder="hashing", hashing_dimensions=64)
        self.embedder = build_embedder(self.settings)
        self.index = build_index(self.settings, self.embedder)
        self.index.ensure()
        chunks = list(CHUNKS.values())
        self.index.upsert(chunks, vectors=self.embedder.embed_documents([c.content for c in chunks]))
        self.index.close()  # saves FAISS: CLI processes open it themselves

    def settings_env(self, public: bool) -> dict[str, str]:
        return {"ONDATA_PROFILE": "local", "ONDATA_INDEX_DIR": str(self.directory),
                "ONDATA_PUBLIC_WHEN_NO_GROUPS": str(public).lower()}

    def retriever(self, public: bool) -> Any:
        from retrieval.retriever import Retriever

        return Retriever(self.index, self.embedder, public_when_no_groups=public)


class AzureBackend:
    name = "azure-search-double"

    def __init__(self, server: FakeAzureSearch, directory: Path) -> None:
        from ondata.settings import Settings
        from ondata.wiring import build_embedder, build_index

        self.server, self.directory = server, directory
        self.index_name = f"acl-{uuid.uuid4().hex[:12]}"
        self.settings = Settings(**self._values())
        self.embedder = build_embedder(self.settings)
        self.index = build_index(self.settings, self.embedder)
        self.index.ensure()
        chunks = list(CHUNKS.values())
        self.index.upsert(chunks, vectors=self.embedder.embed_documents([c.content for c in chunks]))

    def _values(self) -> dict[str, Any]:
        return {"profile": "azure", "azure_search_endpoint": self.server.url, "azure_search_key": SEARCH_KEY,
                "azure_search_index": self.index_name, "embedder": "hashing", "hashing_dimensions": 64,
                "index_dir": self.directory, "chat": "extractive"}

    def settings_env(self, public: bool) -> dict[str, str]:
        return {"ONDATA_PROFILE": "azure", "ONDATA_AZURE_SEARCH_ENDPOINT": self.server.url,
                "ONDATA_AZURE_SEARCH_KEY": SEARCH_KEY, "ONDATA_AZURE_SEARCH_INDEX": self.index_name,
                "ONDATA_EMBEDDER": "hashing", "ONDATA_HASHING_DIMENSIONS": "64", "ONDATA_INDEX_DIR": str(self.directory),
                "ONDATA_CHAT": "extractive", "ONDATA_PUBLIC_WHEN_NO_GROUPS": str(public).lower()}

    def retriever(self, public: bool) -> Any:
        from retrieval.retriever import Retriever

        return Retriever(self.index, self.embedder, public_when_no_groups=public)


# ------------------------------------------------------------------ callers (interfaces)

class Caller(Protocol):
    name: str
    exact: bool  # returns plain search hits: exactly min(top, allowed) of them
    narrows: bool  # has On Your Data's group_ids filter

    def ask(self, backend: Backend, ask: Ask) -> list[str]:
        """The ids of the chunks the caller is shown for ``ask``."""


class PythonCaller:
    name, exact, narrows = "python", True, False

    def ask(self, backend: Backend, ask: Ask) -> list[str]:
        from retrieval.odata import parse_odata

        flt = parse_odata(ask.filter_text) if ask.filter_text else None
        hits = backend.retriever(ask.public).search(QUERY, top=ask.top, mode=ask.mode, filter=flt, groups=ask.groups)
        return [h.chunk.id for h in hits]


class CliCaller:
    name, exact, narrows = "cli", True, False

    def ask(self, backend: Backend, ask: Ask) -> list[str]:
        from ondata.cli import app

        args = ["search", "--json", "--mode", ask.mode, "--top", str(ask.top), QUERY]
        if ask.groups is ALL_GROUPS:
            args.append("--all-groups")
        else:
            for g in ask.groups:
                args += ["--group", g]
        if ask.filter_text:
            args += ["--filter", ask.filter_text]
        result = CliRunner().invoke(app, args, env=backend.settings_env(ask.public))
        assert result.exit_code == 0, result.output
        assert (result.stderr.count("--all-groups") == 1) == (ask.groups is ALL_GROUPS)
        return [h["chunk_id"] for h in json.loads(result.stdout)]


class OydCaller:
    """The On Your Data facade (what ``ondata serve`` answers with), with a ``group_ids`` filter."""

    name, exact, narrows = "oyd", False, True

    def ask(self, backend: Backend, ask: Ask) -> list[str]:
        from retrieval.extractive import ExtractiveAnswerer
        from retrieval.oyd import OnYourDataFacade

        facade = OnYourDataFacade({"docs": backend.retriever(ask.public)}, ExtractiveAnswerer())
        terms = [ask.filter_text] if ask.filter_text else []
        if ask.narrow is not None:
            quoted = "|".join(g.replace("'", "''") for g in ask.narrow)
            terms.append(f"group_ids/any(g: search.in(g, '{quoted}', '|'))")
        params: dict[str, Any] = {
            "endpoint": "https://search.example.net", "index_name": "docs", "strictness": 1,
            "authentication": {"type": "api_key", "key": "k"}, "top_n_documents": min(ask.top, 20),
            "query_type": {"text": "simple", "vector": "vector", "hybrid": "vector_simple_hybrid"}[ask.mode],
            "include_contexts": ["citations", "all_retrieved_documents"],
        }
        if terms:
            params["filter"] = " and ".join(terms)
        body = {"messages": [{"role": "user", "content": QUERY}], "data_sources": [{"type": "azure_search",
                                                                                   "parameters": params}]}
        ctx = facade.chat_completions(body, deployment="d", groups=ask.groups)["choices"][0]["message"]["context"]
        return [d["chunk_id"] for d in ctx["all_retrieved_documents"]] + [c["chunk_id"] for c in ctx["citations"]]


CALLERS: list[Caller] = [PythonCaller(), CliCaller(), OydCaller()]


# ------------------------------------------------------------------ the suite

@pytest.fixture(scope="module")
def server():
    with FakeAzureSearch(api_key=SEARCH_KEY) as s:
        yield s


@pytest.fixture(scope="module", params=["local", "azure-search-double"])
def backend(request, tmp_path_factory):
    if request.param == "local":
        yield LocalBackend(tmp_path_factory.mktemp("acl-local"))
    else:
        b = AzureBackend(request.getfixturevalue("server"), tmp_path_factory.mktemp("acl-azure"))
        yield b
        b.index.close()


group_sets = st.one_of(st.just(ALL_GROUPS), st.lists(st.sampled_from(POOL + ["zz"]), max_size=3).map(tuple))
asks = st.builds(
    Ask, groups=group_sets, mode=st.sampled_from(["text", "vector", "hybrid"]), top=st.integers(1, 40),
    public=st.booleans(), source=st.one_of(st.none(), st.sampled_from(SOURCES + ["s9"])),
    narrow=st.one_of(st.none(), st.lists(st.sampled_from(POOL + ["zz"]), max_size=3).map(tuple)),
)


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.name)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ask=asks)
def test_no_chunk_outside_the_callers_groups_ever(backend, caller, ask):
    shown = caller.ask(backend, ask)
    effective = narrow_groups(ask.groups, ask.narrow) if caller.narrows else ask.groups
    expected = {cid for cid, c in CHUNKS.items()
                if allowed(c, effective, ask.public) and (ask.source is None or c.source_id == ask.source)}
    leaks = [CHUNKS[cid] for cid in shown if cid not in expected]
    assert not leaks, f"{caller.name} on {backend.name} showed {[(c.source_id, c.groups) for c in leaks]} for {ask}"
    assert all(allowed(CHUNKS[cid], ask.groups, ask.public) for cid in shown)  # never wider than the caller
    if caller.exact:
        assert len(set(shown)) == len(shown) == min(ask.top, len(expected))
