"""The DocumentSource and Parser ports."""

from __future__ import annotations

from typing import BinaryIO, Iterable, Mapping, Protocol, runtime_checkable

from indexers.records import SourceRecord

from pipelines.records import ItemProblem, ParsedDocument, SourceItem


@runtime_checkable
class DocumentSource(Protocol):
    """Lists documents (``list_items``, lazily, an empty iterable when there are none) and opens them.

    ``list_items`` raises (``SourceError``) only when the source as a whole cannot be listed; a
    problem with one entry is yielded as an ``ItemProblem`` for that entry and the listing goes on.
    ``scope`` names the source scope every listed item belongs to (``SourceItem.scope``, see
    ``pipelines.sync``): a sync deletes only inside it.
    """

    @property
    def scope(self) -> str: ...

    def list_items(self, known: Mapping[str, SourceRecord] | None = None) -> Iterable[SourceItem | ItemProblem]:
        """The items; ``known`` (the index's records of this scope, by source id; the engine passes a
        ``pipelines.records.KnownRecords``) may let a source skip re-reading what its change token
        (``SourceItem.stat``) says is unchanged, and yield those ids as ``UnchangedIds`` instead of items.
        Sources may ignore it."""
        ...

    def open(self, item: SourceItem) -> BinaryIO:
        """A readable binary stream of the item's content; raises ``SourceError`` naming the item."""
        ...


@runtime_checkable
class Parser(Protocol):
    """Turns bytes into a ParsedDocument; raises a ``ParseError`` subclass naming the document."""

    def parse(self, data: bytes, *, source_id: str, name: str, content_type: str | None = None) -> ParsedDocument: ...
