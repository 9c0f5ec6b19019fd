"""PDF parser built on pypdf: text page by page, with paragraphs, headings, lists and tables.

pypdf's plain extraction gives clean words but no structure, and its ``layout`` mode pads words
with runs of spaces ("in     -network"). We therefore use plain extraction with a *visitor*: pypdf
reports, for every piece of text it emits, the text matrix, the font and its size. From that each
output line gets a position and a font, which is enough to

- split paragraphs where the vertical gap between lines is larger than the usual line spacing;
- detect headings: bold or larger-than-body lines that are short and do not end like a sentence,
  numbered section lines ("3.2 Leave policy") and isolated Title Case lines; levels follow the
  font size ranking or the section numbering;
- detect list items (bullet glyphs, "1.", "a)") and keep each item as one element; a bulleted line is
  never a heading ("• Research"), nor is "2. …" right after "1. …" (else the list item would become
  the section of everything after it);
- keep tables: pypdf emits table cells as separate lines at the same height; consecutive rows of
  two or more cells become one Markdown table element (header row first), so no row is ever split;
- drop running headers/footers (lines at the top/bottom of most pages, digits ignored) and
  de-hyphenate words broken at line ends (see :mod:`pipelines.parsing.cleaning`).

Page numbers are 1-based. Password-protected PDFs are opened with the empty password when pypdf
allows it (owner-password-only PDFs), otherwise :class:`EncryptedDocumentError` is raised.
"""

from __future__ import annotations

import io
import logging
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Sequence

from pipelines.errors import CorruptDocumentError, EmptyDocumentError, EncryptedDocumentError
from pipelines.parsing.cleaning import (
    collapse_whitespace,
    continues_numbered_list,
    document_vocabulary,
    find_repeated_edge_lines,
    heading_level_from_numbering,
    is_list_item,
    is_title_case_heading,
    join_lines,
    normalize_unicode,
)
from pipelines.parsing.tables import markdown_table
from pipelines.records import Element, ParsedDocument

logger = logging.getLogger(__name__)

_BOLD_MARKERS = ("bold", "black", "heavy", "semibold", "demi")
_SENTENCE_END = (".", "!", "?", ":", ";")


@dataclass
class _Segment:
    """One line of pypdf output (text between two newlines) with the position of its first glyph."""

    text: str
    x: float
    y: float
    size: float
    bold: bool


@dataclass
class _Row:
    """Segments on the same baseline: one visual line; several segments = table cells."""

    cells: list[_Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(c.text for c in self.cells)

    @property
    def y(self) -> float:
        return self.cells[0].y

    @property
    def size(self) -> float:
        return max(c.size for c in self.cells)

    @property
    def bold(self) -> bool:
        return all(c.bold for c in self.cells)


class _PageCollector:
    """pypdf visitor that cuts the emitted text into positioned segments."""

    def __init__(self) -> None:
        self.segments: list[_Segment] = []
        self._parts: list[str] = []
        self._pos: tuple[float, float, float] | None = None
        self._bold = True

    def __call__(self, text: str, cm: Sequence[float], tm: Sequence[float], font: Any, font_size: float) -> None:
        pieces = text.split("\n")
        for i, piece in enumerate(pieces):
            if i > 0:
                self.flush()
            if not piece:
                continue
            self._parts.append(piece)
            if piece.strip():
                name = str((font or {}).get("/BaseFont", "")).lower() if hasattr(font, "get") else ""
                self._bold = self._bold and any(m in name for m in _BOLD_MARKERS)
                if self._pos is None:
                    self._pos = _position(cm, tm, font_size)

    def flush(self) -> None:
        text = normalize_unicode("".join(self._parts)).strip()
        if text and self._pos is not None:
            x, y, size = self._pos
            self.segments.append(_Segment(collapse_whitespace(text), x, y, size, self._bold))
        self._parts = []
        self._pos = None
        self._bold = True


def _position(cm: Sequence[float], tm: Sequence[float], font_size: float) -> tuple[float, float, float]:
    try:
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        scale = math.hypot(tm[2], tm[3]) * math.hypot(cm[2], cm[3])
    except (TypeError, IndexError):  # pragma: no cover - defensive: odd matrices from broken files
        return 0.0, 0.0, float(font_size or 0)
    size = float(font_size or 0) * (scale if scale > 0 else 1.0)
    return float(x), float(y), round(size, 1)


def _rows(segments: list[_Segment]) -> list[_Row]:
    rows: list[_Row] = []
    for seg in segments:
        if rows:
            last = rows[-1].cells[-1]
            if abs(seg.y - last.y) < 0.35 * max(seg.size, last.size, 1.0) and seg.x > last.x + 1.0:
                rows[-1].cells.append(seg)
                continue
        rows.append(_Row([seg]))
    return rows


@dataclass(frozen=True)
class PdfOptions:
    """Tunables of the PDF heuristics (defaults suit office-generated and typeset PDFs)."""

    header_footer_zone: int = 2
    paragraph_gap_ratio: float = 1.35
    heading_size_ratio: float = 1.12
    max_heading_words: int = 15

    def __post_init__(self) -> None:
        if self.header_footer_zone < 0:
            raise ValueError("header_footer_zone must be >= 0")
        if self.paragraph_gap_ratio <= 1.0:
            raise ValueError("paragraph_gap_ratio must be > 1")
        if self.heading_size_ratio <= 1.0:
            raise ValueError("heading_size_ratio must be > 1")


class PdfParser:
    """The Parser port for PDF files (pypdf)."""

    def __init__(self, *, options: PdfOptions | None = None) -> None:
        self.options = options or PdfOptions()

    def parse(self, data: bytes, *, source_id: str, name: str, content_type: str | None = None) -> ParsedDocument:
        reader = _open(data, source_id=source_id, name=name)
        page_rows, failed = _extract_rows(reader, source_id=source_id, name=name)
        if failed and failed == len(page_rows):
            raise CorruptDocumentError(
                f"The PDF '{name}' is damaged: none of its {failed} pages could be read.", doc_id=source_id
            )
        elements = _structure(page_rows, self.options)
        if not any(e.text.strip() for e in elements):
            raise EmptyDocumentError(
                f"The PDF '{name}' contains no extractable text (it may be a scanned document without OCR).",
                doc_id=source_id,
            )
        metadata: dict[str, Any] = {"parser": "pypdf"}
        if failed:
            metadata["unreadable_pages"] = failed
        return ParsedDocument(
            source_id=source_id,
            title=_title(reader, elements, name),
            elements=tuple(elements),
            page_count=len(page_rows),
            metadata=metadata,
        )


def _open(data: bytes, *, source_id: str, name: str) -> Any:
    from pypdf import PdfReader
    from pypdf import PasswordType

    if b"%PDF-" not in data[:1024]:
        raise CorruptDocumentError(f"The file '{name}' is not a PDF (it has no PDF header).", doc_id=source_id)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:  # pypdf raises many kinds of errors on damaged files
        logger.debug("pypdf could not open %s: %r", source_id, exc)
        raise CorruptDocumentError(
            f"The PDF '{name}' is damaged or truncated and could not be opened.", doc_id=source_id
        ) from exc
    if reader.is_encrypted:
        try:
            result = reader.decrypt("")
        except Exception as exc:
            raise EncryptedDocumentError(
                f"The PDF '{name}' is encrypted in a way that could not be opened.", doc_id=source_id
            ) from exc
        if result == PasswordType.NOT_DECRYPTED:
            raise EncryptedDocumentError(f"The PDF '{name}' is password-protected.", doc_id=source_id)
    try:
        _ = len(reader.pages)
    except Exception as exc:
        raise CorruptDocumentError(
            f"The PDF '{name}' is damaged: its page list could not be read.", doc_id=source_id
        ) from exc
    return reader


def _extract_rows(reader: Any, *, source_id: str, name: str) -> tuple[list[list[_Row]], int]:
    pages: list[list[_Row]] = []
    failed = 0
    for number, page in enumerate(reader.pages, start=1):
        collector = _PageCollector()
        try:
            page.extract_text(visitor_text=collector)
        except Exception as exc:  # one bad page must not lose the whole document
            failed += 1
            logger.warning("Page %d of %s could not be read and is skipped: %r", number, source_id, exc)
            pages.append([])
            continue
        collector.flush()
        pages.append(_rows(collector.segments))
    return pages, failed


# -- structure ------------------------------------------------------------------------------------


def _structure(page_rows: list[list[_Row]], options: PdfOptions) -> list[Element]:
    drop = find_repeated_edge_lines([[r.text for r in rows] for rows in page_rows], zone=options.header_footer_zone)
    page_rows = [[r for i, r in enumerate(rows) if i not in drop[p]] for p, rows in enumerate(page_rows)]
    all_rows = [r for rows in page_rows for r in rows]
    if not all_rows:
        return []

    sizes: Counter[float] = Counter()
    for r in all_rows:
        if len(r.cells) == 1:  # table cells often use a smaller font than the body text
            sizes[round(r.size * 2) / 2] += len(r.text)
    if not sizes:
        sizes[round(all_rows[0].size * 2) / 2] = 1
    body = sizes.most_common(1)[0][0] or 10.0
    deltas = [
        a.y - b.y
        for rows in page_rows
        for a, b in zip(rows, rows[1:])
        if 0 < a.y - b.y < 3 * body and abs(a.size - body) < 0.6
    ]
    line_gap = statistics.median(deltas) if deltas else body * 1.2
    vocab = document_vocabulary(r.text for r in all_rows)

    # heading candidates by font, ranked: larger first, bold before regular at equal size
    def font_key(r: _Row) -> tuple[float, bool]:
        return (round(r.size * 2) / 2, r.bold)

    def styled_heading(r: _Row) -> bool:
        text = r.text
        if len(r.cells) > 1 or len(text.split()) > options.max_heading_words or len(text) > 150:
            return False
        if text.endswith((".", ",", ";")) or not any(ch.isalpha() for ch in text):
            return False
        return r.size >= body * options.heading_size_ratio or (r.bold and r.size >= body * 0.95)

    styled_keys = sorted({font_key(r) for r in all_rows if styled_heading(r)}, key=lambda k: (-k[0], not k[1]))
    rank = {k: i + 1 for i, k in enumerate(styled_keys)}
    plain_level = len(styled_keys) + 1

    elements: list[Element] = []
    for page_number, rows in enumerate(page_rows, start=1):
        page_elements = _page_elements(rows, page_number, body, line_gap, vocab, styled_heading, rank, font_key,
                                       plain_level, options, elements[-1] if elements else None)
        if page_elements and elements:
            page_elements[0] = _continue_table(elements[-1], page_elements[0])
        elements.extend(page_elements)
    return elements


def _continue_table(previous: Element, first: Element) -> Element:
    """A table that starts a page and continues the previous page's table gets that table's header row."""
    if previous.kind != "table" or first.kind != "table":
        return first
    prev_lines, lines = previous.text.splitlines(), first.text.splitlines()
    if len(prev_lines) < 2 or len(lines) < 2 or prev_lines[1] != lines[1] or prev_lines[0] == lines[0]:
        return first  # different column count, or the header row is repeated on the new page
    return Element(kind="table", text="\n".join(prev_lines[:2] + [lines[0]] + lines[2:]), page=first.page)


def _page_elements(
    rows: list[_Row],
    page: int,
    body: float,
    line_gap: float,
    vocab: frozenset[str],
    styled_heading: Any,
    rank: dict[tuple[float, bool], int],
    font_key: Any,
    plain_level: int,
    options: PdfOptions,
    previous: Element | None = None,
) -> list[Element]:
    """The elements of one page; ``previous`` is the last element of the pages before (a list goes on across pages)."""
    out: list[Element] = []
    block: list[str] = []
    block_kind = "text"

    def flush() -> None:
        nonlocal block, block_kind
        if block:
            text = join_lines(block, vocabulary=vocab)
            if text:
                out.append(Element(kind=block_kind, text=text, page=page))  # type: ignore[arg-type]
        block = []
        block_kind = "text"

    def gap_between(a: _Row, b: _Row) -> bool:
        delta = a.y - b.y
        return delta <= 0 or delta > line_gap * options.paragraph_gap_ratio

    i = 0
    n = len(rows)
    while i < n:
        row = rows[i]
        prev = rows[i - 1] if i > 0 else None
        nxt = rows[i + 1] if i + 1 < n else None

        # tables: two or more consecutive multi-cell rows
        if len(row.cells) > 1:
            j = i
            while j < n and len(rows[j].cells) > 1:
                j += 1
            if j - i >= 2:
                flush()
                out.append(Element(kind="table", text=_table_markdown(rows[i:j]), page=page))
                i = j
                continue

        text = row.text
        break_before = prev is None or gap_between(prev, row)
        numbered = heading_level_from_numbering(text) if len(row.cells) == 1 else None
        level: int | None = None
        last = out[-1] if out else previous
        open_item = block[0] if block and block_kind == "list" else (last.text if last and last.kind == "list" else "")
        # "2. …" after "1. …", or "1. …" followed by "2. …": a numbered list, not numbered sections
        in_list = continues_numbered_list(open_item, text) or (
            nxt is not None and continues_numbered_list(text, nxt.text)
        )
        continues = (
            nxt is not None
            and len(nxt.cells) == 1
            and not gap_between(row, nxt)
            and font_key(nxt) == font_key(row)
            and nxt.text[:1].islower()
        )
        if in_list:
            pass  # "2. Familiarize yourself with …" after "1. Read …": the list goes on
        elif styled_heading(row) and not continues:
            level = numbered or rank.get(font_key(row), plain_level)
        elif len(row.cells) == 1 and (numbered or (is_title_case_heading(text) and not is_list_item(text))):
            before = break_before or prev is None or prev.text.endswith(_SENTENCE_END)
            after = (
                nxt is None
                or gap_between(row, nxt)
                or styled_heading(nxt)
                or is_list_item(nxt.text)
                or (nxt.text[:1].isupper() and numbered is not None)
            )
            if before and after:
                level = numbered or plain_level
        if level is not None:
            flush()
            # a heading wrapped onto two lines ("Northwind Health Plus" / "Benefits Details")
            if out and out[-1].kind == "title" and out[-1].level == min(level, 6) and not break_before:
                last = out.pop()
                out.append(Element(kind="title", text=f"{last.text} {text}", page=page, level=last.level))
            else:
                out.append(Element(kind="title", text=text, page=page, level=min(level, 6)))
            i += 1
            continue

        if is_list_item(text):
            flush()
            block_kind = "list"
            block = [text]
        elif block and (break_before or (block_kind == "list" and row.cells[0].x < rows[i - 1].cells[0].x - 2)):
            flush()
            block = [text]
        else:
            block.append(text)
        i += 1
    flush()
    return out


def _table_markdown(rows: list[_Row]) -> str:
    """Cells assigned to columns by their x position (clustered), header row first."""
    xs = sorted(c.x for r in rows for c in r.cells)
    columns: list[float] = []
    for x in xs:
        if not columns or x - columns[-1] > 3.0:
            columns.append(x)
    grid: list[list[str]] = []
    for r in rows:
        cells = [""] * len(columns)
        for c in r.cells:
            col = min(range(len(columns)), key=lambda k: abs(columns[k] - c.x))
            cells[col] = f"{cells[col]} {c.text}".strip()
        grid.append(cells)
    return markdown_table(grid)


_MAX_TITLE_LINES = 4
_MAX_TITLE_CHARS = 200


def _title(reader: Any, elements: list[Element], name: str) -> str:
    """The document's title: the PDF metadata title, else its cover, else its first heading, else the file name.

    A *cover* is a first page made only of heading lines ("Contoso Electronics" / "Employee Handbook"):
    its lines together are the title, since the first of them alone is often the publisher, the same
    on every document of a collection. Otherwise the first heading on pages 1–2 that is not repeated
    in the document ("Exceptions", "Tips" under every section) is taken. Running headers/footers are
    never candidates: :func:`_structure` dropped them before (a line repeated on most pages).
    """
    try:
        meta_title = collapse_whitespace(str((reader.metadata or {}).get("/Title") or ""))
    except Exception:  # broken info dictionary
        meta_title = ""
    if meta_title and not meta_title.lower().startswith(("microsoft word", "untitled")) and not meta_title.lower().endswith(
        (".doc", ".docx", ".pdf")
    ):
        return meta_title
    first_page = [e for e in elements if e.page == 1]
    cover = [e.text for e in first_page if e.kind == "title"]
    if first_page and len(cover) == len(first_page) and len(cover) <= _MAX_TITLE_LINES:
        joined = " ".join(cover)
        if len(joined) <= _MAX_TITLE_CHARS:
            return joined
    headings = Counter(e.text.casefold() for e in elements if e.kind == "title")
    for e in elements[:20]:
        if e.kind == "title" and e.page in (1, 2) and headings[e.text.casefold()] == 1:
            return e.text
    return PurePath(name).stem
