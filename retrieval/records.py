"""Record types of the retrieval package: citations, grounded chat requests, retrieved documents, answers.

All are frozen dataclasses. ``Citation.to_oyd()`` renders a citation in Azure OpenAI On Your Data's
``context.citations`` item shape; ``RetrievedDocument.to_oyd()`` an ``all_retrieved_documents`` item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import re

from indexers.records import PAGE_OFFSETS_KEY, SearchHit

_WORD = re.compile(r"\w{3,}")
_SENTENCE = re.compile(r"[^.!?\n]+")


def best_matching_span(claim: str, content: str) -> tuple[int, int] | None:
    """``(start, end)`` of the sentence (or line) of ``content`` sharing the most words with ``claim``."""
    words = {w.lower() for w in _WORD.findall(claim)}
    best, where = 0, None
    for m in _SENTENCE.finditer(content):
        score = len(words & {w.lower() for w in _WORD.findall(m.group())})
        if score > best:
            best, where = score, m.span()
    return where


def best_matching_offset(claim: str, content: str) -> int | None:
    """Start offset of the sentence (or line) of ``content`` sharing the most words with ``claim``."""
    span = best_matching_span(claim, content)
    return None if span is None else span[0]

FilterReason = Literal["score", "top_n"]
"""Why a retrieved hit was not given to the model.

- ``score``: below the relevance threshold of the request's strictness (see ``retrieval.strictness``).
- ``top_n``: relevant enough but beyond ``top_n_documents`` or the prompt's token budget.

On Your Data names the second reason ``rerank``; the facade renders it that way.
"""


@dataclass(frozen=True)
class Citation:
    """One source an answer cites: the text given to the model and where it comes from."""

    content: str
    title: str = ""
    url: str = ""
    filepath: str = ""
    chunk_id: str = ""
    page: int | None = None
    source_id: str = ""
    #: Where each page starts in ``content`` when the chunk spans pages (see ``Chunk.page_at``).
    page_offsets: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_hit(cls, hit: SearchHit, *, content: str | None = None) -> "Citation":
        c = hit.chunk
        return cls(
            content=c.content if content is None else content,
            title=c.title,
            url=c.url,
            filepath=c.filepath,
            chunk_id=c.id,
            page=c.page_start,
            source_id=c.source_id,
            page_offsets=tuple((int(o), int(p)) for o, p in c.metadata.get(PAGE_OFFSETS_KEY, ()) or ()),
        )

    def page_for(self, claim: str) -> int | None:
        """The page of the sentence of ``content`` that best matches ``claim`` (``page`` if unknown).

        A chunk can span pages; citing the page where the supporting sentence stands is what a
        reader (and a page-level citation metric) needs.
        """
        if not self.page_offsets:
            return self.page
        offset = best_matching_offset(claim, self.content)
        if offset is None:
            return self.page
        page = self.page
        for start, p in self.page_offsets:
            if start > offset:
                break
            page = p
        return page

    @property
    def ref(self) -> str:
        """``file#page=N`` for paged sources, else ``file`` (the QA set's gold-citation notation)."""
        name = self.filepath or self.source_id or self.title
        return f"{name}#page={self.page}" if self.page is not None else name

    def to_oyd(self) -> dict[str, Any]:
        """An item of On Your Data's ``context.citations``: content, title, url, filepath, chunk_id."""
        return {
            "content": self.content,
            "title": self.title or None,
            "url": self.url or None,
            "filepath": self.filepath or None,
            "chunk_id": self.chunk_id or None,
        }


@dataclass(frozen=True)
class Source:
    """A hit given to the model as ``[docN]`` (``n`` is 1-based); ``content`` may be cut to fit the budget."""

    n: int
    hit: SearchHit
    content: str
    rank: int = 0
    truncated: bool = False

    def citation(self) -> Citation:
        return Citation.from_hit(self.hit, content=self.content)


@dataclass(frozen=True)
class RetrievedDocument:
    """A hit of the search with what happened to it: ``filter_reason`` None means it went into the prompt."""

    hit: SearchHit
    rank: int
    search_query: str
    filter_reason: FilterReason | None = None

    def to_oyd(self, *, data_source_index: int = 0) -> dict[str, Any]:
        """An item of On Your Data's ``all_retrieved_documents``."""
        out = Citation.from_hit(self.hit).to_oyd()
        out.update(
            {
                "search_queries": [self.search_query],
                "data_source_index": data_source_index,
                "original_search_score": self.hit.score,
                "rerank_score": None,
                "filter_reason": {"score": "score", "top_n": "rerank"}.get(self.filter_reason or "", None),
            }
        )
        return out


@dataclass(frozen=True)
class GroundedRequest:
    """Messages ready for ``client.chat.completions.create(messages=...)``, and what went into them.

    - ``sources``: the numbered hits in the prompt (``[doc1]`` is ``sources[0]``).
    - ``dropped``: hits left out, each with its ``filter_reason``.
    - ``search_query``: the (possibly rewritten) query the hits were searched with.
    """

    messages: tuple[Mapping[str, str], ...]
    sources: tuple[Source, ...]
    dropped: tuple[RetrievedDocument, ...] = ()
    search_query: str = ""
    question: str = ""
    in_scope: bool = True
    strictness: int = 3
    context_tokens: int = 0

    def citations(self) -> list[Citation]:
        return [s.citation() for s in self.sources]

    def retrieved(self) -> list[RetrievedDocument]:
        """Every hit, in search rank order, with its filter reason (None for those in the prompt)."""
        kept = [RetrievedDocument(s.hit, rank=s.rank, search_query=self.search_query) for s in self.sources]
        return sorted(kept + list(self.dropped), key=lambda d: d.rank)


@dataclass(frozen=True)
class Answer:
    """The answer to one question.

    - ``content``: the answer text, its ``[docN]`` markers renumbered 1..k in order of first use.
    - ``citations``: ``citations[N-1]`` is what ``[docN]`` points at.
    - ``search_query`` / ``intent``: the query the retrieval used (On Your Data's ``intent``).
    - ``retrieved``: every hit of the search with its ``filter_reason`` (None: given to the model).
    - ``unknown_markers_removed``: markers that pointed at no source and were removed.
    - ``extractive``: True when no language model wrote the answer.
    - ``latency_ms``: per stage (``rewrite``, ``search``, ``prompt``, ``generate``, ``citations``, ``total``).
    """

    content: str
    citations: tuple[Citation, ...]
    search_query: str
    retrieved: tuple[RetrievedDocument, ...] = ()
    unknown_markers_removed: int = 0
    extractive: bool = False
    finish_reason: str = "stop"
    usage: Mapping[str, int] = field(default_factory=dict)
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    request: GroundedRequest | None = None

    @property
    def intent(self) -> list[str]:
        return [self.search_query]

    @property
    def abstained(self) -> bool:
        """True when the answer says the information is not in the retrieved data."""
        from retrieval.prompt import is_abstention

        return is_abstention(self.content)
