"""Token-aware, heading-aware chunking of a ``ParsedDocument`` into ``Chunk`` records.

``chunk_document`` is a pure, deterministic function. It cuts the document into *units* and
packs whole units greedily into chunks of at most ``ChunkingConfig.chunk_size`` tokens
(counted with tiktoken through ``indexers.tokens.get_encoding``):

- text and list elements are cut into sentences by ``indexers.text.sentence_spans`` (a newline
  is always a boundary; it knows common abbreviations ("e.g.", "Dr.", "No. 5", "et al."),
  initials, decimals, list enumerators, inline bullets and upper-case labels);
- a title element is one unit; it updates the heading path ("H1 > H2") that becomes the
  ``section`` of the chunks, and a new chunk starts at a heading once the current one is
  filled past ``heading_break_fill``; a heading is never left dangling at the end of a chunk;
- a Markdown table that fits in ``chunk_size`` is one unit (it moves whole to a new chunk when
  it does not fit in the current one); a larger one is cut into rows, and every chunk that
  continues it starts with the header and separator rows again; a row is never cut unless it
  alone exceeds ``chunk_size``;
- only a unit that alone exceeds ``chunk_size`` (a giant sentence or row) is cut, on token
  boundaries, as a last resort; each of its pieces is a chunk of its own.

Consecutive chunks overlap: a chunk starts with the last whole sentences of the previous one
whose tokens add up to at most ``overlap`` (no overlap right before a heading or inside a
continued table). Every chunk's exact token count is checked before it is emitted, so no
chunk ever exceeds ``chunk_size`` tokens. Each unit is encoded once and each chunk once more
for that check, so the work is linear in the size of the document.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import regex
import tiktoken

from indexers.errors import ConfigError
from indexers.records import PAGE_OFFSETS_KEY, Chunk, chunk_id_for
from indexers.text import line_spans, sentence_spans
from indexers.tokens import DEFAULT_ENCODING, get_encoding
from pipelines.records import ParsedDocument, SourceItem

__all__ = ["ChunkingConfig", "chunk_document"]

logger = logging.getLogger(__name__)

MIN_CHUNK_SIZE = 16


@dataclass(frozen=True)
class ChunkingConfig:
    """How to cut documents into chunks; validates itself on construction.

    - ``chunk_size``: the most tokens a chunk may hold (>= 16).
    - ``overlap``: at most this many tokens of whole sentences are repeated from the end of the
      previous chunk (0 <= overlap < chunk_size / 2).
    - ``encoding``: the tiktoken encoding tokens are counted with.
    - ``heading_break_fill``: a heading starts a new chunk once the current chunk holds more than
      this fraction of ``chunk_size`` (0 < heading_break_fill <= 1; 1 disables the break).
    - ``page_bounded``: when True, a chunk of a paged document never crosses a page boundary
      (a new page starts a new chunk, and overlap never reaches back into the previous page);
      when False (the default, see ``bench/pages.py``), chunks run across pages and record where
      each page starts (``PAGE_OFFSETS_KEY``).
    """

    chunk_size: int = 512
    overlap: int = 51
    encoding: str = DEFAULT_ENCODING
    heading_break_fill: float = 0.5
    page_bounded: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int):
            raise ConfigError(f"chunk_size must be an integer number of tokens, not {self.chunk_size!r}")
        if self.chunk_size < MIN_CHUNK_SIZE:
            raise ConfigError(f"chunk_size ({self.chunk_size}) must be at least {MIN_CHUNK_SIZE} tokens")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int):
            raise ConfigError(f"overlap must be an integer number of tokens, not {self.overlap!r}")
        if self.overlap < 0:
            raise ConfigError(f"overlap ({self.overlap}) must not be negative")
        if self.overlap * 2 >= self.chunk_size:
            raise ConfigError(
                f"overlap ({self.overlap}) must be smaller than half of chunk_size ({self.chunk_size})"
            )
        if not isinstance(self.encoding, str) or self.encoding not in tiktoken.list_encoding_names():
            raise ConfigError(
                f"encoding {self.encoding!r} is not a tiktoken encoding; known: "
                + ", ".join(sorted(tiktoken.list_encoding_names()))
            )
        fill = self.heading_break_fill
        if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0 < fill <= 1:
            raise ConfigError(f"heading_break_fill ({fill!r}) must be a number in (0, 1]")
        if not isinstance(self.page_bounded, bool):
            raise ConfigError(f"page_bounded must be True or False, not {self.page_bounded!r}")


# ---------------------------------------------------------------------------------------------
# Units

_SENT = 0  # a whole sentence or line
_FRAG = 1  # a piece of a sentence/row cut on token boundaries (last resort)
_HEAD = 2  # a heading (title element)
_TABLE = 3  # a whole table
_THEAD = 4  # header + separator rows of a table that is cut into rows
_ROW = 5  # one row of a table that is cut into rows

# the delimiter row of a Markdown (GFM) table, matched with fullmatch: | --- | :-: | ---: |
_MD_SEPARATOR = regex.compile(r"\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*")


@dataclass(slots=True)
class _Unit:
    start: int  # span in doc.text, without surrounding whitespace
    end: int
    tokens: int  # exact token count of doc.text[start:end]
    kind: int
    page: int | None
    section: str
    header: int = -1  # for _ROW (and _FRAG of a row): index of the table's _THEAD unit


class _Cutter:
    """Builds the unit list of one document."""

    def __init__(self, text: str, config: ChunkingConfig) -> None:
        self.text = text
        self.size = config.chunk_size
        self.enc = get_encoding(config.encoding)
        self.units: list[_Unit] = []

    def count(self, a: int, b: int) -> int:
        return len(self.enc.encode_ordinary(self.text[a:b]))

    def add(self, a: int, b: int, kind: int, page: int | None, section: str, *, header: int = -1) -> None:
        n = self.count(a, b)
        if n <= self.size:
            self.units.append(_Unit(a, b, n, kind, page, section, header))
        else:
            self.hard_split(a, b, page, section, header)

    def hard_split(self, a: int, b: int, page: int | None, section: str, header: int) -> None:
        """Cut ``text[a:b]`` on token boundaries into pieces of at most ``size`` tokens each."""
        piece = self.text[a:b]
        tokens = self.enc.encode_ordinary(piece)
        _, offsets = self.enc.decode_with_offsets(tokens)  # exact: the text holds no lone surrogates
        # token i may start a piece only if it starts a new character
        cuttable = [i == 0 or offsets[i] > offsets[i - 1] for i in range(len(tokens))]
        i, n = 0, len(tokens)
        while i < n:
            j = min(n, i + self.size)
            while True:
                while j < n and j > i + 1 and not cuttable[j]:
                    j -= 1
                ca = a + offsets[i]
                cb = b if j >= n else a + offsets[j]
                # strip whitespace at the cut so pieces read well and spans stay tight
                sa, sb = ca, cb
                while sa < sb and self.text[sa].isspace():
                    sa += 1
                while sb > sa and self.text[sb - 1].isspace():
                    sb -= 1
                cnt = self.count(sa, sb) if sb > sa else 0
                if cnt <= self.size or j <= i + 1:
                    break
                j = max(i + 1, j - max(1, cnt - self.size))
            if sb > sa:
                self.units.append(_Unit(sa, sb, cnt, _FRAG, page, section, header))
            i = j

    def prose(self, a: int, b: int, page: int | None, section: str) -> None:
        for sa, sb in sentence_spans(self.text, a, b):
            self.add(sa, sb, _SENT, page, section)

    def table(self, a: int, b: int, page: int | None, section: str) -> None:
        n = self.count(a, b)
        if n <= self.size:
            self.units.append(_Unit(a, b, n, _TABLE, page, section))
            return
        lines = line_spans(self.text, a, b)
        header = -1
        rows = lines
        if (
            len(lines) >= 2
            and "|" in self.text[lines[0][0]:lines[0][1]]
            and _MD_SEPARATOR.fullmatch(self.text, lines[1][0], lines[1][1])
        ):
            ha, hb = lines[0][0], lines[1][1]
            hn = self.count(ha, hb)
            if hn < self.size // 2:  # a header that leaves room for rows is repeated
                header = len(self.units)
                self.units.append(_Unit(ha, hb, hn, _THEAD, page, section))
                rows = lines[2:]
            else:
                rows = lines
        for ra, rb in rows:
            self.add(ra, rb, _ROW, page, section, header=header)


_SURROGATE = regex.compile(r"[\ud800-\udfff]")


def _clean_text(doc: ParsedDocument) -> str:
    """``doc.text`` with lone surrogates (not valid Unicode) replaced by U+FFFD, same length."""
    text = doc.text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


def _cut_units(doc: ParsedDocument, config: ChunkingConfig) -> tuple[str, list[_Unit]]:
    text = _clean_text(doc)
    cutter = _Cutter(text, config)
    headings: list[tuple[int, str]] = []
    section = ""
    pos = 0
    for el in doc.elements:
        a, b = pos, pos + len(el.text)
        pos = b + 2  # the "\n\n" that joins elements in ParsedDocument.text
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a == b:
            continue
        if el.kind == "title":
            level = el.level if el.level is not None and el.level > 0 else 1
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, " ".join(text[a:b].split())))
            section = " > ".join(h for _, h in headings)
            n = cutter.count(a, b)
            if n <= config.chunk_size:
                cutter.units.append(_Unit(a, b, n, _HEAD, el.page, section))
            else:
                cutter.prose(a, b, el.page, section)
        elif el.kind == "table":
            cutter.table(a, b, el.page, section)
        else:
            cutter.prose(a, b, el.page, section)
    return text, cutter.units


# ---------------------------------------------------------------------------------------------
# Packing


@dataclass(frozen=True, slots=True)
class _Span:
    first: int  # unit indices, inclusive
    last: int
    overlap: int  # how many leading units repeat the previous chunk
    header: int  # _THEAD unit index prefixed to the content, or -1
    content: str


class _Packer:
    def __init__(self, text: str, units: list[_Unit], config: ChunkingConfig) -> None:
        self.text = text
        self.units = units
        self.size = config.chunk_size
        self.overlap = config.overlap
        self.break_at = config.heading_break_fill * config.chunk_size
        self.page_bounded = config.page_bounded
        self.enc = get_encoding(config.encoding)
        self.spans: list[_Span] = []

    def content(self, first: int, last: int, header: int) -> str:
        body = self.text[self.units[first].start:self.units[last].end]
        if header >= 0:
            h = self.units[header]
            return self.text[h.start:h.end] + "\n" + body
        return body

    def estimate(self, first: int, end: int, header: int) -> int:
        """Estimated tokens of units[first:end] (plus header): their counts plus one per join."""
        units = self.units
        parts = [units[k].tokens for k in range(first, end)]
        if header >= 0:
            parts.append(units[header].tokens)
        return sum(parts) + max(0, len(parts) - 1)

    def run(self) -> list[_Span]:
        units, size = self.units, self.size
        n = len(units)
        i = 0
        first = 0  # first unit of the current chunk (overlap included)
        n_over = 0  # leading overlap units in the current chunk
        header = -1  # table header repeated at the top of the current chunk
        est = 0  # estimated tokens of the current chunk, see estimate()
        while i < n:
            u = units[i]
            sep = 1 if (i > first or header >= 0) else 0
            if i - first - n_over > 0:  # the chunk already holds new units
                if (
                    est + sep + u.tokens > size
                    or (u.kind == _HEAD and est > self.break_at)
                    or u.kind == _FRAG
                    or units[i - 1].kind == _FRAG
                    or (self.page_bounded and u.page != units[i - 1].page)
                ):  # pieces of an oversized sentence or row are chunks of their own
                    i = self.flush(first, i, n_over, header)
                    first, n_over, header, est = self.start_next(i)
                    continue
            elif est + sep + u.tokens > size:
                # only overlap (or a repeated table header) so far: shed it until u fits
                while n_over > 0 and self.estimate(first + 1, i + 1, header) > size:
                    first += 1
                    n_over -= 1
                if header >= 0 and self.estimate(first, i + 1, header) > size:
                    header = -1
                est = self.estimate(first, i, header)
                sep = 1 if (i > first or header >= 0) else 0
            est += sep + u.tokens
            i += 1
        # the rest; the exact count may still push a unit out of the chunk, hence the loop
        while first + n_over < n:
            i = self.flush(first, n, n_over, header, final=True)
            if i >= n:
                break
            first, n_over, header, _ = self.start_next(i)
        return self.spans

    def flush(self, first: int, end: int, n_over: int, header: int, *, final: bool = False) -> int:
        """Emit units[first:end] as a chunk; returns the index of the next unit to place."""
        units = self.units
        last = end - 1
        if not final:
            # never end a chunk on a heading or a table header: carry them to the next chunk
            while last > first + n_over and units[last].kind in (_HEAD, _THEAD):
                last -= 1
        content = self.content(first, last, header)
        # check the exact count (a lone unit's is known and fits); when the estimate was too low
        # (tokens merge differently across joins), shed overlap, then the table header, then
        # units from the end (they go to the next chunk)
        while not (first == last and header < 0) and len(self.enc.encode_ordinary(content)) > self.size:
            if n_over > 0:
                first += 1
                n_over -= 1
            elif last > first:
                last -= 1
            else:
                header = -1
            content = self.content(first, last, header)
        self.spans.append(_Span(first, last, n_over, header, content))
        return last + 1

    def start_next(self, i: int) -> tuple[int, int, int, int]:
        """(first, n_over, header, est) of the chunk that starts with unit ``i``."""
        units = self.units
        u = units[i]
        prev = self.spans[-1]
        if u.kind == _FRAG:  # a piece of an oversized sentence or row stands alone
            return i, 0, -1, 0
        if u.header >= 0:  # a continued table restarts with its header rows (if they fit), no overlap
            h = units[u.header]
            if h.tokens + 1 + u.tokens <= self.size:
                return i, 0, u.header, h.tokens
            return i, 0, -1, 0
        if u.kind == _HEAD or self.overlap == 0:
            return i, 0, -1, 0
        if self.page_bounded and units[i - 1].page != u.page:  # overlap never reaches into the previous page
            return i, 0, -1, 0
        # overlap: the last whole sentences of the previous chunk, at most `overlap` tokens, never
        # all of it (its first unit stays behind, so every chunk moves forward)
        first = i
        total = 0
        j = prev.last
        while j > prev.first and units[j].kind == _SENT:
            t = units[j].tokens + (1 if total else 0)
            if total + t > self.overlap:
                break
            total += t
            first = j
            j -= 1
        if first == i:
            return i, 0, -1, 0
        return first, i - first, -1, total


# ---------------------------------------------------------------------------------------------
# Public entry point


def chunk_document(doc: ParsedDocument, item: SourceItem, *, config: ChunkingConfig = ChunkingConfig()) -> list[Chunk]:
    """Cut ``doc`` (the parsed content of ``item``) into chunks of at most ``config.chunk_size`` tokens.

    Pure and deterministic: the same document, item and config always give the same chunks and ids.

    Offsets: ``char_start``/``char_end`` delimit the span of ``doc.text`` (the elements joined by
    ``"\\n\\n"``) the chunk covers, overlap included, without surrounding whitespace. The content
    is exactly ``doc.text[char_start:char_end]``, except for a chunk that continues a table cut
    into rows: its content is the table's header and separator rows, a newline, then
    ``doc.text[char_start:char_end]`` (the span starts at the first repeated row). Lone
    surrogates, which are not valid Unicode, are replaced by U+FFFD in the content (one
    character for one, so offsets are unaffected).

    ``page_start``/``page_end`` are the smallest and largest page of the elements the span
    touches (None when the format has no pages); ``section`` is the heading path
    ("Heading 1 > Heading 2") in effect at the first new (non-overlap) unit of the chunk.
    An empty document (no non-blank element) gives an empty list.
    """
    if not isinstance(config, ChunkingConfig):
        raise ConfigError(f"config must be a ChunkingConfig, not {type(config).__name__}")
    text, units = _cut_units(doc, config)
    if not units:
        return []
    spans = _Packer(text, units, config).run()

    title = item.title or doc.title or item.name
    filepath = item.filepath or item.name
    total = len(spans)
    chunks: list[Chunk] = []
    for index, sp in enumerate(spans):
        pages = [units[k].page for k in range(sp.first, sp.last + 1) if units[k].page is not None]
        metadata: dict[str, Any] = dict(item.metadata)
        if pages and min(pages) != max(pages):
            metadata[PAGE_OFFSETS_KEY] = _page_offsets(units, sp, text_len=len(sp.content))
        chunks.append(
            Chunk(
                id=chunk_id_for(item.id, index, sp.content, scope=item.scope),
                source_id=item.id,
                content=sp.content,
                chunk_index=index,
                title=title,
                url=item.url,
                filepath=filepath,
                page_start=min(pages) if pages else None,
                page_end=max(pages) if pages else None,
                char_start=units[sp.first].start,
                char_end=units[sp.last].end,
                section=units[min(sp.first + sp.overlap, sp.last)].section,
                groups=item.groups,
                metadata=metadata,
                source_version=item.version,
                source_chunks=total,
                scope=item.scope,
                source_stat=item.stat,
            )
        )
    logger.debug("chunked %s into %d chunks (%d units)", item.id, total, len(units))
    return chunks


def _page_offsets(units: list["_Unit"], sp: "_Span", *, text_len: int) -> list[list[int]]:
    """``[[offset_in_content, page], ...]`` at every page change inside the span (see ``Chunk.page_at``).

    A continued table's content starts with its repeated header, so offsets shift by that prefix.
    """
    start = units[sp.first].start
    shift = text_len - (units[sp.last].end - start)
    out: list[list[int]] = []
    for k in range(sp.first, sp.last + 1):
        page = units[k].page
        if page is not None and (not out or out[-1][1] != page):
            out.append([max(0, shift + units[k].start - start) if out else 0, page])
    return out
