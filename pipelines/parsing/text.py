"""Plain-text parser (no ``unstructured``): paragraphs split at blank lines, light heading detection.

Plain text needs none of ``unstructured``'s machinery (and its spaCy classifier is slow), so it is
read here directly: bytes are decoded (UTF-8, then cp1252), paragraphs are separated by blank lines,
wrapped lines are joined (with de-hyphenation), lines that look like list items become ``list``
elements and short numbered-section or Title Case lines standing alone become ``title`` elements.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from pipelines.errors import EmptyDocumentError
from pipelines.parsing.cleaning import (
    continues_numbered_list,
    document_vocabulary,
    heading_level_from_numbering,
    is_list_item,
    is_title_case_heading,
    join_lines,
    normalize_unicode,
)
from pipelines.records import Element, ParsedDocument

_UNDERLINE = re.compile(r"^\s*([=\-~#*])\1{2,}\s*$")


def decode_text(data: bytes) -> str:
    """Bytes -> str: UTF-8 (with or without BOM), else cp1252, else latin-1 (never fails)."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _is_caps_heading(line: str) -> bool:
    letters = [ch for ch in line if ch.isalpha()]
    return len(letters) >= 3 and all(ch.isupper() for ch in letters) and is_title_case_heading(line)


def text_elements(text: str) -> list[Element]:
    """Elements of a plain text (pure)."""
    text = normalize_unicode(text.replace("\r\n", "\n").replace("\r", "\n"))
    blocks = [b for b in re.split(r"\n[ \t]*\n", text) if b.strip()]
    vocab = document_vocabulary(text.splitlines())
    out: list[Element] = []
    for block in blocks:
        lines = [ln for ln in block.split("\n") if ln.strip() and not _UNDERLINE.match(ln)]
        if not lines:
            continue
        if len(lines) == 1:
            line = lines[0].strip()
            level = heading_level_from_numbering(line)
            if level is not None and out and out[-1].kind == "list" and continues_numbered_list(out[-1].text, line):
                level = None  # "2. Call us" after "1. Write to us": the list goes on
            if level is not None or (is_title_case_heading(line) and not is_list_item(line)):
                out.append(Element(kind="title", text=line, level=level or 1))
                continue
        first = lines[0].strip()
        if len(lines) > 1 and (heading_level_from_numbering(first) or _is_caps_heading(first)):
            out.append(Element(kind="title", text=first, level=heading_level_from_numbering(first) or 1))
            lines = lines[1:]
        current: list[str] = []
        kind = "text"
        for line in lines:
            if is_list_item(line):
                if current:
                    out.append(Element(kind=kind, text=join_lines(current, vocabulary=vocab)))  # type: ignore[arg-type]
                current, kind = [line], "list"
            else:
                current.append(line)
        if current:
            out.append(Element(kind=kind, text=join_lines(current, vocabulary=vocab)))  # type: ignore[arg-type]
    return [e for e in out if e.text]


class TextParser:
    """The Parser port for ``.txt`` files."""

    def parse(self, data: bytes, *, source_id: str, name: str, content_type: str | None = None) -> ParsedDocument:
        elements = text_elements(decode_text(data))
        if not elements:
            raise EmptyDocumentError(f"The text file '{name}' is empty.", doc_id=source_id)
        title = next((e.text for e in elements if e.kind == "title"), "") or PurePath(name).stem
        return ParsedDocument(
            source_id=source_id, title=title, elements=tuple(elements), metadata={"parser": "text"}
        )
