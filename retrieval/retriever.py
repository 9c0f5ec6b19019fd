"""The retriever: turns a question into a ``SearchRequest`` (text, vector or hybrid) and runs it on an index.

Hybrid fusion (RRF) is the index backend's job, as in Azure AI Search; the retriever never fuses.

Security trimming: ``groups`` is always passed through to the index. ``groups=None`` means trimming
is OFF — use it only for trusted callers (the CLI run by the index owner, batch evaluation). A
caller acting for a user must pass that user's groups (possibly an empty tuple, which sees only
public chunks when ``public_when_no_groups`` is True, and nothing else).
"""

from __future__ import annotations

import logging
import time
from typing import Iterable

from indexers.filters import Filter
from indexers.ports import Embedder, SearchIndex
from indexers.records import Chunk, SearchHit, SearchMode, SearchRequest
from retrieval.errors import RetrievalError

log = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("hybrid", "vector", "text")


class Retriever:
    """Searches ``index`` for a query, embedding it with ``embedder`` when the mode needs a vector."""

    def __init__(self, index: SearchIndex, embedder: Embedder, *, public_when_no_groups: bool = True,
                 k_candidates: int | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.public_when_no_groups = public_when_no_groups
        self.k_candidates = k_candidates
        self.last_timings: dict[str, float] = {}

    def build_request(self, query: str, *, top: int = 5, mode: SearchMode = "hybrid", filter: Filter | None = None,
                      groups: Iterable[str] | None = None) -> SearchRequest:
        """The ``SearchRequest`` for ``query`` (embeds the query for vector and hybrid modes)."""
        if mode not in MODES:
            raise RetrievalError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if not query or not query.strip():
            raise RetrievalError("the search query is empty")
        vector = None
        t0 = time.perf_counter()
        if mode in ("vector", "hybrid"):
            vector = tuple(float(x) for x in self.embedder.embed_query(query))
        self.last_timings = {"embed_ms": (time.perf_counter() - t0) * 1000}
        return SearchRequest(
            text=query if mode in ("text", "hybrid") else None,
            vector=vector,
            mode=mode,
            top=top,
            filter=filter,
            groups=None if groups is None else tuple(groups),
            public_when_no_groups=self.public_when_no_groups,
            k_candidates=self.k_candidates,
        )

    def get_chunk(self, chunk_id: str, *, groups: Iterable[str] | None = None) -> Chunk | None:
        """The chunk ``chunk_id`` if the caller with ``groups`` may see it (the trimming of ``search``), else None."""
        found = self.index.get_chunks([chunk_id], groups=None if groups is None else tuple(groups),
                                      public_when_no_groups=self.public_when_no_groups)
        return found[0] if found else None

    def search(self, query: str, *, top: int = 5, mode: SearchMode = "hybrid", filter: Filter | None = None,
               groups: Iterable[str] | None = None) -> list[SearchHit]:
        """The ``top`` best hits for ``query``, best first. ``groups=None``: no security trimming (trusted caller)."""
        request = self.build_request(query, top=top, mode=mode, filter=filter, groups=groups)
        t0 = time.perf_counter()
        hits = self.index.search(request)
        self.last_timings["search_ms"] = (time.perf_counter() - t0) * 1000
        log.debug("search mode=%s top=%d trimmed=%s -> %d hits", mode, top, groups is not None, len(hits))
        return list(hits)
