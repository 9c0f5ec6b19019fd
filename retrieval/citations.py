"""The language model's answer parser: ``[docN]`` markers -> claims, cited pages and renumbered citations.

``parse_citations(answer, sources)`` reads an answer a chat model wrote against the numbered
``sources`` of its prompt (``[docN]`` is ``sources[N-1]``). Marker forms are those of
``indexers.text.MARKER``: ``[doc1]``, ``[doc1][doc2]`` and ``[doc1, doc2]``.

- The answer is cut into sentences (``indexers.text.sentence_spans``, markers blanked out); each
  marker belongs to the sentence it stands in, or to the one before it ("Fact. [doc1] Next fact").
  Every sentence is a ``Claim`` with the sources its markers name.
- Each (claim, source) resolves the page of the source sentence that shares the most terms with
  the claim (a chunk can span pages; see ``locate_claim``).
- Citations are numbered 1..k in order of first use of each (source, page): a chunk cited for
  sentences on two of its pages becomes two citations. Markers are rewritten with these numbers
  (a list marker as adjacent single markers); markers pointing at no source are removed and
  counted. Text outside markers is left exactly as it was.

This is the only place that parses answer text; the extractive answerer builds its claims
directly. ``StreamingMarkerFilter`` removes unknown markers from a stream without renumbering.
Pure and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import re

from indexers.text import MARKER, MARKER_PREFIX, marker_numbers, sentence_spans, strip_markers, terms
from retrieval.records import Citation, Claim


@dataclass(frozen=True)
class ParsedAnswer:
    """The renumbered text, the cited sources (``citations[N-1]`` is ``[docN]``), the claims, and what was removed.

    ``source_numbers[i]`` is the original (prompt) number of ``citations[i]``.
    """

    text: str
    citations: tuple[Citation, ...]
    source_numbers: tuple[int, ...]
    unknown_markers_removed: int
    claims: tuple[Claim, ...] = ()


def locate_claim(claim: str, content: str) -> tuple[int, int] | None:
    """Where the sentence a claim cites stands in a source's ``content``: ``(start, end)`` or None.

    A claim that quotes the source (extractive answers do, with whitespace collapsed) is found word
    for word, ignoring case, spacing and the claim's final punctuation; otherwise the sentence of
    ``content`` (``indexers.text.sentence_spans``) sharing the most terms (stems) with the claim.
    """
    quoted = strip_markers(claim).split()
    if quoted:
        quoted[-1] = quoted[-1].rstrip(".!?;:,") or quoted[-1]
        exact = re.search(r"\s+".join(re.escape(w) for w in quoted), content, re.IGNORECASE)
        if exact and len(exact.group()) >= 12:
            start, end = exact.span()
            return (start, end + 1) if end < len(content) and content[end] in ".!?" else (start, end)
    wanted = set(terms(claim))
    best, where = 0, None
    for a, b in sentence_spans(content):
        score = len(wanted & set(terms(content[a:b])))
        if score > best:
            best, where = score, (a, b)
    return where


def cited_page(citation: Citation, claim: str) -> int | None:
    """The page of the sentence of ``citation`` that ``claim`` rests on (the chunk's first page if unknown)."""
    if not citation.page_offsets:
        return citation.page
    span = locate_claim(claim, citation.content)
    return citation.page if span is None else citation.page_at(span[0])


def parse_citations(answer: str, sources: Sequence[Citation]) -> ParsedAnswer:
    """Parse ``answer`` against the ``sources`` given to the model (``[docN]`` is ``sources[N-1]``)."""
    markers = list(MARKER.finditer(answer))
    # sentences of the text with its markers blanked out (same offsets): "Fact. [doc1] Next" splits after "Fact."
    spans = sentence_spans(MARKER.sub(lambda m: " " * len(m.group()), answer))

    # which sentence each marker belongs to: the one it stands in, else the one before it
    owner: list[int] = []
    for m in markers:
        i = 0
        for k, (a, _) in enumerate(spans):
            if a <= m.start():
                i = k
        owner.append(i)

    per_sentence: dict[int, list[int]] = {}
    removed = 0
    for m, i in zip(markers, owner):
        for n in marker_numbers(m.group(1)):
            if 1 <= n <= len(sources):
                if n not in per_sentence.setdefault(i, []):
                    per_sentence[i].append(n)
            else:
                removed += 1

    texts = {i: strip_markers(answer[a:b]) for i, (a, b) in enumerate(spans)}
    pages = {(i, n): cited_page(sources[n - 1], texts.get(i, "")) for i, ns in per_sentence.items() for n in ns}

    number: dict[tuple[int, int | None], int] = {}  # (prompt number, page) -> citation number
    order: list[tuple[int, int | None]] = []

    def renumber(key: tuple[int, int | None]) -> int:
        if key not in number:
            number[key] = len(order) + 1
            order.append(key)
        return number[key]

    owners = iter(owner)  # MARKER.sub visits the markers in the same order as finditer

    def replace(m) -> str:
        i = next(owners)
        out = []
        for n in marker_numbers(m.group(1)):
            if 1 <= n <= len(sources):
                out.append(f"[doc{renumber((n, pages[(i, n)]))}]")
        return "".join(out)

    text = MARKER.sub(replace, answer)

    claims = []
    for i, _ in enumerate(spans):
        if not texts[i]:
            continue
        ns = per_sentence.get(i, [])
        cited = tuple(number[(n, pages[(i, n)])] for n in ns)
        claims.append(Claim(text=texts[i], sources=cited, pages=tuple(pages[(i, n)] for n in ns)))
    return ParsedAnswer(
        text=text,
        citations=tuple(sources[n - 1].at_page(page) for n, page in order),
        source_numbers=tuple(n for n, _ in order),
        unknown_markers_removed=removed,
        claims=tuple(claims),
    )


class StreamingMarkerFilter:
    """Removes markers pointing at no source from streamed text without renumbering the others.

    Feed deltas with ``feed``; text that could still be the start of a marker is held back until it
    is decided; ``flush`` returns what is left at the end. Counts removed markers in ``removed``.
    """

    _MAX_HOLD = 64

    def __init__(self, n_sources: int) -> None:
        self.n_sources = n_sources
        self.removed = 0
        self._buf = ""

    def _fix(self, text: str) -> str:
        def replace(m) -> str:
            keep = []
            for n in marker_numbers(m.group(1)):
                if 1 <= n <= self.n_sources:
                    keep.append(f"[doc{n}]")
                else:
                    self.removed += 1
            return "".join(keep)

        return MARKER.sub(replace, text)

    def feed(self, delta: str) -> str:
        self._buf += delta
        cut = self._buf.rfind("[")
        if cut != -1 and "]" not in self._buf[cut:] and len(self._buf) - cut <= self._MAX_HOLD:
            ready, self._buf = self._buf[:cut], self._buf[cut:]
            if not MARKER_PREFIX.fullmatch(self._buf):
                ready, self._buf = ready + self._buf, ""
        else:
            ready, self._buf = self._buf, ""
        return self._fix(ready)

    def flush(self) -> str:
        out, self._buf = self._fix(self._buf), ""
        return out
