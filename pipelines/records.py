"""Records of the ingestion side: source items and parsed documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

ElementKind = Literal["title", "text", "list", "table"]


@dataclass(frozen=True)
class SourceItem:
    """One document as listed by a DocumentSource.

    ``id`` is stable across runs (relative path or blob name); ``version`` changes whenever the
    content changes (content hash, ETag, MD5). ``groups`` are the ACL groups allowed to see it.
    """

    id: str
    version: str
    name: str
    size: int | None = None
    content_type: str | None = None
    title: str = ""
    url: str = ""
    filepath: str = ""
    groups: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("SourceItem.id must not be empty")
        if not isinstance(self.groups, tuple):
            object.__setattr__(self, "groups", tuple(self.groups))


@dataclass(frozen=True)
class Element:
    """An ordered piece of a parsed document.

    ``kind`` is ``title`` for headings (``level`` 1 = top), ``table`` for tables (``text`` holds the
    table as Markdown, header row first), ``list`` for list items, ``text`` otherwise.
    ``page`` is 1-based where the format has pages (PDF, PPTX slides), else None.
    """

    kind: ElementKind
    text: str
    page: int | None = None
    level: int | None = None


@dataclass(frozen=True)
class ParsedDocument:
    """The text of one document as ordered elements, with its title (from the file or its name)."""

    source_id: str
    title: str
    elements: tuple[Element, ...]
    page_count: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.elements, tuple):
            object.__setattr__(self, "elements", tuple(self.elements))

    @property
    def text(self) -> str:
        return "\n\n".join(e.text for e in self.elements)
