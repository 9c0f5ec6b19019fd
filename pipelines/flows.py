"""Prefect flows over the plain ingestion steps of ``pipelines.ingest``.

Tasks are thin wrappers (DESIGN.md 3): network I/O and pure transforms are separate tasks so that
only I/O is retried (DESIGN.md 4):

================  =====================================  ===================================
task              plain function                         retried (transient errors only)
================  =====================================  ===================================
plan              ``index.ensure`` + ``list_and_plan``   yes (lists the source and the index)
fetch_parse       ``load_document``                      yes (download); never a ParseError
chunk             ``chunk_document``                     no (pure)
embed             ``embed_chunks``                       yes (remote embedders)
write             ``write_documents`` (delete+upsert)    yes (idempotent)
delete            ``delete_documents``                   yes (idempotent)
finalize          ``index.flush()``                      yes
================  =====================================  ===================================

Retries: the policy is ``indexers.retry.RetryPolicy`` (re-exported here with ``is_transient`` and
``retry_after_of``). The I/O tasks get its backoff as ``retry_delay_seconds`` and
``retry_condition(retry)`` as ``retry_condition_fn``, which accepts only transient failures
(``TransientError``, HTTP 408/429/5xx, timeouts and connection errors) that no backend retried yet
(``attempts_of(exc) == 1``); when the failure carries a ``Retry-After`` longer than the backoff, it
waits the difference. One layer owns the retries of each backend: every remote backend retries
itself (``indexers.retry``), and ``ondata.wiring.task_retry_policy`` runs these tasks with
``RetryPolicy.off()``; a task retry only ever helps a component that does not retry itself.

Objects: the flow takes ``Components`` (already-built source, index and embedder: fine with the
default thread-pool task runner, where tasks share the process) or a picklable zero-argument
factory returning ``Components`` (needed by the Dask task runner, whose workers are other
processes; the factory should build once per process). This package never imports ``ondata``:
the deployable flow with JSON parameters lives in ``ondata/flows.py``.

Per-document failures land in the report as ``failed`` and never fail the run. The report is
published as the Markdown artifact ``ingestion-summary`` and returned as a dict.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence, Union

import numpy as np
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped

from indexers.errors import ConfigError, OndataError
from indexers.retry import RetryPolicy, attempts_of, is_transient, retry_after_of  # re-exported (see __all__)
from indexers.ports import Embedder, SearchIndex
from indexers.records import Chunk
from pipelines.chunking import ChunkingConfig, chunk_document
from pipelines.errors import EmptyDocumentError
from pipelines.ingest import (
    DocumentResult,
    IngestOptions,
    IngestReport,
    delete_documents,
    embed_chunks,
    fingerprint_of,
    list_and_plan,
    load_document,
    planned_results,
    problem_results,
    write_documents,
)
from pipelines.ports import DocumentSource
from pipelines.records import ParsedDocument, SourceItem
from pipelines.sync import SyncPlan

log = logging.getLogger(__name__)

ARTIFACT_KEY = "ingestion-summary"
TASK_RUNNERS = ("threads", "dask")


# ---------------------------------------------------------------- objects the tasks work on


@dataclass(frozen=True)
class Components:
    """The already-built objects an ingestion works on."""

    source: DocumentSource
    index: SearchIndex
    embedder: Embedder


ComponentsFactory = Callable[[], Components]
ComponentsLike = Union[Components, ComponentsFactory]


def resolve(components: ComponentsLike) -> Components:
    return components if isinstance(components, Components) else components()


# ---------------------------------------------------------------- retries

def _exception_of(state: Any) -> BaseException | None:
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - we only read the failure out of the state
        return exc
    return None


def retry_condition(retry: RetryPolicy) -> Callable[[Any, Any, Any], bool]:
    """A Prefect ``retry_condition_fn``: retry transient failures only, honouring Retry-After.

    Never retries an error a backend already retried (``attempts_of(exc) > 1``): one layer owns
    the retries of each backend, so attempts never multiply.
    """
    delays = retry.delays()
    cap = retry.max_retry_after_seconds

    def retry_on_transient(task_: Any, task_run: Any, state: Any) -> bool:
        exc = _exception_of(state)
        if not is_transient(exc) or attempts_of(exc) > 1:
            return False
        wanted = retry_after_of(exc)
        if wanted:
            attempt = max(0, int(getattr(task_run, "run_count", 1) or 1) - 1)
            scheduled = delays[min(attempt, len(delays) - 1)]
            extra = min(wanted, cap) - scheduled
            if extra > 0:  # the service asked for longer than our backoff: wait the difference
                log.info("%s: waiting %.1f s more (Retry-After %.1f s)", task_.name, extra, wanted)
                time.sleep(extra)
        return True

    return retry_on_transient


def _io(task_obj: Any, retry: RetryPolicy) -> Any:
    return task_obj.with_options(
        retries=retry.retries,
        retry_delay_seconds=retry.delays(),
        retry_jitter_factor=retry.jitter or None,
        retry_condition_fn=retry_condition(retry),
    )


# ---------------------------------------------------------------- tasks (thin wrappers)


@dataclass(frozen=True)
class EmbedResult:
    vectors: np.ndarray
    computed: int = 0
    cache_hits: int = 0


def _stats(embedder: Embedder) -> tuple[int, int]:
    s = getattr(embedder, "stats", None)
    return (int(s.computed), int(s.cache_hits)) if s is not None else (0, 0)


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(components: ComponentsLike, options: IngestOptions = IngestOptions()) -> SyncPlan:
    c = resolve(components)
    c.index.ensure()
    return list_and_plan(c.source, c.index, cleanup=options.cleanup, fingerprint=fingerprint_of(options, c.embedder))


@task(name="fetch-parse", cache_policy=NO_CACHE)
def fetch_parse_task(components: ComponentsLike, item: SourceItem, *, max_bytes: int) -> ParsedDocument:
    return load_document(resolve(components).source, item, max_bytes=max_bytes)


@task(name="chunk", cache_policy=NO_CACHE)
def chunk_task(doc: ParsedDocument, item: SourceItem, *, chunking: ChunkingConfig) -> list[Chunk]:
    chunks = chunk_document(doc, item, config=chunking)
    if not chunks:
        raise EmptyDocumentError(f"{item.name} holds no text to index", doc_id=item.id)
    return chunks


@task(name="embed", cache_policy=NO_CACHE)
def embed_task(components: ComponentsLike, chunks: Sequence[Chunk]) -> EmbedResult:
    embedder = resolve(components).embedder
    before = _stats(embedder)
    vectors = embed_chunks(chunks, embedder=embedder)
    after = _stats(embedder)
    return EmbedResult(vectors, after[0] - before[0], after[1] - before[1])


@task(name="write", cache_policy=NO_CACHE)
def write_task(components: ComponentsLike, chunks: Sequence[Chunk], embedded: EmbedResult,
               *, replace_sources: Sequence[str], scope: str | None = None) -> int:
    write_documents(chunks, index=resolve(components).index, vectors=embedded.vectors,
                    replace_sources=replace_sources, scope=scope)
    return len(chunks)


@task(name="delete", cache_policy=NO_CACHE)
def delete_task(components: ComponentsLike, deletions: Sequence[tuple[str | None, Sequence[str]]]) -> int:
    delete_documents(list(deletions), index=resolve(components).index)
    return sum(len(ids) for _, ids in deletions)


@task(name="finalize", cache_policy=NO_CACHE)
def finalize_task(components: ComponentsLike) -> None:
    flush = getattr(resolve(components).index, "flush", None)
    if callable(flush):
        flush()


# ---------------------------------------------------------------- the flow


def make_task_runner(kind: str = "threads", *, max_workers: int = 4) -> Any:
    """``threads``: ThreadPoolTaskRunner(max_workers); ``dask``: a local Dask cluster of ``max_workers``
    single-threaded processes (prefect-dask). For an existing cluster, pass your own
    ``DaskTaskRunner(address=...)`` to ``run_ingest_flow(task_runner=...)``."""
    if max_workers < 1:
        raise ConfigError("max_workers must be >= 1")
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=max_workers)
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:  # pragma: no cover - prefect-dask is a dependency
            raise ConfigError("the dask task runner needs the prefect-dask package") from exc
        return DaskTaskRunner(cluster_kwargs={"n_workers": max_workers, "threads_per_worker": 1, "processes": True})
    raise ConfigError(f"unknown task runner {kind!r}; expected one of {', '.join(TASK_RUNNERS)}")


@dataclass
class _Doc:
    item: SourceItem
    status: str
    doc: ParsedDocument
    chunks: list[Chunk] = field(default_factory=list)


def _label(obj: Any) -> str:
    where = getattr(obj, "directory", None) or getattr(obj, "index_name", None)
    return f"{type(obj).__name__}({str(where)!r})" if where else repr(obj)


def _message(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, OndataError):
        return exc.message, type(exc).__name__
    return f"{type(exc).__name__}: {exc}", type(exc).__name__


def _batches(docs: list[_Doc], limit: int) -> Iterable[list[_Doc]]:
    batch: list[_Doc] = []
    size = 0
    for d in docs:
        batch.append(d)
        size += len(d.chunks)
        if size >= limit:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


@flow(name="ondata-ingest", validate_parameters=False, task_runner=ThreadPoolTaskRunner(max_workers=4))
def ingest_flow(
    components: ComponentsLike,
    options: IngestOptions = IngestOptions(),
    retry: RetryPolicy = RetryPolicy(),
    window: int = 32,
    source_label: str | None = None,
    index_label: str | None = None,
    artifact_key: str | None = ARTIFACT_KEY,
) -> dict:
    """Bring the index in step with the source; returns the run report as a dict (see module docstring).

    ``window``: documents fetched and parsed concurrently before their chunks are embedded and
    written (bounds memory; concurrency is bounded by the task runner's workers).
    """
    return ingest_flow_body(components, options=options, retry=retry, window=window, source_label=source_label,
                            index_label=index_label, artifact_key=artifact_key)


def ingest_flow_body(
    components: ComponentsLike,
    *,
    options: IngestOptions = IngestOptions(),
    retry: RetryPolicy = RetryPolicy(),
    window: int = 32,
    source_label: str | None = None,
    index_label: str | None = None,
    artifact_key: str | None = ARTIFACT_KEY,
) -> dict:
    """The body of ``ingest_flow``; must run inside a flow (it submits tasks)."""
    if window < 1:
        raise ConfigError("window must be >= 1")
    t_start = time.perf_counter()
    local = components if isinstance(components, Components) else None
    report = IngestReport(
        source=source_label or (repr(local.source) if local else "source"),
        index=index_label or (_label(local.index) if local else "index"),
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        dry_run=options.dry_run,
    )
    before = _stats(local.embedder) if local else None
    task_computed = task_hits = 0

    plan_t, fetch_t, embed_t, write_t, delete_t, finalize_t = (
        _io(t, retry) for t in (plan_task, fetch_parse_task, embed_task, write_task, delete_task, finalize_task)
    )
    chunk_t = chunk_task  # pure: never retried

    plan: SyncPlan = plan_t(components, options)
    report.listed, report.unchanged = plan.listed, len(plan.unchanged)
    report.results += problem_results(plan)
    log.info("plan: %s", plan.summary())

    def fail(item_id: str, exc: BaseException) -> None:
        message, kind = _message(exc)
        log.warning("%s failed: %s", item_id, message)
        report.results.append(DocumentResult(item_id, "failed", error=message, error_type=kind))

    if options.dry_run:
        report.results += planned_results(plan)
        return _finish(report, t_start, artifact_key)

    if plan.deleted or plan.deleted_elsewhere:
        delete_t(components, plan.deletions())
        report.results += [r for r in planned_results(plan) if r.status == "deleted"]

    changed = {i.id for i in plan.changed}
    todo = list(plan.to_process)
    for start in range(0, len(todo), window):
        items = todo[start:start + window]
        fetched = fetch_t.map(unmapped(components), items, max_bytes=unmapped(options.max_bytes))
        wait(fetched)
        parsed: list[tuple[SourceItem, ParsedDocument]] = []
        for item, fut in zip(items, fetched):
            if fut.state.is_completed():
                parsed.append((item, fut.result()))
            else:
                fail(item.id, _exception_of(fut.state) or OndataError("fetching failed", doc_id=item.id))
        chunked = chunk_t.map([d for _, d in parsed], [i for i, _ in parsed], chunking=unmapped(options.chunking))
        wait(chunked)
        docs: list[_Doc] = []
        for (item, doc), fut in zip(parsed, chunked):
            if fut.state.is_completed():
                docs.append(_Doc(item, "updated" if item.id in changed else "added", doc, fut.result()))
                report.documents_parsed += 1
                report.pages_parsed += doc.page_count or 0
            else:
                fail(item.id, _exception_of(fut.state) or OndataError("chunking failed", doc_id=item.id))

        def submit(batch: list[_Doc]) -> tuple[list[_Doc], Any, Any]:
            chunks = [c for d in batch for c in d.chunks]
            ef = embed_t.submit(components, chunks)
            wf = write_t.submit(components, chunks, ef, scope=plan.scope,
                                replace_sources=[d.item.id for d in batch if d.item.id in changed])
            return batch, ef, wf

        pending = [submit(b) for b in _batches(docs, options.batch_chunks)]
        while pending:
            batch, ef, wf = pending.pop(0)
            wait([ef, wf])
            if ef.state.is_completed():
                task_computed += ef.result().computed
                task_hits += ef.result().cache_hits
            if ef.state.is_completed() and wf.state.is_completed():
                for d in batch:
                    report.chunks_written += len(d.chunks)
                    report.results.append(DocumentResult(d.item.id, d.status, chunks=len(d.chunks),
                                                         pages=d.doc.page_count,
                                                         reason=", ".join(plan.reasons.get(d.item.id, ())) or None))
                continue
            exc = _exception_of(ef.state) if not ef.state.is_completed() else _exception_of(wf.state)
            if len(batch) > 1 and not is_transient(exc):  # isolate the bad document: one by one
                log.warning("a batch of %d documents failed (%s); retrying one by one", len(batch), exc)
                pending.extend(submit([d]) for d in batch)
            else:  # one document, or the service is down or throttling (splitting cannot help)
                for d in batch:
                    fail(d.item.id, exc or OndataError("writing failed", doc_id=d.item.id))

    finalize_t(components)
    if local is not None and before is not None:
        after = _stats(local.embedder)
        report.embeddings_computed, report.embedding_cache_hits = after[0] - before[0], after[1] - before[1]
    else:
        report.embeddings_computed, report.embedding_cache_hits = task_computed, task_hits
    return _finish(report, t_start, artifact_key)


def _finish(report: IngestReport, t_start: float, artifact_key: str | None) -> dict:
    report.seconds = time.perf_counter() - t_start
    if artifact_key:
        create_markdown_artifact(key=artifact_key, markdown=report.to_markdown(),
                                 description=f"Ingestion summary of {report.source}")
    log.info("ingestion done: %s", report.counts())
    return report.to_dict()


def run_ingest_flow(
    components: ComponentsLike,
    *,
    options: IngestOptions = IngestOptions(),
    task_runner: Any = "threads",
    max_workers: int = 4,
    retry: RetryPolicy = RetryPolicy(),
    window: int | None = None,
    source_label: str | None = None,
    index_label: str | None = None,
    artifact_key: str | None = ARTIFACT_KEY,
) -> dict:
    """Run ``ingest_flow`` with the chosen task runner (``"threads"``, ``"dask"`` or a TaskRunner instance)."""
    runner = make_task_runner(task_runner, max_workers=max_workers) if isinstance(task_runner, str) else task_runner
    if isinstance(components, Components) and not isinstance(runner, ThreadPoolTaskRunner):
        raise ConfigError("task runners other than threads run tasks in other processes; "
                          "pass a picklable components factory instead of built objects")
    return ingest_flow.with_options(task_runner=runner)(
        components, options=options, retry=retry, window=window or max(8, 4 * max_workers),
        source_label=source_label, index_label=index_label, artifact_key=artifact_key,
    )


__all__ = [
    "ARTIFACT_KEY", "Components", "ComponentsFactory", "EmbedResult", "RetryPolicy", "TASK_RUNNERS",
    "chunk_task", "delete_task", "embed_task", "fetch_parse_task", "finalize_task", "ingest_flow",
    "ingest_flow_body", "is_transient", "make_task_runner", "plan_task", "resolve", "retry_after_of",
    "retry_condition", "run_ingest_flow", "write_task",
]

