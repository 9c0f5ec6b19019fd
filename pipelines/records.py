"""Records of the ingestion side: source items and parsed documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from indexers.errors import OndataError
    from indexers.records import SourceRecord

ElementKind = Literal["title", "text", "list", "table"]


@dataclass(frozen=True)
class SourceItem:
    """One document as listed by a DocumentSource.

    ``id`` is stable across runs (relative path or blob name) and unique within its ``scope``
    (the source scope: a folder's resolved path, ``account/container/prefix`` for Blob Storage, or
    the name given with ``--scope``); ``version`` changes whenever the content changes (content
    hash, ETag, MD5; a ``+meta:<hash>`` suffix covers its metadata). ``groups`` are the ACL groups
    allowed to see it. ``stat`` is an optional change token (a file's size, mtime, ctime and inode):
    the index stores it with the document (``SourceRecord.stat``), and a source given the stored
    records may reuse the stored content version when the token is unchanged instead of re-reading.
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
    scope: str = ""
    stat: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("SourceItem.id must not be empty")
        if not isinstance(self.groups, tuple):
            object.__setattr__(self, "groups", tuple(self.groups))

    @classmethod
    def unchecked(cls, **values: Any) -> "SourceItem":
        """An item of values already valid (a non-empty ``id``, ``groups`` a tuple), built without the
        dataclass's ``__init__`` (a listing builds one per file); the fields not given take their defaults."""
        out = object.__new__(cls)
        out.__dict__.update(_ITEM_DEFAULTS, metadata={}, **values)
        return out


_ITEM_DEFAULTS: dict[str, Any] = {"size": None, "content_type": None, "title": "", "url": "", "filepath": "",
                                  "groups": (), "scope": "", "stat": ""}

ProblemStatus = Literal["failed", "skipped"]


@dataclass(frozen=True)
class ItemProblem:
    """A listing entry that could not become a ``SourceItem``; it concerns that one document only.

    A ``DocumentSource.list_items()`` yields these beside ``SourceItem``s instead of raising, so one
    bad entry (invalid sidecar, unreadable or vanished file, a link out of the root, a special file,
    an unsupported type...) never stops a run. ``id`` is the source id the entry would have had
    (the same id a ``SourceItem`` for it would carry, so the engine can tell which stored document it
    concerns); ``error`` is a typed ``OndataError`` naming the document and the problem.
    ``status``: ``failed`` (a problem the user must fix; reported as failed) or ``skipped``
    (deliberately not ingested: unsupported type, symlink not followed, special file; reported as
    skipped, never as failed).
    """

    id: str
    name: str
    error: "OndataError"
    status: ProblemStatus = "failed"

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("ItemProblem.id must not be empty")
        if self.status not in ("failed", "skipped"):
            raise ValueError(f"ItemProblem.status must be 'failed' or 'skipped', not {self.status!r}")


@dataclass(frozen=True)
class UnchangedIds:
    """Ids a source lists as unchanged against the ``KnownRecords`` it was given (their stored change
    token still holds): a listing yields these, a folder at a time, instead of a ``SourceItem`` per
    unchanged file, so a no-change run builds no object per document. Only ids of ``known.tokens``."""

    ids: Sequence[str]


class KnownRecords(Mapping[str, "SourceRecord"]):
    """What a source is told of the index's records of its scope (``DocumentSource.list_items(known=...)``):
    ``tokens`` maps every known source id to its stored change token (``SourceRecord.stat``; empty ids
    left out), read in one query; the whole record (``self[id]``) is loaded on demand, for the few files
    whose token changed. ``KnownRecords.of(mapping)`` wraps records already built."""

    __slots__ = ("tokens", "_load", "_loaded")

    def __init__(self, tokens: dict[str, str], load: Callable[[str], "SourceRecord | None"]) -> None:
        self.tokens = tokens
        self._load = load
        self._loaded: dict[str, "SourceRecord | None"] = {}

    @classmethod
    def of(cls, records: "Mapping[str, SourceRecord] | None") -> "KnownRecords":
        if isinstance(records, KnownRecords):
            return records
        records = records or {}
        return cls({k: r.stat for k, r in records.items() if r.stat}, records.get)

    def __getitem__(self, source_id: str) -> "SourceRecord":
        if source_id not in self.tokens:
            raise KeyError(source_id)
        if source_id not in self._loaded:
            self._loaded[source_id] = self._load(source_id)
        record = self._loaded[source_id]
        if record is None:
            raise KeyError(source_id)
        return record

    def __iter__(self) -> Iterator[str]:
        return iter(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, source_id: object) -> bool:
        return source_id in self.tokens


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
