"""Sync state: compare what a source lists with what the index holds, as a pure function.

The index itself is the sync state (``SearchIndex.list_sources()``: per document of each scope its
stored version, chunk count, complete flag), so a fresh worker reads it from wherever the index
lives (local SQLite or Azure AI Search). A source whose stored chunks are incomplete (a run was
killed mid-write) counts as changed and is re-ingested; that is how a re-run converges after a crash.

Scopes. Every document belongs to a source scope (``SourceItem.scope``: a folder's resolved path,
``account/container/prefix``, or a name given with ``--scope``); a document is named by (scope,
id), so the same file name in two folders never collides. The cleanup mode says what a run may
delete, in the manner of LangChain's indexing API:

- ``scoped`` (the default): documents of this scope that the source no longer lists are deleted;
  other scopes are never touched.
- ``none``: add and update only, nothing is deleted (the CLI's default for a single file).
- ``full``: the index mirrors this source: everything else (documents of every other scope too) is
  deleted.

Documents stored before scopes existed (scope ``""``, an index migrated from schema 1) are adopted:
one whose id this source lists is re-written in this scope (writing a document replaces its copy
in scope ``""`` too, see ``SearchIndex.upsert``); the others stay until their own folder is ingested, ``ondata index
remove --scope ''`` or ``--cleanup full``.

Stored version = content version + pipeline fingerprint (``PipelineFingerprint``): the parser
(name and version), the chunking settings, the embedding model and dimensions, and the document's
groups, as ``<content version>|p=..|c=..|e=..|g=..`` (short hashes). Changing any of them
re-processes the documents it affects, and ``SyncPlan.reasons`` says why ("chunking settings
changed", "embedding model changed", "parser version changed", "groups changed", "content
changed"...). Without a fingerprint (``fingerprint=None``) versions are compared as listed.

Listing problems (``ItemProblem``, see ``pipelines.records``) travel in ``SyncPlan.problems``. A
``failed`` problem's id counts as listed: its stored document is kept (never deleted as gone) until
the user fixes it; a ``failed`` id ending with ``/`` stands for a folder and keeps every stored id
under it. A ``skipped`` entry (a link not followed, a special file, an unsupported type) is
deliberately not part of the source, so a stored document with its id is deleted like a gone one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Literal, Mapping, Sequence

from indexers.records import SourceRecord
from pipelines.parsing import file_format, format_key, guess_content_type, parser_version
from pipelines.records import ItemProblem, KnownRecords, SourceItem, UnchangedIds
from pipelines.spool import ItemSpool

if TYPE_CHECKING:  # pragma: no cover
    from pipelines.chunking import ChunkingConfig

CleanupMode = Literal["scoped", "none", "full"]
CLEANUP_MODES: tuple[str, ...] = ("scoped", "none", "full")

#: Scope of documents stored before scopes existed (adopted by the first scope that lists them).
LEGACY_SCOPE = ""

# the parts of a stored version after the content version, and the reason each one gives
_PARTS = (("p", "parser version changed"), ("c", "chunking settings changed"),
          ("e", "embedding model changed"), ("g", "groups changed"))


@lru_cache(maxsize=8192)
def _short(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


@lru_cache(maxsize=8192)
def _groups_hash(groups: tuple[str, ...]) -> str:
    return _short(json.dumps(sorted(groups), ensure_ascii=False))


def _parser_name(read: Callable[[], str]) -> str:
    """The parser version ``read()`` names; ``"none"`` when no parser reads the item (the engine fails it
    when it tries; any stable value will do)."""
    try:
        return read()
    except Exception:
        return "none"


@dataclass(frozen=True)
class PipelineFingerprint:
    """Everything besides its content that shapes a document's chunks and vectors.

    ``parser(item)`` names the parser that reads an item and its version (default
    ``pipelines.parsing.parser_version``); ``chunking`` and ``embedding`` are canonical strings
    (``of()`` builds them from a ``ChunkingConfig`` and the embedder's model id and dimensions).
    """

    chunking: str
    embedding: str
    parser: Callable[[SourceItem], str] = field(default=None, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.parser is None:
            object.__setattr__(self, "parser", _default_parser)

    @classmethod
    def of(cls, *, chunking: "ChunkingConfig", model_id: str, dimensions: int,
           parser: Callable[[SourceItem], str] | None = None) -> "PipelineFingerprint":
        from dataclasses import asdict

        return cls(chunking=json.dumps(asdict(chunking), sort_keys=True),
                   embedding=f"{model_id}/{int(dimensions)}", parser=parser)  # type: ignore[arg-type]

    @cached_property
    def _hashes(self) -> tuple[str, str]:
        return _short(self.chunking), _short(self.embedding)

    def _suffix_of(self, parser: str, groups: Iterable[str]) -> str:
        """The one place of the stamp format, ``<content version>|p=..|c=..|e=..|g=..`` (``_PARTS`` names the
        parts, ``_split`` reads them back): the part after the content version, which ``stamp`` and
        ``current`` both build here."""
        chunking, embedding = self._hashes
        return f"|p={_short(parser)}|c={chunking}|e={embedding}|g={_groups_hash(tuple(groups))}"

    def stamp(self, item: SourceItem) -> str:
        """The version stored for ``item``: its content version plus this fingerprint (see the module docstring)."""
        return item.version + self._suffix_of(self._parser_name_of(item), item.groups)

    @cached_property
    def _parser_names(self) -> dict[str | None, str]:
        return {}

    def _parser_name_of(self, item: SourceItem) -> str:
        """The parser part of ``item``'s stamp: with the default parser read once per file format
        (``file_format``: all that ``parser_version`` reads of a file), else ``self.parser(item)``."""
        if self.parser is _default_parser:
            return self._default_parser_name(item.name, item.content_type)
        return _parser_name(lambda: self.parser(item))

    def _default_parser_name(self, name: str, content_type: str | None) -> str:
        fmt = file_format(name, content_type)
        parser = self._parser_names.get(fmt)
        if parser is None:
            parser = self._parser_names[fmt] = _parser_name(lambda: parser_version(name, content_type))
        return parser

    def current(self, record: SourceRecord) -> bool:
        """Whether ``record`` (a stored document, complete) would be stamped the same today given its stored
        content and groups: nothing but its content can make it change (``current_version``)."""
        return self.current_version(record.source_id, record.version, record.groups, scope=record.scope)

    @cached_property
    def _suffixes(self) -> dict[tuple[tuple[str, ...], str], str]:
        return {}

    def current_version(self, source_id: str, version: str, groups: tuple[str, ...], *, scope: str = "") -> bool:
        """``current`` of a stored document given as its id, version and groups (no record built: a re-run
        asks it of every stored document). The parser is the one its file name selects
        (``pipelines.parsing.guess_content_type``); with the default parser the expected stamp suffix is
        built once per (groups, file format key), not per document. A version this cannot tell is not current."""
        bar = version.find("|")
        if bar < 0:
            return False
        if self.parser is _default_parser:  # its part read once per file format: no item built
            key = format_key(source_id)
            if key is not None:
                suffix = self._suffixes.get((groups, key))
                if suffix is None:
                    suffix = self._suffixes[(groups, key)] = self._suffix_for(source_id, groups, scope)
                return version[bar:] == suffix
        return version[bar:] == self._suffix_for(source_id, groups, scope, content=version[:bar])

    def _suffix_for(self, source_id: str, groups: tuple[str, ...], scope: str, *, content: str = "?") -> str:
        name = source_id.rsplit("/", 1)[-1]
        content_type = guess_content_type(name)
        if self.parser is _default_parser:
            parser = self._default_parser_name(name, content_type)
        else:
            probe = SourceItem(source_id or "?", content, name, content_type=content_type,
                               groups=tuple(groups), scope=scope)
            parser = _parser_name(lambda: self.parser(probe))
        return self._suffix_of(parser, groups)

    def current_of(self, records: Iterable[SourceRecord]) -> Iterator[SourceRecord]:
        """The records ``current`` accepts, in order."""
        return (r for r in records if self.current(r))


def _with_version(item: SourceItem, version: str) -> SourceItem:
    """``dataclasses.replace(item, version=version)`` at a fraction of its cost (it runs once per listed item)."""
    out = object.__new__(SourceItem)
    out.__dict__.update(item.__dict__)
    out.__dict__["version"] = version
    return out


def _unchanged_item(record: SourceRecord, scope: str | None) -> SourceItem:
    """The item of a document listed unchanged by id (``UnchangedIds``), for a plan that keeps them: its stored record's."""
    name = record.source_id.rsplit("/", 1)[-1]
    return SourceItem.unchecked(id=record.source_id, scope=scope if scope is not None else record.scope,
                                version=record.version, name=name, content_type=guess_content_type(name),
                                filepath=record.source_id, groups=tuple(record.groups), stat=record.stat)


def _default_parser(item: SourceItem) -> str:
    return parser_version(item.name, item.content_type)


def _split(version: str) -> tuple[str, str, dict[str, str] | None]:
    """(content, metadata hash, fingerprint parts or None when the version carries no fingerprint)."""
    head, *rest = version.split("|")
    content, _, meta = head.partition("+meta:")
    if not rest:
        return content, meta, None
    parts = dict(p.partition("=")[::2] for p in rest)
    return content, meta, parts


def change_reasons(stored: str, stamped: str) -> tuple[str, ...]:
    """Why a document whose stored version is ``stored`` needs re-processing at version ``stamped`` (empty: it does not)."""
    if stored == stamped:
        return ()
    old_content, old_meta, old_parts = _split(stored)
    new_content, new_meta, new_parts = _split(stamped)
    reasons: list[str] = []
    if old_content != new_content:
        reasons.append("content changed")
    if old_parts is None and new_parts is not None:
        reasons.append("stored without a pipeline fingerprint (an older ondata)")
    elif old_parts is not None and new_parts is not None:
        reasons += [why for k, why in _PARTS if old_parts.get(k) != new_parts.get(k)]
    if old_meta != new_meta and "groups changed" not in reasons:
        reasons.append("metadata changed")
    return tuple(reasons) or ("version changed",)


@dataclass(frozen=True)
class SyncPlan:
    """What a run does. ``deleted``: ids of this ``scope`` to delete; ``deleted_elsewhere``: documents of
    other scopes to delete (``cleanup="full"`` only); ``reasons``: id -> why it is changed;
    ``adopted``: ids stored before scopes that this run re-writes in its scope. ``added`` and ``changed``
    (``plan_sync``'s) are ``pipelines.spool.ItemSpool``s: read-only sequences that keep a thousand items in
    memory and spill the rest to a temporary file, so a plan's memory does not grow with what it lists."""

    added: Sequence[SourceItem] = ()
    changed: Sequence[SourceItem] = ()
    deleted: tuple[str, ...] = ()
    unchanged: tuple[SourceItem, ...] = ()
    listed: int = field(default=0)
    problems: tuple[ItemProblem, ...] = ()
    scope: str | None = None
    cleanup: CleanupMode = "scoped"
    deleted_elsewhere: tuple[SourceRecord, ...] = ()
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    adopted: frozenset[str] = frozenset()
    restat: Mapping[str, str] = field(default_factory=dict)
    unchanged_count: int | None = None

    @property
    def n_unchanged(self) -> int:
        """How many listed documents are unchanged (``unchanged`` holds them unless the plan was made with
        ``keep_unchanged=False``, which only counts them)."""
        return len(self.unchanged) if self.unchanged_count is None else self.unchanged_count

    @property
    def to_process(self) -> Sequence[SourceItem]:
        return self.added + self.changed

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "deleted": len(self.deleted) + len(self.deleted_elsewhere),
            "unchanged": self.n_unchanged,
        }

    def deletions(self) -> list[tuple[str | None, list[str]]]:
        """Every deletion of the plan as (scope, source ids), this scope's first; scope None = any scope
        (a plan made without a scope)."""
        out: list[tuple[str | None, list[str]]] = []
        if self.deleted:
            out.append((self.scope, list(self.deleted)))
        by_scope: dict[str, list[str]] = {}
        for rec in self.deleted_elsewhere:
            by_scope.setdefault(rec.scope, []).append(rec.source_id)
        out += sorted(by_scope.items())
        return out

    def describe_deleted(self) -> list[str]:
        """The deleted documents as shown to a user: ``id`` for this scope, ``scope: id`` for others."""
        return [*self.deleted, *(f"{r.scope or '(no scope)'}: {r.source_id}" for r in self.deleted_elsewhere)]


def plan_sync(
    items: Iterable[SourceItem | ItemProblem | UnchangedIds],
    records: Iterable[SourceRecord],
    *,
    scope: str | None = None,
    cleanup: CleanupMode = "scoped",
    fingerprint: PipelineFingerprint | None = None,
    keep_unchanged: bool = True,
    stored: Mapping[str, SourceRecord] | None = None,
) -> SyncPlan:
    """Diff the listed items against the index's source records (of every scope).

    ``scope=None`` compares against every record as if the index held this source only (the
    behaviour before scopes). Duplicate item ids keep the first listed. Deleted (``scoped`` and
    ``full``) = this scope's documents neither listed nor kept by a ``failed`` problem (see the
    module docstring); ``full`` also deletes every other scope's documents. ``keep_unchanged=False``
    (the engine's): unchanged items are counted (``SyncPlan.n_unchanged``), not held, so the plan's
    memory grows with what changed, not with the corpus.

    ``stored`` (the engine's, a ``KnownRecords`` over every document of ``scope``, loaded on demand):
    this scope's records by id, so that ``records`` need only hold the others the plan needs (those
    stored before scopes; every scope's for ``full``) and a record is built only for an id listed
    changed. ``UnchangedIds`` among the items (a source given ``known``) are counted as listed and
    unchanged without an item each: they must be ids of this scope whose records are current.
    """
    if cleanup not in CLEANUP_MODES:
        raise ValueError(f"cleanup must be one of {', '.join(CLEANUP_MODES)}, not {cleanup!r}")
    all_records = list(records)
    if stored is not None:
        if scope is None:
            raise ValueError("plan_sync(stored=...) needs the scope those records are of")
        mine: Mapping[str, SourceRecord] = stored
        legacy = {r.source_id: r for r in all_records if r.scope == LEGACY_SCOPE and scope != LEGACY_SCOPE}
        others = [r for r in all_records if r.scope != scope]
    elif scope is None:
        mine = {r.source_id: r for r in all_records}
        legacy: dict[str, SourceRecord] = {}
        others: list[SourceRecord] = []
    else:
        mine = {r.source_id: r for r in all_records if r.scope == scope}
        legacy = {r.source_id: r for r in all_records if r.scope == LEGACY_SCOPE and scope != LEGACY_SCOPE}
        others = [r for r in all_records if r.scope != scope]
    added: ItemSpool[SourceItem] = ItemSpool()  # spilled to a temporary file past a few hundred KB
    changed: ItemSpool[SourceItem] = ItemSpool()
    unchanged: list[SourceItem] = []
    n_unchanged = 0
    problems: list[ItemProblem] = []
    reasons: dict[str, tuple[str, ...]] = {}
    adopted: set[str] = set()
    restat: dict[str, str] = {}
    seen: set[str] = set()  # every id listed, problems too
    problem_ids: set[str] = set()
    kept: set[str] = set()
    kept_folders: list[str] = []
    for item in items:
        if isinstance(item, UnchangedIds):
            if keep_unchanged:
                fresh = list(dict.fromkeys(i for i in item.ids if i not in seen))
                unchanged += [_unchanged_item(mine[i], scope) for i in fresh]
            else:
                fresh = item.ids
            before = len(seen)
            seen.update(fresh)
            n_unchanged += len(seen) - before
            continue
        if item.id in seen:
            continue
        seen.add(item.id)
        if isinstance(item, ItemProblem):
            problems.append(item)
            problem_ids.add(item.id)
            if item.status == "failed":
                (kept_folders.append if item.id.endswith("/") else kept.add)(item.id)
            continue
        rec = mine.get(item.id)
        version = item.version if fingerprint is None else fingerprint.stamp(item)
        if rec is not None and rec.complete and rec.version == version:
            n_unchanged += 1
            if keep_unchanged:  # one version string for both: the stored one
                unchanged.append(item if fingerprint is None else _with_version(item, rec.version))
            if item.stat and item.stat != rec.stat:
                restat[item.id] = item.stat
            continue
        if fingerprint is not None:
            item = _with_version(item, version)
        if rec is None and item.id in legacy:
            adopted.add(item.id)
            changed.append(item)
            reasons[item.id] = ("stored before scopes",)
        elif rec is None:
            added.append(item)
        elif not rec.complete:
            changed.append(item)
            reasons[item.id] = ("incomplete (a run was interrupted)",)
        else:
            changed.append(item)
            reasons[item.id] = change_reasons(rec.version, item.version)
    listed = len(seen) - len(problem_ids)

    deleted: tuple[str, ...] = ()
    elsewhere: tuple[SourceRecord, ...] = ()
    if cleanup != "none":  # gone: not listed (or listed as a problem), and not kept by a failed one
        ids = (mine.tokens if isinstance(mine, KnownRecords) else mine).keys()
        candidates = (ids - seen) | (ids & problem_ids)  # set operations: no Python step per stored id
        deleted = tuple(sorted(sid for sid in candidates
                               if sid not in kept and not any(sid.startswith(f) for f in kept_folders)))
    if cleanup == "full":
        elsewhere = tuple(sorted(
            (r for r in others if not (r.scope == LEGACY_SCOPE and r.source_id in adopted)),
            key=lambda r: (r.scope, r.source_id),
        ))
    return SyncPlan(added, changed, deleted, tuple(unchanged), listed=listed,
                    problems=tuple(problems), scope=scope, cleanup=cleanup, deleted_elsewhere=elsewhere,
                    reasons=reasons, adopted=frozenset(adopted), restat=restat,
                    unchanged_count=None if keep_unchanged else n_unchanged)
