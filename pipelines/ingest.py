"""Local ingestion: the run engine (``pipelines.engine``) with the in-process ``LocalRunner``.

``ingest(source, index=..., embedder=...)`` brings the index in step with the source (used by
``ondata ingest``, the eval and the benches). Fetching, parsing and chunking run ``prefetch``
documents ahead in one background thread, so they overlap with the embedding model (which releases
the GIL); embedding and writing happen in the calling thread. The plan, batching, per-document
errors, interrupts and the report are the engine's (see ``pipelines.engine``); the Prefect flows
(``pipelines.flows``) drive the same engine with their own runner.

The engine's names (``IngestOptions``, ``IngestReport``, ``DocumentResult``, ``list_and_plan``...)
are re-exported here.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, wait
from functools import partial
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from indexers.ports import Embedder, SearchIndex
from indexers.records import Chunk
from pipelines.engine import (  # noqa: F401 - re-exported
    DEFAULT_MAX_BYTES,
    Deletions,
    LOCAL_EMBED_SLICE,
    DocumentResult,
    Embedded,
    IngestOptions,
    IngestReport,
    Prepared,
    delete_documents,
    describe,
    embed_chunks,
    embedding_text,
    fingerprint_of,
    planned_results,
    list_and_plan,
    load_document,
    lookahead,
    prepare_document,
    problem_results,
    run_ingest,
    stop_on_signals,
    write_documents,
)
from pipelines.ports import DocumentSource
from pipelines.records import SourceItem
from pipelines.sync import SyncPlan

T = TypeVar("T")


class LocalOutcome(Future):
    """A ``concurrent.futures.Future`` that is the engine's ``Outcome`` (adds ``wait(timeout)``)."""

    def wait(self, timeout: float | None = None) -> bool:
        wait([self], timeout=timeout)
        return self.done()


def prefetched(items: Iterable[SourceItem], prepare: Callable[[SourceItem], T], *, ahead: int,
               ) -> Iterator[tuple[SourceItem, "Future[T]"]]:
    """Yield ``(item, future of prepare(item))`` in order, preparing up to ``ahead`` items in a background thread.

    Parsing then overlaps with embedding (the model releases the GIL). ``ahead=0`` prepares each
    item in the calling thread, when it is reached. Memory stays bounded by ``ahead`` documents.
    The thread is a daemon that is never joined: a consumer that stops early (an interrupt) returns
    at once, and the document being parsed is dropped.
    """
    if ahead <= 0:
        for item in items:
            future: Future[T] = LocalOutcome()
            try:
                future.set_result(prepare(item))
            except BaseException as exc:  # handed to the caller through the future, as with the thread
                future.set_exception(exc)
            yield item, future
        return
    jobs: "queue.SimpleQueue[tuple[SourceItem, Future[T]] | None]" = queue.SimpleQueue()

    def work() -> None:
        while (job := jobs.get()) is not None:
            item_, fut = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(prepare(item_))
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                fut.set_exception(exc)

    threading.Thread(target=work, name="ondata-prepare", daemon=True).start()
    started: list[Future[T]] = []

    def submit(item_: SourceItem) -> Future[T]:
        fut: Future[T] = LocalOutcome()
        started.append(fut)
        jobs.put((item_, fut))
        return fut

    try:
        for item_, fut in lookahead(items, submit, ahead=ahead):
            started.remove(fut)  # the consumer holds it now: keeping it here would keep every document
            yield item_, fut
    finally:
        for fut in started:
            fut.cancel()  # those not started yet (an interrupted run)
        jobs.put(None)


class LocalRunner:
    """The engine's stages in this process: ``prefetch`` documents prepared ahead in a background thread."""

    eager_flush = True  # embed what is pending while the next document is parsed

    def __init__(self, source: DocumentSource, *, index: SearchIndex, embedder: Embedder, prefetch: int = 2,
                 embed_slice: int = LOCAL_EMBED_SLICE) -> None:
        self.source, self.index, self.embedder = source, index, embedder
        self.prefetch, self.embed_slice = prefetch, embed_slice
        self.source_label, self.index_label = describe(source), describe(index)

    def plan(self, *, ensure: bool, options: IngestOptions) -> SyncPlan:
        if ensure:
            self.index.ensure()
        return list_and_plan(self.source, self.index, cleanup=options.cleanup,
                             fingerprint=fingerprint_of(options, self.embedder), record_stats=ensure)

    def prepare(self, items: Sequence[SourceItem], *, options: IngestOptions) -> Iterator[tuple[SourceItem, Future]]:
        work = partial(prepare_document, self.source, chunking=options.chunking, max_bytes=options.max_bytes)
        return prefetched(items, work, ahead=self.prefetch)

    def embed(self, chunks: Sequence[Chunk]) -> Embedded:
        return embed_chunks(chunks, embedder=self.embedder)

    def write(self, chunks: Sequence[Chunk], *, vectors: np.ndarray, replace_sources: Sequence[str],
              scope: str | None) -> None:
        write_documents(chunks, index=self.index, vectors=vectors, replace_sources=replace_sources, scope=scope)

    def delete(self, deletions: Deletions) -> None:
        delete_documents(deletions, index=self.index)

    def flush(self) -> None:
        self.index.flush()


def ingest(
    source: DocumentSource,
    *,
    index: SearchIndex,
    embedder: Embedder,
    options: IngestOptions = IngestOptions(),
    on_plan: Callable[[SyncPlan], None] | None = None,
    on_result: Callable[[DocumentResult], None] | None = None,
    stop: threading.Event | None = None,
) -> IngestReport:
    """Bring ``index`` in step with ``source`` in this process and return the run report (see ``run_ingest``)."""
    runner = LocalRunner(source, index=index, embedder=embedder, prefetch=options.prefetch)
    return run_ingest(runner, options=options, on_plan=on_plan, on_result=on_result, stop=stop)
