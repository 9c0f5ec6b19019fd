"""Ingestion as plain functions: list -> diff -> (fetch + parse -> chunk) -> embed in batches -> upsert; delete.

Fetching, parsing and chunking run a couple of documents ahead in one background thread, so they
overlap with the embedding model. This module holds the logic; the CLI (`ondata ingest`) and the Prefect flows (pipelines/flows.py)
are thin wrappers over it. Documents are streamed: at most ``batch_chunks`` chunks (plus one
document) are held in memory at a time. A bad document is recorded as failed with its reason and
never stops the run; a document that fails keeps whatever version the index already had. Listing
problems (``ItemProblem``: a bad sidecar, an unreadable file, a link not followed, an unsupported
type...) are reported as ``failed`` / ``skipped`` results (``problem_results``). A batch that fails
with a transient error (the service still throttling after the backend's retries) fails its
documents together: splitting it one by one would only multiply the attempts.

Crash safety: a changed source is deleted and re-written in the same batch; the index's
``list_sources()`` reports a source with missing chunks as incomplete, and the next run re-ingests
it, so a killed run followed by a normal run converges to exactly the source's content.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from itertools import islice
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Callable, ContextManager, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from indexers.errors import OndataError
from indexers.ports import Embedder, SearchIndex
from indexers.records import Chunk
from indexers.retry import is_transient
from pipelines.chunking import ChunkingConfig, chunk_document
from pipelines.errors import DocumentTooLargeError, EmptyDocumentError, SourceError
from pipelines.parsing import parse_document
from pipelines.ports import DocumentSource
from pipelines.records import ParsedDocument, SourceItem
from pipelines.sync import CLEANUP_MODES, CleanupMode, PipelineFingerprint, SyncPlan, plan_sync

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest.

    ``batch_chunks``: chunks embedded and upserted together (bounded memory); ``prefetch``: documents
    fetched, parsed and chunked ahead in a background thread while the current batch is embedded
    (0 = one after the other). ``cleanup``: what the run may delete (``pipelines.sync``: ``scoped``,
    ``none``, ``full``).
    """

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    max_bytes: int = DEFAULT_MAX_BYTES
    batch_chunks: int = 256
    dry_run: bool = False
    prefetch: int = 2
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

    ``scope`` is set for a document of another scope (deleted by ``--cleanup full``); ``reason`` says
    why an updated document was re-processed ("chunking settings changed", ...)."""

    source_id: str
    status: str
    chunks: int = 0
    pages: int | None = None
    error: str | None = None
    error_type: str | None = None
    scope: str | None = None
    reason: str | None = None


@dataclass
class IngestReport:
    """The end-of-run summary, returned as data and rendered as text or Markdown."""

    source: str
    index: str
    started_at: str
    dry_run: bool = False
    seconds: float = 0.0
    listed: int = 0
    unchanged: int = 0
    results: list[DocumentResult] = field(default_factory=list)
    chunks_written: int = 0
    pages_parsed: int = 0
    documents_parsed: int = 0
    embeddings_computed: int = 0
    embedding_cache_hits: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def _count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

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
        return [r for r in self.results if r.status == "failed"]

    @property
    def skipped(self) -> list[DocumentResult]:
        return [r for r in self.results if r.status == "skipped"]

    @property
    def nothing_done(self) -> bool:
        """True when documents needed work and none of it succeeded (the CLI exits non-zero)."""
        return bool(self.failed) and not (self.added or self.updated or self.deleted or self.unchanged)

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

    def to_markdown(self) -> str:
        c = self.counts()
        lines = [
            f"# Ingestion {'plan (dry run)' if self.dry_run else 'run'}: {self.source}",
            "",
            f"Index: `{self.index}` - started {self.started_at} - {self.seconds:.1f} s",
            "",
            "| added | updated | deleted | unchanged | failed | skipped | chunks written | embeddings computed "
            "| cache hits |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {c['added']} | {c['updated']} | {c['deleted']} | {c['unchanged']} | {c['failed']} | {c['skipped']} | "
            f"{self.chunks_written} | {self.embeddings_computed} | {self.embedding_cache_hits} |",
        ]
        for title, rows in (("Failed documents", self.failed), ("Skipped", self.skipped)):
            if rows:
                lines += ["", f"## {title}", "", "| document | problem |", "|---|---|"]
                lines += [f"| `{r.source_id}` | {(r.error or '').replace('|', '/')} |" for r in rows]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- plain steps (each a Prefect task in flows.py)


def list_and_plan(source: DocumentSource, index: SearchIndex, *, cleanup: CleanupMode = "scoped",
                  fingerprint: PipelineFingerprint | None = None) -> SyncPlan:
    """List the source and diff it against the index (I/O on both), in the source's scope."""
    items = list(source.list_items())
    return plan_sync(items, index.list_sources(), scope=source.scope, cleanup=cleanup, fingerprint=fingerprint)


def fingerprint_of(options: IngestOptions, embedder: Embedder) -> PipelineFingerprint:
    """The pipeline fingerprint of a run with these options and this embedder (see ``pipelines.sync``)."""
    return PipelineFingerprint.of(chunking=options.chunking, model_id=embedder.model_id,
                                  dimensions=embedder.dimensions)


def planned_results(plan: SyncPlan) -> list[DocumentResult]:
    """What a dry run reports: the documents the plan adds, updates (with why) and deletes."""
    out = [DocumentResult(i.id, "added") for i in plan.added]
    out += [DocumentResult(i.id, "updated", reason=", ".join(plan.reasons.get(i.id, ()))) for i in plan.changed]
    out += [DocumentResult(s, "deleted") for s in plan.deleted]
    out += [DocumentResult(r.source_id, "deleted", scope=r.scope) for r in plan.deleted_elsewhere]
    return out


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


def prepare_document(
    source: DocumentSource,
    item: SourceItem,
    *,
    chunking: ChunkingConfig,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timer: Callable[[str], ContextManager[None]] | None = None,
) -> tuple[ParsedDocument, list[Chunk]]:
    """Fetch, parse and chunk one document; raises a typed OndataError naming it.

    ``timer(stage)`` (optional) times the ``fetch_parse`` and ``chunk`` stages.
    """
    timed = timer or (lambda _stage: nullcontext())
    with timed("fetch_parse"):
        doc = load_document(source, item, max_bytes=max_bytes)
    with timed("chunk"):
        chunks = chunk_document(doc, item, config=chunking)
    if not chunks:
        raise EmptyDocumentError(f"{item.name} holds no text to index", doc_id=item.id)
    return doc, chunks


def prefetched(items: Iterable[SourceItem], prepare: Callable[[SourceItem], T], *, ahead: int) -> Iterator[tuple[SourceItem, "Future[T]"]]:
    """Yield ``(item, future of prepare(item))`` in order, preparing up to ``ahead`` items in a background thread.

    Parsing then overlaps with embedding (the model releases the GIL). ``ahead=0`` prepares each
    item in the calling thread, when it is reached. Memory stays bounded by ``ahead`` documents.
    """
    if ahead <= 0:
        for item in items:
            future: Future[T] = Future()
            try:
                future.set_result(prepare(item))
            except BaseException as exc:  # handed to the caller through the future, as with the pool
                future.set_exception(exc)
            yield item, future
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ondata-prepare") as pool:
        queue: deque[tuple[SourceItem, Future[T]]] = deque()
        it = iter(items)
        for item in islice(it, ahead):
            queue.append((item, pool.submit(prepare, item)))
        while queue:
            item, future = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(prepare, nxt)))
            yield item, future


def embed_chunks(chunks: Sequence[Chunk], *, embedder: Embedder) -> np.ndarray:
    """Embed the chunks' content, titled (title and section help retrieval of short chunks)."""
    return embedder.embed_documents([embedding_text(c) for c in chunks])


def embedding_text(chunk: Chunk) -> str:
    """The text embedded for a chunk: its title and section (when not already leading it), then the content."""
    head = " - ".join(p for p in (chunk.title, chunk.section) if p and p not in chunk.content[:200])
    return f"{head}\n{chunk.content}" if head else chunk.content


def write_documents(
    chunks: Sequence[Chunk], *, index: SearchIndex, vectors: np.ndarray, replace_sources: Iterable[str] = (),
    scope: str | None = None,
) -> None:
    """Replace the given sources' chunks (of ``scope``; default: the chunks' scopes) with ``chunks``: one
    write (one transaction on the local index)."""
    replace = list(replace_sources)
    if chunks or replace:
        index.upsert(list(chunks), vectors=vectors, replace_sources=replace, scope=scope)


def delete_documents(deletions: Sequence[tuple[str | None, Sequence[str]]], *, index: SearchIndex) -> None:
    """Delete (scope, source ids) groups, e.g. ``SyncPlan.deletions()``; scope None = in every scope."""
    for scope, source_ids in deletions:
        if source_ids:
            index.delete_sources(list(source_ids), scope=scope)


# ---------------------------------------------------------------- the whole run


@dataclass
class _Pending:
    item: SourceItem
    status: str
    doc: ParsedDocument
    chunks: list[Chunk]


@contextmanager
def _timed(into: dict[str, float], stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[stage] = into.get(stage, 0.0) + time.perf_counter() - t0


def _model_stats(embedder: Embedder) -> tuple[int, int, float] | None:
    stats = getattr(embedder, "stats", None)
    if stats is None:
        return None
    return int(stats.computed), int(stats.cache_hits), float(stats.seconds_in_model)


def ingest(
    source: DocumentSource,
    *,
    index: SearchIndex,
    embedder: Embedder,
    options: IngestOptions = IngestOptions(),
    on_plan: Callable[[SyncPlan], None] | None = None,
    on_result: Callable[[DocumentResult], None] | None = None,
) -> IngestReport:
    """Bring ``index`` in step with ``source`` and return the run report.

    Raises only when the run as a whole cannot proceed (the source cannot be listed, the index
    cannot be opened); per-document problems land in ``report.results`` as ``failed``.
    """
    t_start = time.perf_counter()
    report = IngestReport(
        source=repr(source), index=repr(index), started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        dry_run=options.dry_run,
    )
    timer = partial(_timed, report.stage_seconds)
    before = _model_stats(embedder)

    with timer("list"):
        if not options.dry_run:  # a dry run writes nothing, not even an empty index
            index.ensure()
        plan = list_and_plan(source, index, cleanup=options.cleanup, fingerprint=fingerprint_of(options, embedder))
    report.listed, report.unchanged = plan.listed, len(plan.unchanged)

    def emit(result: DocumentResult) -> None:
        report.results.append(result)
        if on_result:
            on_result(result)

    for result in problem_results(plan):
        emit(result)
    if on_plan:
        on_plan(plan)

    if options.dry_run:
        for result in planned_results(plan):
            emit(result)
        report.seconds = time.perf_counter() - t_start
        return report

    if plan.deleted or plan.deleted_elsewhere:
        with timer("index"):
            delete_documents(plan.deletions(), index=index)
        for result in planned_results(plan):
            if result.status == "deleted":
                emit(result)

    changed_ids = {i.id for i in plan.changed}
    pending: list[_Pending] = []
    pending_chunks = 0

    def flush() -> None:
        nonlocal pending, pending_chunks
        if not pending:
            return
        batch, pending, pending_chunks = pending, [], 0
        try:
            _write_batch(batch)
        except OndataError as exc:
            if len(batch) == 1 or is_transient(exc):  # the service is down or throttling: splitting cannot help
                for p in batch:
                    _fail(p.item, exc)
                return
            log.warning("batch of %d documents failed (%s); retrying one by one", len(batch), exc)
            for p in batch:
                try:
                    _write_batch([p])
                except OndataError as exc1:
                    _fail(p.item, exc1)

    def _write_batch(batch: list[_Pending]) -> None:
        chunks = [c for p in batch for c in p.chunks]
        with timer("embed"):
            vectors = embed_chunks(chunks, embedder=embedder)
        with timer("index"):
            write_documents(chunks, index=index, vectors=vectors, scope=plan.scope,
                            replace_sources=[p.item.id for p in batch if p.item.id in changed_ids])
        for p in batch:
            report.chunks_written += len(p.chunks)
            emit(DocumentResult(p.item.id, p.status, chunks=len(p.chunks), pages=p.doc.page_count,
                                reason=", ".join(plan.reasons.get(p.item.id, ())) or None))

    def _fail(item: SourceItem, exc: Exception) -> None:
        message = exc.message if isinstance(exc, OndataError) else str(exc)
        log.warning("%s failed: %s", item.id, message)
        emit(DocumentResult(item.id, "failed", error=message, error_type=type(exc).__name__))

    def prepare(item: SourceItem) -> tuple[ParsedDocument, list[Chunk]]:
        return prepare_document(source, item, chunking=options.chunking, max_bytes=options.max_bytes, timer=timer)

    for item, future in prefetched(plan.to_process, prepare, ahead=options.prefetch):
        status = "updated" if item.id in changed_ids else "added"
        if pending and not future.done():
            flush()  # keep the model busy while the next document is still being parsed
        try:
            doc, chunks = future.result()
        except (OndataError, SourceError) as exc:
            _fail(item, exc)
            continue
        except Exception as exc:  # a library bug must not stop the run: record it, with its type
            log.exception("unexpected error on %s", item.id)
            _fail(item, exc)
            continue
        report.documents_parsed += 1
        report.pages_parsed += doc.page_count or 0
        pending.append(_Pending(item, status, doc, chunks))
        pending_chunks += len(chunks)
        if pending_chunks >= options.batch_chunks:
            flush()
    flush()

    flush_index = getattr(index, "flush", None)
    if callable(flush_index):
        with timer("index"):
            flush_index()

    after = _model_stats(embedder)
    if before is not None and after is not None:
        report.embeddings_computed = after[0] - before[0]
        report.embedding_cache_hits = after[1] - before[1]
        report.stage_seconds["embed_model"] = after[2] - before[2]
    report.seconds = time.perf_counter() - t_start
    return report
