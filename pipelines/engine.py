"""The one ingestion run engine: plan -> (fetch + parse -> chunk) -> embed in batches -> write; delete.

``run_ingest(runner, options=...)`` is the whole run, once: the plan (``pipelines.sync.plan_sync``),
the dry run, deletes, batching, per-document error handling, stale chunks of documents whose new
version fails, the final flush, the counters, the stage timings, interrupts and the report. How the
stages execute is a ``StageRunner`` (DESIGN.md "StageRunner" port):

- ``pipelines.ingest.LocalRunner``: in this process, fetching, parsing and chunking a couple of
  documents ahead in one background thread, so they overlap with the embedding model
  (``ingest()`` = ``run_ingest(LocalRunner(...))``, used by ``ondata ingest``);
- ``pipelines.flows.PrefectRunner``: every stage a Prefect task (retries by the one-layer rule of
  ``indexers.retry``, thread-pool or Dask task runner), used by the Prefect flows.

Documents are streamed: at most ``batch_chunks`` chunks (plus one document, plus the runner's
look-ahead) are held in memory. A bad document is recorded as ``failed`` with its typed error and
never stops the run; listing problems (``ItemProblem``) are reported as ``failed`` / ``skipped``.
If a changed document's new version cannot be fetched, parsed or chunked, its old chunks are removed
(so a narrowed access list or a withdrawn text never lingers) unless ``keep_stale_on_error``; its
result says which (``stale``: ``removed`` / ``kept``). A batch that fails with a transient error
(the service still throttling after the backend's retries) fails its documents together: splitting
it one by one would only multiply the attempts; any other batch failure is retried one by one so the
bad document fails alone.

Interrupts: ``stop`` (a ``threading.Event``; ``stop_on_signals`` sets it on the first SIGINT/SIGTERM)
stops taking new documents, rolls back the batch in flight (its embeddings are computed in slices of
``runner.embed_slice`` chunks; a slice in flight is abandoned, see ``stoppable``; nothing of the batch
is written) and returns the
report with ``interrupted=True``: every document already written stays, and the next run continues.

Crash safety: a changed source is replaced in the same write as its new chunks; the index's
``list_sources()`` reports a source with missing chunks as incomplete, and the next run re-ingests
it, so a killed run followed by a normal run converges to exactly the source's content.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import islice
from typing import Callable, Iterable, Iterator, Protocol, Sequence, TypeVar

T = TypeVar("T")

import numpy as np

from indexers.errors import OndataError
from indexers.ports import Embedder, SearchIndex
from indexers.records import Chunk, ScopeRecord
from indexers.retry import is_transient
from pipelines.chunking import ChunkingConfig, chunk_document
from pipelines.errors import DocumentTooLargeError, EmptyDocumentError
from pipelines.parsing import parse_document
from pipelines.ports import DocumentSource
from pipelines.records import KnownRecords, ParsedDocument, SourceItem
from pipelines.sync import CLEANUP_MODES, LEGACY_SCOPE, CleanupMode, PipelineFingerprint, SyncPlan, plan_sync

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
EMBED_SLICE = 64  # chunks per embedding task (Prefect): bounds how long an interrupt waits for the model
LOCAL_EMBED_SLICE = 32  # chunks per call in this process: the local model's own batch, so slicing costs nothing
MARKDOWN_LIST_LIMIT = 50  # documents listed per status in the Markdown summary
RESULTS_KEPT = 10_000  # results kept per status written or deleted (failed and skipped: all); the rest counted


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest (built from settings by ``ondata.wiring.ingest_options``).

    ``batch_chunks``: chunks embedded and written together (bounded memory); ``prefetch``: documents
    fetched, parsed and chunked ahead while the current batch is embedded (0 = one after the other);
    ``keep_stale_on_error``: keep the old chunks of a document whose new version fails (default: remove them);
    ``cleanup``: what the run may delete (``pipelines.sync``: ``scoped``, ``none``, ``full``).
    """

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    max_bytes: int = DEFAULT_MAX_BYTES
    batch_chunks: int = 256
    dry_run: bool = False
    prefetch: int = 2
    keep_stale_on_error: bool = False
    cleanup: CleanupMode = "scoped"

    def __post_init__(self) -> None:
        if self.cleanup not in CLEANUP_MODES:
            raise ValueError(f"cleanup must be one of {', '.join(CLEANUP_MODES)}, not {self.cleanup!r}")
        if self.batch_chunks < 1:
            raise ValueError("batch_chunks must be >= 1")
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self.prefetch < 0:
            raise ValueError("prefetch must be >= 0")


@dataclass
class DocumentResult:
    """What happened to one document: added, updated, deleted, failed or skipped (with the reason).

    ``stale`` (failed updates only): ``removed`` when the old version's chunks were deleted,
    ``kept`` when they stay in the index (``--keep-stale-on-error``, or a transient failure).
    ``scope`` is set for a document of another scope (deleted by ``--cleanup full``); ``reason`` says
    why an updated document was re-processed ("chunking settings changed", ...).
    """

    source_id: str
    status: str
    chunks: int = 0
    pages: int | None = None
    error: str | None = None
    error_type: str | None = None
    stale: str | None = None
    scope: str | None = None
    reason: str | None = None

    def describe(self) -> str:
        """One line: what happened and why, e.g. ``failed x.pdf: ... (CorruptDocumentError; old version removed)``."""
        if self.status in ("added", "updated"):
            pages = f", {self.pages} page{'s' if self.pages != 1 else ''}" if self.pages else ""
            why = f"; {self.reason}" if self.reason else ""
            return f"{self.status} {self.source_id} ({self.chunks} chunks{pages}{why})"
        if self.status in ("failed", "skipped"):
            extra = f"; old version {self.stale}" if self.stale else ""
            return f"{self.status} {self.source_id}: {self.error} ({self.error_type}{extra})"
        return f"{self.status} {self.source_id}"


@dataclass
class IngestReport:
    """The end-of-run summary, returned as data and rendered as text or Markdown.

    ``planned``: documents the plan said to write (added + changed); ``interrupted``: the run was
    stopped (``stop`` set) before all of them were done. ``results`` holds every failed and skipped
    document (and every result of a dry run) but only the first ``RESULTS_KEPT`` added, updated and
    deleted ones: ``results_dropped`` counts the others (so a run's memory does not grow with the
    corpus; the counts stay exact, and ``on_result`` still sees every result). Add results with ``add``.
    """

    source: str
    index: str
    started_at: str
    dry_run: bool = False
    seconds: float = 0.0
    listed: int = 0
    unchanged: int = 0
    planned: int = 0
    interrupted: bool = False
    results: list[DocumentResult] = field(default_factory=list)
    chunks_written: int = 0
    pages_parsed: int = 0
    documents_parsed: int = 0
    embeddings_computed: int = 0
    embedding_cache_hits: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    results_dropped: dict[str, int] = field(default_factory=dict)

    def add(self, result: DocumentResult, *, keep: int = RESULTS_KEPT) -> None:
        """Record one result: kept in ``results``, or only counted past ``keep`` of its status (see above)."""
        kept = self.__dict__.setdefault("_kept", {})  # not a field: never in to_dict()
        status = result.status
        if self.dry_run or status in ("failed", "skipped") or kept.get(status, 0) < keep:
            self.results.append(result)
            kept[status] = kept.get(status, 0) + 1
        else:
            self.results_dropped[status] = self.results_dropped.get(status, 0) + 1

    def _of(self, status: str) -> list[DocumentResult]:
        return [r for r in self.results if r.status == status]

    def _count(self, status: str) -> int:
        return len(self._of(status)) + self.results_dropped.get(status, 0)

    @property
    def added(self) -> int:
        return self._count("added")

    @property
    def updated(self) -> int:
        return self._count("updated")

    @property
    def deleted(self) -> int:
        return self._count("deleted")

    @property
    def failed(self) -> list[DocumentResult]:
        return self._of("failed")

    @property
    def skipped(self) -> list[DocumentResult]:
        return self._of("skipped")

    @property
    def written(self) -> int:
        """Documents written by this run (added + updated)."""
        return self.added + self.updated

    @property
    def nothing_done(self) -> bool:
        """True when documents needed work and none of it succeeded (the CLI exits non-zero)."""
        return bool(self.failed) and not (self.added or self.updated or self.deleted or self.unchanged)

    def interrupted_line(self) -> str:
        return f"interrupted: {self.written} of {self.planned} documents written; run again to continue"

    def counts(self) -> dict[str, int]:
        return {
            "added": self.added,
            "updated": self.updated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "failed": len(self.failed),
            "skipped": len(self.skipped),
        }

    def to_dict(self) -> dict:
        d = asdict(self)
        d["counts"] = self.counts()
        return d

    def to_markdown(self, *, limit: int = MARKDOWN_LIST_LIMIT) -> str:
        """The summary table, stage timings, and the documents added, updated, deleted, failed and
        skipped (at most ``limit`` listed per status, then a count of the rest)."""
        c = self.counts()
        title = "plan (dry run)" if self.dry_run else ("run (interrupted)" if self.interrupted else "run")
        lines = [
            f"# Ingestion {title}: {self.source}",
            "",
            f"Index: `{self.index}` - started {self.started_at} - {self.seconds:.1f} s",
            "",
            "| added | updated | deleted | unchanged | failed | skipped | chunks written | embeddings computed "
            "| cache hits |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {c['added']} | {c['updated']} | {c['deleted']} | {c['unchanged']} | {c['failed']} | {c['skipped']} | "
            f"{self.chunks_written} | {self.embeddings_computed} | {self.embedding_cache_hits} |",
        ]
        if self.interrupted:
            lines += ["", f"**{self.interrupted_line()}**"]
        if self.stage_seconds:
            lines += ["", "## Stage timings", "", "Seconds per stage, summed over documents and tasks (stages overlap, "
                      "so they can add up to more than the run).", "", "| stage | seconds |", "|---|---:|"]
            lines += [f"| {k} | {v:.2f} |" for k, v in self.stage_seconds.items()]
        for status, title_ in (("added", "Added"), ("updated", "Updated"), ("deleted", "Deleted"),
                               ("failed", "Failed"), ("skipped", "Skipped")):
            rows = self._of(status)
            total = len(rows) + self.results_dropped.get(status, 0)
            if not total:
                continue
            lines += ["", f"## {title_} ({total})", ""]
            if status in ("failed", "skipped"):
                lines += ["| document | problem |", "|---|---|"]
                lines += [f"| `{r.source_id}` | {_cell(r)} |" for r in rows[:limit]]
            elif status == "deleted":
                lines += ["| document |", "|---|"] + [f"| `{r.source_id}` |" for r in rows[:limit]]
            else:
                lines += ["| document | chunks | pages |", "|---|---:|---:|"]
                lines += [f"| `{r.source_id}` | {r.chunks} | {r.pages or ''} |" for r in rows[:limit]]
            if total > min(limit, len(rows)):
                lines += ["", f"... and {total - min(limit, len(rows))} more {status}"]
        return "\n".join(lines) + "\n"


def _cell(r: DocumentResult) -> str:
    stale = f"; old version {r.stale}" if r.stale else ""
    return f"{(r.error or '').replace('|', '/')} ({r.error_type}{stale})"


# ---------------------------------------------------------------- plain steps (each a Prefect task in flows.py)


def list_and_plan(source: DocumentSource, index: SearchIndex, *, cleanup: CleanupMode = "scoped",
                  fingerprint: PipelineFingerprint | None = None, record_stats: bool = False) -> SyncPlan:
    """List the source and diff it against the index (I/O on both), in the source's scope.

    The source gets the index's records of its scope that nothing but their content can make stale
    (``known``: complete, and stamped as this pipeline would stamp them, ``PipelineFingerprint.current``),
    so it may skip reading what its change tokens say is unchanged (reusing the record); the listing
    is consumed as it comes (never held as a list) and unchanged documents are only counted
    (``SyncPlan.n_unchanged``): the plan holds what changed, not the corpus. With an index that has
    ``list_source_stamps`` (the local one) the scope's manifest is read as (id, token) pairs in one pass
    (``_stored_and_known``) and a whole record is read only for an id listed changed or gone; the source
    reports its unchanged files as ``UnchangedIds`` (a source that says so, ``lists_unchanged_ids``: the
    folder source; one that lists every item, as Blob does, gets the records read as before, so its plan
    never reads a record per listed item). Other scopes' records are read only for
    ``cleanup="full"``. ``record_stats`` (not on a dry run) stores the new tokens of
    documents listed unchanged (a file touched, or first seen racy), so the next run can skip them,
    and records the source's scope (``scope_record``: what ``ondata index rebuild`` re-reads). The cyclic
    garbage collector is paused while the manifest and the listing are read (``_no_cyclic_gc``)."""
    scope = source.scope
    stamps = getattr(index, "list_source_stamps", None)  # the local index's: its manifest without a record per row
    if cleanup != "full" and stamps is not None and getattr(source, "lists_unchanged_ids", False):
        with _no_cyclic_gc():
            stored, known = _stored_and_known(index, stamps(scope=scope), scope=scope, fingerprint=fingerprint)
            legacy = index.list_sources(scope=LEGACY_SCOPE) if scope != LEGACY_SCOPE else []
            plan = plan_sync(source.list_items(known=known), legacy, scope=scope, cleanup=cleanup,
                             fingerprint=fingerprint, keep_unchanged=False, stored=stored)
    else:
        if cleanup == "full":
            records = index.list_sources()
        else:  # only this scope's records and those stored before scopes (which this run may adopt) count
            records = index.list_sources(scope=scope) + (
                index.list_sources(scope=LEGACY_SCOPE) if scope != LEGACY_SCOPE else [])
        mine = (r for r in records if r.scope == scope and r.complete)
        known = KnownRecords.of({r.source_id: r for r in (mine if fingerprint is None else fingerprint.current_of(mine))})
        plan = plan_sync(source.list_items(known=known), records, scope=scope, cleanup=cleanup,
                         fingerprint=fingerprint, keep_unchanged=False)
    if record_stats and plan.restat:
        index.record_source_stats(scope, dict(plan.restat))
    if record_stats:
        record = scope_record(source, cleanup=cleanup, fingerprint=fingerprint)
        if record is not None:
            index.record_scope(record)
    return plan


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector paused inside (restored as it was, also on an error): a listing allocates a
    few objects per file (rows, ``stat`` results) that reference counting frees, and the collections they
    trigger would only walk them. Reference cycles made inside are collected after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _stored_and_known(index: SearchIndex, stamps: Iterable[tuple[str, str, tuple[str, ...], str, bool]], *, scope: str,
                      fingerprint: PipelineFingerprint | None) -> tuple[KnownRecords, KnownRecords]:
    """(every document of ``scope``, those of them that nothing but their content can make stale) from the
    index's stamps (``LocalIndex.list_source_stamps``): ids and change tokens in two dicts, each whole
    record read from the index (``get_source``) only when the plan or the source asks for it."""
    every: dict[str, str] = {}
    stale: list[str] = []  # incomplete, or stamped otherwise than this pipeline would: usually none
    check = fingerprint.current_version if fingerprint is not None else None
    for source_id, version, groups, token, complete in stamps:
        every[source_id] = token
        if not complete or (check is not None and not check(source_id, version, groups, scope=scope)):
            stale.append(source_id)
    current = every.copy()  # one copy in C rather than a second insert per document
    for source_id in stale:
        current.pop(source_id, None)
    stored = KnownRecords(every, lambda source_id: index.get_source(source_id, scope=scope))  # type: ignore[attr-defined]
    return stored, KnownRecords(current, stored.get)


def scope_record(source: DocumentSource, *, cleanup: CleanupMode = "scoped",
                 fingerprint: PipelineFingerprint | None = None) -> ScopeRecord | None:
    """Where ``source`` reads from, as the index records it for ``ondata index rebuild``: a folder
    source's resolved root (a single file's own path), or a Blob source's account, container and
    prefix (never a credential), with its globs, the cleanup mode and the run's chunking and
    embedding settings. None for a source of another kind (nothing is recorded)."""
    from pipelines.sources.blob import BlobDocumentSource
    from pipelines.sources.local import LocalFolderSource

    settings = {"cleanup": cleanup, "chunking": fingerprint.chunking if fingerprint else "{}",
                "embedding": fingerprint.embedding if fingerprint else ""}
    if isinstance(source, LocalFolderSource):
        return ScopeRecord(scope=source.scope, kind="folder", root=os.path.realpath(source.root),
                           include=source.include, exclude=source.exclude, follow_symlinks=source.follow_symlinks,
                           **settings)
    if isinstance(source, BlobDocumentSource):
        account = str(getattr(source.container_client, "account_name", "") or "")
        return ScopeRecord(scope=source.scope, kind="blob", root=source.container, prefix=source.prefix,
                           account=account, include=source.include or ("*",), exclude=source.exclude, **settings)
    return None


def fingerprint_of(options: IngestOptions, embedder: Embedder) -> PipelineFingerprint:
    """The pipeline fingerprint of a run with these options and this embedder (see ``pipelines.sync``)."""
    return PipelineFingerprint.of(chunking=options.chunking, model_id=embedder.model_id,
                                  dimensions=embedder.dimensions)


def planned_results(plan: SyncPlan) -> list[DocumentResult]:
    """What a dry run reports: the documents the plan adds, updates (with why) and deletes."""
    out = [DocumentResult(i.id, "added") for i in plan.added]
    out += [DocumentResult(i.id, "updated", reason=", ".join(plan.reasons.get(i.id, ()))) for i in plan.changed]
    return out + deleted_results(plan)


def deleted_results(plan: SyncPlan) -> list[DocumentResult]:
    """The documents the plan deletes, in this scope and (``--cleanup full``) in others."""
    return ([DocumentResult(s, "deleted") for s in plan.deleted]
            + [DocumentResult(r.source_id, "deleted", scope=r.scope) for r in plan.deleted_elsewhere])


#: The ``extra`` key of the engine's one warning per failed or skipped document (``log_problem``); a front end
#: that reports every such result itself (``ondata ingest``'s summary) leaves these lines off its console.
DOCUMENT_LOG = "ondata_document"


def log_problem(result: DocumentResult) -> None:
    """The one log line of a failed or skipped document (a listing problem or a failure while processing)."""
    log.warning("%s", result.describe(), extra={DOCUMENT_LOG: result.source_id})


def problem_results(plan: SyncPlan) -> list[DocumentResult]:
    """The listing problems of a plan as ``failed`` / ``skipped`` results naming the document and the reason."""
    return [DocumentResult(p.id, p.status, error=p.error.message, error_type=type(p.error).__name__)
            for p in plan.problems]


def load_document(source: DocumentSource, item: SourceItem, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedDocument:
    """Fetch an item's bytes (streamed, at most ``max_bytes``) and parse them."""
    if item.size is not None and item.size > max_bytes:
        raise DocumentTooLargeError(
            f"{item.name} is {item.size:,} bytes, over the limit of {max_bytes:,} bytes", doc_id=item.id
        )
    with source.open(item) as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DocumentTooLargeError(f"{item.name} is over the limit of {max_bytes:,} bytes", doc_id=item.id)
    return parse_document(data, source_id=item.id, name=item.name, content_type=item.content_type, max_bytes=max_bytes)


@dataclass
class Prepared:
    """One document fetched, parsed and chunked, with the seconds each stage took."""

    doc: ParsedDocument
    chunks: list[Chunk]
    seconds: dict[str, float] = field(default_factory=dict)


def prepare_document(
    source: DocumentSource, item: SourceItem, *, chunking: ChunkingConfig, max_bytes: int = DEFAULT_MAX_BYTES,
) -> Prepared:
    """Fetch, parse and chunk one document; raises a typed OndataError naming it (``EmptyDocumentError``
    when it holds no text to index)."""
    seconds: dict[str, float] = {}
    with timed(seconds, "fetch_parse"):
        doc = load_document(source, item, max_bytes=max_bytes)
    with timed(seconds, "chunk"):
        chunks = chunk_document(doc, item, config=chunking)
    if not chunks:
        raise EmptyDocumentError(f"{item.name} holds no text to index", doc_id=item.id)
    return Prepared(doc, chunks, seconds)


def embedding_text(chunk: Chunk) -> str:
    """The text embedded for a chunk: its title and section (when not already leading it), then the content."""
    head = " - ".join(p for p in (chunk.title, chunk.section) if p and p not in chunk.content[:200])
    return f"{head}\n{chunk.content}" if head else chunk.content


@dataclass(frozen=True)
class Embedded:
    """Vectors of a list of chunks, with what the embedder's cache counted while computing them."""

    vectors: np.ndarray
    computed: int = 0
    cache_hits: int = 0
    model_seconds: float = 0.0


def embed_chunks(chunks: Sequence[Chunk], *, embedder: Embedder) -> Embedded:
    """Embed the chunks' content, titled (title and section help retrieval of short chunks)."""
    vectors = embedder.embed_documents([embedding_text(c) for c in chunks])
    last_call = getattr(embedder, "last_call", None)  # only the caching wrapper counts (not part of the Embedder port)
    if last_call is None:
        return Embedded(vectors, computed=len(chunks))
    call = last_call()
    return Embedded(vectors, call.computed, call.cache_hits, call.seconds_in_model)


def write_documents(
    chunks: Sequence[Chunk], *, index: SearchIndex, vectors: np.ndarray, replace_sources: Iterable[str] = (),
    scope: str | None = None,
) -> None:
    """Replace the given sources' chunks (of ``scope``; default: the chunks' scopes) with ``chunks``: one
    write (one transaction on the local index)."""
    replace = list(replace_sources)
    if chunks or replace:
        index.upsert(list(chunks), vectors=vectors, replace_sources=replace, scope=scope)


Deletions = Sequence[tuple["str | None", Sequence[str]]]


def delete_documents(deletions: Deletions, *, index: SearchIndex) -> None:
    """Delete (scope, source ids) groups, e.g. ``SyncPlan.deletions()``; scope None = in every scope."""
    for scope, source_ids in deletions:
        if source_ids:
            index.delete_sources(list(source_ids), scope=scope)


@contextmanager
def timed(into: dict[str, float], stage: str) -> Iterator[None]:
    """Add the seconds spent in the block to ``into[stage]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[stage] = into.get(stage, 0.0) + time.perf_counter() - t0


# ---------------------------------------------------------------- the StageRunner port


class Outcome(Protocol):
    """A document's prepare stage, maybe still running (``pipelines.ingest.LocalOutcome``, a
    ``concurrent.futures.Future``; ``pipelines.flows`` wraps a Prefect future)."""

    def done(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done or ``timeout`` seconds have passed; return ``done()``."""
        ...

    def result(self) -> Prepared:
        """The prepared document; raises the document's error."""
        ...


class StageRunner(Protocol):
    """How the engine's stages execute (locally, or as Prefect tasks). Every I/O goes through it.

    ``prepare`` yields ``(item, outcome)`` in the order of ``items``, lazily, preparing a bounded
    number ahead; the engine stops consuming it when interrupted (the runner must not block then).
    ``embed_slice``: chunks per ``embed`` call; ``eager_flush``: write the pending batch as soon as
    it holds ``embed_slice`` chunks and the next document is not ready yet (keeps one local model
    busy with whole batches while a document is parsed), instead of only when ``batch_chunks`` are
    pending. (Flushing whatever was pending made 2.4-chunk writes on one-chunk documents: 1,268
    transactions for 3,000 documents, 2.8x the index CPU of 256-chunk batches.) Errors are raised as the backends raise them.
    """

    embed_slice: int
    eager_flush: bool
    source_label: str
    index_label: str

    def plan(self, *, ensure: bool, options: IngestOptions) -> SyncPlan: ...

    def prepare(self, items: Sequence[SourceItem], *, options: IngestOptions) -> Iterator[tuple[SourceItem, Outcome]]: ...

    def embed(self, chunks: Sequence[Chunk]) -> Embedded: ...

    def write(self, chunks: Sequence[Chunk], *, vectors: np.ndarray, replace_sources: Sequence[str],
              scope: str | None) -> None: ...

    def delete(self, deletions: Deletions) -> None: ...

    def flush(self) -> None: ...


H = TypeVar("H")
_END = object()


def lookahead(items: Iterable[SourceItem], start: Callable[[SourceItem], H], *, ahead: int,
              ) -> Iterator[tuple[SourceItem, H]]:
    """Yield ``(item, start(item))`` in order, having started up to ``ahead`` items beyond the one yielded
    (``start`` submits the work somewhere and returns its handle). Used by both runners' ``prepare``."""
    window: deque[tuple[SourceItem, H]] = deque()
    it = iter(items)
    for item in islice(it, max(1, ahead)):
        window.append((item, start(item)))
    while window:
        item, handle = window.popleft()
        nxt = next(it, _END)
        if nxt is not _END:
            window.append((nxt, start(nxt)))  # type: ignore[arg-type]
        yield item, handle


def describe(obj: object) -> str:
    """A readable label of a source or an index (its folder or name), never a default object repr."""
    where = getattr(obj, "directory", None) or getattr(obj, "index_name", None)
    if where:
        return f"{type(obj).__name__}({str(where)!r})"
    text = repr(obj)
    return type(obj).__name__ if text.startswith("<") else text


# ---------------------------------------------------------------- the run


class _Interrupted(Exception):
    """Raised inside the engine when ``stop`` is set between embedding slices (the batch is rolled back)."""


@dataclass
class _Pending:
    item: SourceItem
    status: str
    prepared: Prepared


STOP_CHECK_SECONDS = 0.1  # how often a wait for a stage looks at ``stop`` (a finished stage ends the wait at once)


def stoppable(fn: Callable[..., T], *args: object, stopping: Callable[[], bool]) -> T:
    """``fn(*args)`` in a daemon thread (with this thread's context variables, e.g. Prefect's flow run
    context); raises ``_Interrupted`` as soon as ``stopping()`` while it runs, abandoning the call.

    So an interrupt never waits for an embedding call in flight (a model slice on a busy CPU can take
    many seconds): the batch is rolled back (nothing of it is written) and the abandoned call only
    computes vectors (and may put them in the embedding cache, which commits per write)."""
    if stopping():
        raise _Interrupted()
    done: Future[T] = Future()
    ctx = contextvars.copy_context()

    def work() -> None:
        try:
            done.set_result(ctx.run(fn, *args))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            done.set_exception(exc)

    threading.Thread(target=work, name="ondata-stage", daemon=True).start()
    while not wait([done], timeout=STOP_CHECK_SECONDS).done:
        if stopping():
            raise _Interrupted()
    return done.result()


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, OndataError) else f"{type(exc).__name__}: {exc}"


def run_ingest(
    runner: StageRunner,
    *,
    options: IngestOptions = IngestOptions(),
    on_plan: Callable[[SyncPlan], None] | None = None,
    on_result: Callable[[DocumentResult], None] | None = None,
    stop: threading.Event | None = None,
) -> IngestReport:
    """Bring the runner's index in step with its source and return the run report.

    Raises only when the run as a whole cannot proceed (the source cannot be listed, the index
    cannot be opened); per-document problems land in ``report.results`` as ``failed``.
    ``on_result`` is called once per document result, as it happens.
    """
    t_start = time.perf_counter()
    report = IngestReport(
        source=runner.source_label, index=runner.index_label,
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), dry_run=options.dry_run,
    )
    stages = report.stage_seconds
    stopping = stop.is_set if stop is not None else (lambda: False)

    def emit(result: DocumentResult) -> None:
        report.add(result)
        if on_result:
            on_result(result)

    with timed(stages, "list"):
        plan = runner.plan(ensure=not options.dry_run, options=options)  # a dry run writes nothing, not even an index
    report.listed, report.unchanged, report.planned = plan.listed, plan.n_unchanged, len(plan.to_process)
    for result in problem_results(plan):
        log_problem(result)
        emit(result)
    if on_plan:
        on_plan(plan)

    if options.dry_run:
        for result in planned_results(plan):
            emit(result)
        report.seconds = time.perf_counter() - t_start
        return report

    if plan.deleted or plan.deleted_elsewhere:
        with timed(stages, "index"):
            runner.delete(plan.deletions())
        for result in deleted_results(plan):
            emit(result)

    changed_ids = {i.id for i in plan.changed}
    pending: list[_Pending] = []
    pending_chunks = 0

    def fail(item: SourceItem, exc: BaseException, *, stale_possible: bool = False) -> None:
        stale = None
        if item.id in changed_ids and stale_possible:
            if options.keep_stale_on_error or is_transient(exc):
                stale = "kept"
            else:
                try:
                    with timed(stages, "index"):
                        runner.delete([(plan.scope, [item.id])])
                    stale = "removed"
                except OndataError as exc_del:
                    log.warning("could not remove the old version of %s: %s", item.id, exc_del.message)
                    stale = "kept"
        result = DocumentResult(item.id, "failed", error=_message(exc), error_type=type(exc).__name__, stale=stale)
        log_problem(result)
        emit(result)

    def embed(chunks: list[Chunk]) -> np.ndarray:
        parts: list[np.ndarray] = []
        step = max(1, runner.embed_slice)
        for start in range(0, len(chunks), step):
            if stopping():
                raise _Interrupted()
            with timed(stages, "embed"):
                e = stoppable(runner.embed, chunks[start:start + step], stopping=stopping)
            report.embeddings_computed += e.computed
            report.embedding_cache_hits += e.cache_hits
            stages["embed_model"] = stages.get("embed_model", 0.0) + e.model_seconds
            parts.append(e.vectors)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def write_batch(batch: list[_Pending]) -> None:
        chunks = [c for p in batch for c in p.prepared.chunks]
        vectors = embed(chunks)
        with timed(stages, "index"):
            runner.write(chunks, vectors=vectors, scope=plan.scope,
                         replace_sources=[p.item.id for p in batch if p.item.id in changed_ids])
        for p in batch:
            report.chunks_written += len(p.prepared.chunks)
            emit(DocumentResult(p.item.id, p.status, chunks=len(p.prepared.chunks), pages=p.prepared.doc.page_count,
                                reason=", ".join(plan.reasons.get(p.item.id, ())) or None))

    def flush() -> None:
        nonlocal pending, pending_chunks
        if not pending:
            return
        batch, pending, pending_chunks = pending, [], 0
        try:
            write_batch(batch)
        except OndataError as exc:
            if len(batch) == 1 or is_transient(exc):  # the service is down or throttling: splitting cannot help
                for p in batch:
                    fail(p.item, exc)
                return
            log.warning("batch of %d documents failed (%s); retrying one by one", len(batch), exc)
            for p in batch:
                try:
                    write_batch([p])
                except OndataError as exc1:
                    fail(p.item, exc1)

    try:
        for item, outcome in runner.prepare(plan.to_process, options=options):
            if stopping():
                raise _Interrupted()
            if runner.eager_flush and pending_chunks >= runner.embed_slice and not outcome.done():
                flush()  # keep the model busy (a whole model batch at least) while the next document is prepared
            while not outcome.wait(STOP_CHECK_SECONDS):  # an interrupt is seen while a long parse runs
                if stopping():
                    raise _Interrupted()
            try:
                prepared = outcome.result()
            except Exception as exc:  # noqa: BLE001 - recorded with its type; a library bug must not stop the run
                if not isinstance(exc, OndataError):
                    log.exception("unexpected error on %s", item.id)
                fail(item, exc, stale_possible=True)
                continue
            for stage, secs in prepared.seconds.items():
                stages[stage] = stages.get(stage, 0.0) + secs
            report.documents_parsed += 1
            report.pages_parsed += prepared.doc.page_count or 0
            pending.append(_Pending(item, "updated" if item.id in changed_ids else "added", prepared))
            pending_chunks += len(prepared.chunks)
            if pending_chunks >= options.batch_chunks:
                flush()
        flush()
    except _Interrupted:
        report.interrupted = True
        log.info("%s", report.interrupted_line())  # the caller says it once, where its user sees it

    with timed(stages, "index"):
        runner.flush()
    report.seconds = time.perf_counter() - t_start
    return report


# ---------------------------------------------------------------- interrupts


@contextmanager
def stop_on_signals(stop: threading.Event, *, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
                    ) -> Iterator[threading.Event]:
    """While inside, the first SIGINT/SIGTERM sets ``stop`` (the engine stops taking new documents and
    returns); a second one exits the process at once (status 128 + signal), which leaves an index that
    opens and converges on the next run (see the module docstring). Outside the main thread, where
    Python cannot install signal handlers, it only yields ``stop``."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            try:
                sys.stderr.write("interrupted again: stopping now; run again to continue\n")
                sys.stderr.flush()
            finally:
                os._exit(128 + signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


__all__ = [
    "DEFAULT_MAX_BYTES", "RESULTS_KEPT", "DocumentResult", "EMBED_SLICE", "LOCAL_EMBED_SLICE", "Embedded", "IngestOptions", "IngestReport", "Outcome",
    "Prepared", "StageRunner", "delete_documents", "describe", "embed_chunks", "embedding_text", "list_and_plan",
    "DOCUMENT_LOG", "deleted_results", "fingerprint_of", "log_problem", "load_document", "scope_record", "lookahead", "planned_results", "prepare_document", "problem_results", "run_ingest", "stop_on_signals", "timed",
    "write_documents",
]
