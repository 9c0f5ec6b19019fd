"""Record types of the retrieval package: citations, grounded chat requests, retrieved documents, answers.

All are frozen dataclasses. ``Citation.to_oyd()`` renders a citation in Azure OpenAI On Your Data's
``context.citations`` item shape; ``RetrievedDocument.to_oyd()`` an ``all_retrieved_documents`` item.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping
from urllib.parse import urldefrag

from indexers.records import PAGE_OFFSETS_KEY, SearchHit



FilterReason = Literal["score", "top_n"]
"""Why a retrieved hit was not given to the model.

- ``score``: below the relevance threshold of the request's strictness (see ``retrieval.strictness``).
- ``top_n``: relevant enough but beyond ``top_n_documents`` or the prompt's token budget.

On Your Data names the second reason ``rerank``; the facade renders it that way.
"""


def page_url(url: str, page: int | None) -> str:
    """``url`` pointing at ``page`` (``#page=N``, the PDF open parameter) when both are known, else ``url``."""
    if not url or page is None:
        return url
    return f"{urldefrag(url).url}#page={page}"


def page_label(start: int | None, end: int | None) -> str:
    """``"3"``, ``"3-4"`` for a range, ``""`` when the source has no pages."""
    if start is None:
        return ""
    return str(start) if end in (None, start) else f"{start}-{end}"


@dataclass(frozen=True)
class Citation:
    """One source an answer cites: the text given to the model, where it comes from, and the cited page.

    ``page`` is the page of the sentence the answer cites (a chunk can span pages: ``page_start`` ..
    ``page_end``, with ``page_offsets`` saying where each page starts in ``content``). An answer
    citing one chunk for sentences on two pages cites it twice, once per page.
    """

    content: str
    title: str = ""
    url: str = ""
    filepath: str = ""
    chunk_id: str = ""
    page: int | None = None
    source_id: str = ""
    page_start: int | None = None
    page_end: int | None = None
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
            page_start=c.page_start,
            page_end=c.page_end if c.page_end is not None else c.page_start,
            page_offsets=tuple((int(o), int(p)) for o, p in c.metadata.get(PAGE_OFFSETS_KEY, ()) or ()),
        )

    def page_at(self, offset: int) -> int | None:
        """The page holding character ``offset`` of ``content`` (``page_start`` when the chunk has one page)."""
        page = self.page_start if self.page_start is not None else self.page
        for start, p in self.page_offsets:
            if start > offset:
                break
            page = p
        return page

    def at_page(self, page: int | None) -> "Citation":
        """This citation pointing at ``page`` (one of its pages)."""
        return self if page == self.page else replace(self, page=page)

    @property
    def pages(self) -> str:
        """The chunk's page range as a label: ``"3"``, ``"3-4"``, or ``""`` (see ``page_label``)."""
        return page_label(self.page_start, self.page_end)

    @property
    def ref(self) -> str:
        """``file#page=N`` for paged sources, else ``file`` (the QA set's gold-citation notation)."""
        name = self.filepath or self.source_id or self.title
        return f"{name}#page={self.page}" if self.page is not None else name

    def to_oyd(self) -> dict[str, Any]:
        """An item of On Your Data's ``context.citations``: its keys (content, title, url, filepath,
        chunk_id) plus ``page``; ``url`` ends in ``#page=N`` for a paged document that has a url."""
        return {
            "content": self.content,
            "title": self.title or None,
            "url": page_url(self.url, self.page) or None,
            "filepath": self.filepath or None,
            "chunk_id": self.chunk_id or None,
            "page": self.page,
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
class Claim:
    """One sentence of an answer and what it cites.

    - ``text``: the sentence without its citation markers;
    - ``sources``: the numbers N of the ``[docN]`` markers it carries (``Answer.citations[N-1]``);
    - ``pages``: for each of them, the page of the sentence of that source which the claim rests on
      (None for a source without pages).
    """

    text: str
    sources: tuple[int, ...] = ()
    pages: tuple[int | None, ...] = ()

    def __post_init__(self) -> None:
        if len(self.pages) != len(self.sources):
            raise ValueError("Claim.pages must give one page per cited source")


@dataclass(frozen=True)
class Answer:
    """The answer to one question, as an ``Answerer`` returns it (``retrieval.answerer``).

    - ``content``: the answer text, its ``[docN]`` markers renumbered 1..k in order of first use.
    - ``citations``: ``citations[N-1]`` is what ``[docN]`` points at (a chunk cited on two of its
      pages is two citations).
    - ``claims``: the answer's sentences with their citations and pages; what eval, the CLI and the
      On-Your-Data facade read (nothing downstream re-parses ``content``).
    - ``abstained``: True when the answer says the retrieved data does not hold the answer.
    - ``search_query`` / ``intent``: the query the retrieval used (On Your Data's ``intent``).
    - ``retrieved``: every hit of the search with its ``filter_reason`` (None: given to the model).
    - ``unknown_markers_removed``: markers that pointed at no source and were removed.
    - ``extractive``: True when no language model wrote the answer.
    - ``latency_ms``: per stage (``rewrite``, ``search``, ``prompt``, ``generate``, ``total``).
    """

    content: str
    citations: tuple[Citation, ...]
    search_query: str
    claims: tuple[Claim, ...] = ()
    abstained: bool = False
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
