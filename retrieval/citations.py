"""Citation parsing: ``[docN]`` markers in an answer -> ``Citation``s in order of first use, renumbered 1..k.

Accepted marker forms: ``[doc1]``, ``[doc1][doc2]`` and ``[doc1, doc2]`` (case-insensitive, optional
spaces). Markers pointing at no source are removed and counted; a marker listing several sources
keeps the valid ones and is rewritten as adjacent single markers (``[doc1][doc2]``). Text outside
markers is left exactly as it was. Pure and deterministic.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Sequence

from retrieval.records import Citation, best_matching_span

MARKER = re.compile(r"\[\s*(doc\s*\d+(?:\s*,\s*doc\s*\d+)*)\s*\]", re.IGNORECASE)
_NUM = re.compile(r"\d+")


@dataclass(frozen=True)
class ParsedAnswer:
    """The renumbered text, the cited sources (``citations[N-1]`` is ``[docN]``), and what was removed.

    ``source_numbers[i]`` is the original (prompt) number of ``citations[i]``.
    """

    text: str
    citations: tuple[Citation, ...]
    source_numbers: tuple[int, ...]
    unknown_markers_removed: int


def marker_numbers(text: str) -> list[list[int]]:
    """The source numbers of every marker in ``text``, one list per marker, in order."""
    return [[int(n) for n in _NUM.findall(m.group(1))] for m in MARKER.finditer(text)]


def parse_citations(answer: str, sources: Sequence[Citation]) -> ParsedAnswer:
    """Parse ``answer`` against the ``sources`` given to the model (``[docN]`` is ``sources[N-1]``)."""
    renumber: dict[int, int] = {}
    order: list[int] = []
    claims: dict[int, str] = {}  # the text a source was first cited for
    removed = 0
    last_end = 0

    def replace(m: re.Match[str]) -> str:
        nonlocal removed, last_end
        claim = answer[last_end:m.start()]
        last_end = m.end()
        out = []
        for n in (int(x) for x in _NUM.findall(m.group(1))):
            if not 1 <= n <= len(sources):
                removed += 1
                continue
            if n not in renumber:
                renumber[n] = len(order) + 1
                order.append(n)
                claims[n] = claim
            out.append(f"[doc{renumber[n]}]")
        return "".join(out)

    text = MARKER.sub(replace, answer)
    return ParsedAnswer(
        text=text,
        citations=tuple(replace_page(sources[n - 1], claims[n]) for n in order),
        source_numbers=tuple(order),
        unknown_markers_removed=removed,
    )


def locate_claim(claim: str, content: str) -> tuple[int, int] | None:
    """Where the sentence a claim cites stands in a source's ``content``: ``(start, end)`` or None.

    A claim that quotes the source (extractive answers do, with whitespace collapsed) is found word
    for word, ignoring case, spacing and the claim's final punctuation; otherwise the sentence or
    line sharing the most words with the claim is taken (``best_matching_span``).
    """
    words = re.findall(r"\S+", MARKER.sub(" ", claim))
    if words:
        words[-1] = words[-1].rstrip(".!?;:,") or words[-1]
        exact = re.search(r"\s+".join(re.escape(w) for w in words), content, re.IGNORECASE)
        if exact and len(exact.group()) >= 12:
            start, end = exact.span()
            return (start, end + 1) if end < len(content) and content[end] in ".!?" else (start, end)
    span = best_matching_span(claim, content)
    if span is None:
        return None
    start, end = span
    while start < end and content[start].isspace():
        start += 1
    return (start, end + 1) if end < len(content) and content[end] in ".!?" else (start, end)


def replace_page(citation: Citation, claim: str) -> Citation:
    """The citation with its page set to where the claim's supporting sentence stands."""
    page = citation.page_for(claim)
    return citation if page == citation.page else dataclasses.replace(citation, page=page)


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
        def replace(m: re.Match[str]) -> str:
            keep = []
            for n in (int(x) for x in _NUM.findall(m.group(1))):
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
            if not re.fullmatch(r"\[\s*(d(o(c(\s*\d*(\s*,\s*(d(o(c\s*\d*)?)?)?)*)?)?)?)?\s*", self._buf, re.IGNORECASE):
                ready, self._buf = ready + self._buf, ""
        else:
            ready, self._buf = self._buf, ""
        return self._fix(ready)

    def flush(self) -> str:
        out, self._buf = self._fix(self._buf), ""
        return out
