"""The retriever: turns a question into a ``SearchRequest`` (text, vector or hybrid) and runs it on an index.

Hybrid fusion (RRF) is the index backend's job, as in Azure AI Search; the retriever never fuses.

Security trimming: ``groups`` is always passed through to the index, deny by default. The default
``()`` sees only chunks without groups (when ``public_when_no_groups`` is True, else nothing); a
caller acting for a user passes that user's groups. ``groups=ALL_GROUPS``
(``indexers.records.ALL_GROUPS``) turns trimming off: the one explicit way to see everything.
Anything else (``None``, a bare string...) is a ``TypeError`` (``indexers.records.check_groups``).
"""

from __future__ import annotations

import logging
import time

from indexers.filters import Filter
from indexers.ports import Embedder, SearchIndex
from indexers.records import ALL_GROUPS, Chunk, Groups, SearchHit, SearchMode, SearchRequest, check_groups
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
                      groups: Groups = ()) -> SearchRequest:
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
            groups=check_groups(groups),
            public_when_no_groups=self.public_when_no_groups,
            k_candidates=self.k_candidates,
        )

    def get_chunk(self, chunk_id: str, *, groups: Groups = ()) -> Chunk | None:
        """The chunk ``chunk_id`` if the caller with ``groups`` may see it (the trimming of ``search``), else None."""
        groups = check_groups(groups)
        found = self.index.get_chunks([chunk_id], groups=groups,
                                      public_when_no_groups=self.public_when_no_groups)
        return found[0] if found else None

    def search(self, query: str, *, top: int = 5, mode: SearchMode = "hybrid", filter: Filter | None = None,
               groups: Groups = ()) -> list[SearchHit]:
        """The ``top`` best hits for ``query`` that a caller with ``groups`` may see, best first."""
        request = self.build_request(query, top=top, mode=mode, filter=filter, groups=groups)
        t0 = time.perf_counter()
        hits = self.index.search(request)
        self.last_timings["search_ms"] = (time.perf_counter() - t0) * 1000
        log.debug("search mode=%s top=%d trimmed=%s -> %d hits", mode, top, request.groups is not ALL_GROUPS, len(hits))
        return list(hits)
