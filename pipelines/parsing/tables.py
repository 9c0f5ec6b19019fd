"""Tables as Markdown: build a Markdown table from rows of cells, or from an HTML ``<table>``.

The first row is the header row. Cells are whitespace-collapsed and ``|`` is escaped, so a row is
always exactly one line and a chunker that splits at line boundaries never cuts a row in half.
HTML is read with the standard library's ``html.parser`` (``colspan`` repeats the cell text).
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Sequence

from pipelines.parsing.cleaning import collapse_whitespace, normalize_unicode


def _cell(text: str) -> str:
    return collapse_whitespace(normalize_unicode(text)).replace("|", "\\|")


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of ``rows`` (first row = header); short rows are padded, empty rows dropped."""
    cleaned = [[_cell(c) for c in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return ""
    width = max(len(row) for row in cleaned)
    padded = [row + [""] * (width - len(row)) for row in cleaned]
    lines = ["| " + " | ".join(padded[0]) + " |", "|" + "|".join(["---"] * width) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in padded[1:]]
    return "\n".join(lines)


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._span = 1
        self._depth = 0  # nested tables are flattened into the enclosing cell

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._depth += 1
        if self._depth > 1:
            return
        if tag == "tr":
            self._finish_row()
            self._row = []
        elif tag in ("td", "th"):
            self._finish_cell()
            if self._row is None:
                self._row = []
            self._cell = []
            span = dict(attrs).get("colspan") or "1"
            self._span = max(1, min(int(span), 50)) if span.isdigit() else 1
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._depth -= 1
            if self._depth == 0:
                self._finish_row()
            return
        if self._depth > 1:
            return
        if tag in ("td", "th"):
            self._finish_cell()
        elif tag == "tr":
            self._finish_row()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def _finish_cell(self) -> None:
        if self._cell is not None and self._row is not None:
            self._row.extend(["".join(self._cell)] * self._span)
        self._cell = None
        self._span = 1

    def _finish_row(self) -> None:
        self._finish_cell()
        if self._row:
            self.rows.append(self._row)
        self._row = None


def html_table_rows(html: str) -> list[list[str]]:
    """The cell texts of the (first-level) rows of the HTML table(s) in ``html``."""
    parser = _TableParser()
    parser.feed(html)
    parser.close()
    parser._finish_row()
    return parser.rows


def html_table_to_markdown(html: str) -> str:
    """The HTML table in ``html`` as a Markdown table, header row first ("" if it has no cells)."""
    return markdown_table(html_table_rows(html))
