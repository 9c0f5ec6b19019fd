"""Prefect flows: the run engine (``pipelines.engine``) with the ``PrefectRunner``, whose stages are tasks.

Tasks are thin wrappers over the engine's plain steps (DESIGN.md 3):

================  =========================================  ===================================
task              plain function                             retried (transient errors only)
================  =========================================  ===================================
plan              ``index.ensure`` + ``list_and_plan``       yes (lists the source and the index)
prepare           ``prepare_document`` over a group of       yes (download); never a ParseError
                  documents (fetch, parse, chunk)
embed             ``embed_chunks``                           yes (remote embedders)
write             ``write_documents`` (delete+upsert)        yes (idempotent)
delete            ``delete_documents``                       yes (idempotent)
finalize          ``index.flush()``                          yes
================  =========================================  ===================================

Task runs are named after what they work on (``parse hr/policy.pdf, a.md +6``, ``embed 64 chunks: a.pdf +2``),
flow runs ``ingest-<scope>-<YYYYMMDD-HHMM>`` (``run_name``), each document's result is one log line
of the flow run, and the report is the Markdown artifact ``ingestion-summary`` (documents added,
updated, deleted, failed and skipped, with stage timings).

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

Per-document failures land in the report as ``failed`` and never fail the run. Interrupts: inside
the main thread, the first SIGINT/SIGTERM stops the run as ``ondata ingest`` does (see
``pipelines.engine``); the flow run then ends Cancelled (message: the ``interrupted: ...`` line), its
result the report with ``interrupted: true`` (``run_ingest_flow`` returns it).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Cancelled, State
from prefect.task_runners import ThreadPoolTaskRunner

from indexers.errors import ConfigError
from indexers.ports import Embedder, SearchIndex
from indexers.records import Chunk
from indexers.retry import RetryPolicy, attempts_of, is_transient, retry_after_of  # re-exported (see __all__)
from pipelines.chunking import ChunkingConfig
from pipelines.engine import (
    EMBED_SLICE,
    Deletions,
    DocumentResult,
    Embedded,
    IngestOptions,
    IngestReport,
    Prepared,
    delete_documents,
    describe,
    embed_chunks,
    fingerprint_of,
    list_and_plan,
    lookahead,
    prepare_document,
    run_ingest,
    stop_on_signals,
    write_documents,
)
from pipelines.ports import DocumentSource
from pipelines.records import SourceItem
from pipelines.sync import SyncPlan

log = logging.getLogger(__name__)

ARTIFACT_KEY = "ingestion-summary"
PREPARE_GROUP = 8  # documents per prepare task (see PrefectRunner)
EMBED_PARALLEL = 4  # embed tasks (of EMBED_SLICE chunks each) in flight together
PREPARE_GROUP_BYTES = 8 << 20  # and at most about this many listed bytes
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

def state_result(state: Any, *, raise_on_failure: bool = True) -> Any:
    """A final state's result, always synchronously. Prefect's ``State.result`` returns a coroutine
    instead when it *guesses* it runs in async code (an event loop or an async run context in this
    thread, e.g. left by a Dask client), which once handed a caller a coroutine for its report."""
    return state.result(raise_on_failure=raise_on_failure, _sync=True)


def _exception_of(state: Any) -> BaseException | None:
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        state_result(state)
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


@task(name="plan", task_run_name="plan", cache_policy=NO_CACHE)
def plan_task(components: ComponentsLike, *, ensure: bool = True, options: IngestOptions = IngestOptions()) -> SyncPlan:
    c = resolve(components)
    if ensure:
        c.index.ensure()
    return list_and_plan(c.source, c.index, cleanup=options.cleanup, fingerprint=fingerprint_of(options, c.embedder),
                         record_stats=ensure)


@task(name="prepare", task_run_name="parse {label}", cache_policy=NO_CACHE)
def prepare_task(components: ComponentsLike, items: Sequence[SourceItem], *, chunking: ChunkingConfig, max_bytes: int,
                 label: str = "") -> list[Prepared | Exception]:
    """Fetch, parse and chunk a group of documents in one task run (Prefect's cost is per task run, about
    0.25 CPU s: see docs/scaling.md). One result per item, in order: its ``Prepared``, or the exception
    that failed it (a bad document fails alone). A transient error (the source still failing after its
    own retries) fails the task, so the task's retry policy covers the group."""
    source = resolve(components).source
    out: list[Prepared | Exception] = []
    for item in items:
        try:
            out.append(prepare_document(source, item, chunking=chunking, max_bytes=max_bytes))
        except Exception as exc:  # noqa: BLE001 - returned and recorded per document by the engine
            if is_transient(exc):
                raise
            out.append(exc)
    return out


@task(name="embed", task_run_name="embed {label}", cache_policy=NO_CACHE)
def embed_task(components: ComponentsLike, chunks: Sequence[Chunk], *, label: str = "") -> Embedded:
    return embed_chunks(chunks, embedder=resolve(components).embedder)


@task(name="write", task_run_name="write {label}", cache_policy=NO_CACHE)
def write_task(components: ComponentsLike, chunks: Sequence[Chunk], vectors: np.ndarray,
               *, replace_sources: Sequence[str], scope: str | None = None, label: str = "") -> int:
    write_documents(chunks, index=resolve(components).index, vectors=vectors, replace_sources=replace_sources,
                    scope=scope)
    return len(chunks)


@task(name="delete", task_run_name="delete {label}", cache_policy=NO_CACHE)
def delete_task(components: ComponentsLike, deletions: Deletions, *, label: str = "") -> int:
    delete_documents(list(deletions), index=resolve(components).index)
    return sum(len(ids) for _, ids in deletions)


@task(name="finalize", task_run_name="flush the index", cache_policy=NO_CACHE)
def finalize_task(components: ComponentsLike) -> None:
    resolve(components).index.flush()


def _documents_label(ids: Sequence[str], what: str = "") -> str:
    ids = list(dict.fromkeys(ids))
    head = ", ".join(ids[:2]) + (f" +{len(ids) - 2}" if len(ids) > 2 else "")
    return f"{what}: {head}" if what else head


# ---------------------------------------------------------------- the runner


class _TaskOutcome:
    """One document of a submitted prepare task (a group of documents) as the engine's ``Outcome``."""

    def __init__(self, future: Any, position: int) -> None:
        self.future, self.position = future, position

    def done(self) -> bool:
        return bool(self.future.state.is_final())

    def wait(self, timeout: float | None = None) -> bool:
        self.future.wait(timeout)
        return self.done()

    def result(self) -> Prepared:
        got = self.future.result()[self.position]  # a failed task (transient) raises here, for each of its items
        if isinstance(got, Exception):
            raise got
        return got


def _groups(items: Iterable[SourceItem], *, size: int, max_bytes: int) -> Iterator[list[SourceItem]]:
    """Consecutive groups of at most ``size`` items and about ``max_bytes`` of listed size (a large file
    goes alone; an item of unknown size counts as empty)."""
    group: list[SourceItem] = []
    total = 0
    for item in items:
        if group and (len(group) >= size or total + (item.size or 0) > max_bytes):
            yield group
            group, total = [], 0
        group.append(item)
        total += item.size or 0
    if group:
        yield group


class PrefectRunner:
    """The engine's stages as Prefect tasks (must run inside a flow).

    ``request_chunks``: chunks per embed task (one request to a remote model); ``embed_parallel``: embed
    tasks in flight together; ``group`` / ``group_bytes``: documents (at most, and about this many listed bytes) fetched, parsed and
    chunked by one prepare task: Prefect's per-task-run cost, not the parsing, bounded per-document tasks
    (docs/scaling.md); ``window``: prepare tasks submitted ahead of the one being batched (concurrency is
    bounded by the task runner's workers); ``task_runner``: an entered TaskRunner to submit to
    (default: the flow's own). Batches are written full (``batch_chunks``): documents are prepared
    concurrently, and a remote model prefers few large requests.
    """

    eager_flush = False

    def __init__(self, components: ComponentsLike, *, retry: RetryPolicy = RetryPolicy(), window: int = 8,
                 task_runner: Any = None, source_label: str | None = None, index_label: str | None = None,
                 request_chunks: int = EMBED_SLICE, embed_parallel: int = EMBED_PARALLEL, group: int = PREPARE_GROUP,
                 group_bytes: int = PREPARE_GROUP_BYTES) -> None:
        if window < 1:
            raise ConfigError("window must be >= 1")
        if min(group, group_bytes, request_chunks, embed_parallel) < 1:
            raise ConfigError("group, group_bytes, request_chunks and embed_parallel must be >= 1")
        self.components, self.window, self.task_runner = components, window, task_runner
        self.request_chunks, self.embed_slice = request_chunks, request_chunks * embed_parallel
        self.group, self.group_bytes = group, group_bytes
        local = components if isinstance(components, Components) else None
        self.source_label = source_label or (describe(local.source) if local else "source")
        self.index_label = index_label or (describe(local.index) if local else "index")
        self._plan, self._prepare, self._embed, self._write, self._delete, self._finalize = (
            _io(t, retry) for t in (plan_task, prepare_task, embed_task, write_task, delete_task, finalize_task))

    def _submit(self, task_obj: Any, **parameters: Any) -> Any:
        if self.task_runner is not None:
            return self.task_runner.submit(task_obj, parameters=parameters)
        return task_obj.submit(**parameters)

    def _run(self, task_obj: Any, **parameters: Any) -> Any:
        return self._submit(task_obj, components=self.components, **parameters).result()

    def plan(self, *, ensure: bool, options: IngestOptions) -> SyncPlan:
        return self._run(self._plan, ensure=ensure, options=options)

    def prepare(self, items: Sequence[SourceItem], *, options: IngestOptions) -> Iterator[tuple[SourceItem, _TaskOutcome]]:
        """Documents in groups of up to ``group`` (and ``group_bytes``) per prepare task, up to ``window``
        tasks ahead; those not started when the run stops are cancelled by the task runner's shutdown."""
        def submit(group: list[SourceItem]) -> Any:
            return self._submit(self._prepare, components=self.components, items=group, chunking=options.chunking,
                                max_bytes=options.max_bytes, label=_documents_label([i.id for i in group]))

        for group, future in lookahead(_groups(items, size=self.group, max_bytes=self.group_bytes), submit,
                                       ahead=self.window):
            for position, item in enumerate(group):
                yield item, _TaskOutcome(future, position)

    def embed(self, chunks: Sequence[Chunk]) -> Embedded:
        """One embed task per ``request_chunks`` chunks, all in flight together (the engine hands over
        ``embed_slice`` = ``request_chunks`` x ``embed_parallel`` chunks at a time): the remote model's
        latency is paid once per slice instead of once per request. The embedder's retry policy waits
        out any 429 the quota answers."""
        chunks = list(chunks)
        futures = [self._submit(self._embed, components=self.components, chunks=part,
                                label=_documents_label([c.source_id for c in part], f"{len(part)} chunks"))
                   for part in (chunks[i:i + self.request_chunks] for i in range(0, len(chunks), self.request_chunks))]
        parts = [f.result() for f in futures]
        if len(parts) == 1:
            return parts[0]
        return Embedded(np.concatenate([e.vectors for e in parts]), computed=sum(e.computed for e in parts),
                        cache_hits=sum(e.cache_hits for e in parts), model_seconds=sum(e.model_seconds for e in parts))

    def write(self, chunks: Sequence[Chunk], *, vectors: np.ndarray, replace_sources: Sequence[str],
              scope: str | None) -> None:
        ids = [c.source_id for c in chunks] or list(replace_sources)
        self._run(self._write, chunks=list(chunks), vectors=vectors, replace_sources=list(replace_sources),
                  scope=scope, label=_documents_label(ids))

    def delete(self, deletions: Deletions) -> None:
        groups = [(scope, list(ids)) for scope, ids in deletions]
        self._run(self._delete, deletions=groups, label=_documents_label([i for _, ids in groups for i in ids]))

    def flush(self) -> None:
        self._run(self._finalize)


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


def scope_of(source: str) -> str:
    """The scope part of a run name: a folder's name, or ``container-prefix`` of ``az://container/prefix``."""
    text = str(source).rstrip("/")
    if text.startswith("az://"):
        parts = [p for p in text[len("az://"):].split("/") if p]
        return "-".join(parts) or "blob"
    return PurePosixPath(text.replace("\\", "/")).name or "source"


def run_name(source: str, *, now: datetime | None = None) -> str:
    """``ingest-<scope>-<YYYYMMDD-HHMM>`` (UTC)."""
    when = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M")
    return f"ingest-{scope_of(source)}-{when}"


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    return run_name(str(params.get("source_label") or params.get("source") or "source"))


def ingest_flow_body(
    components: ComponentsLike,
    *,
    options: IngestOptions = IngestOptions(),
    retry: RetryPolicy = RetryPolicy(),
    window: int = 8,
    source_label: str | None = None,
    index_label: str | None = None,
    artifact_key: str | None = ARTIFACT_KEY,
    task_runner: Any = None,
) -> "dict | State":
    """Run the engine with a ``PrefectRunner``; must run inside a flow. Logs one line per document,
    publishes the Markdown artifact and returns the report as a dict."""
    runner = PrefectRunner(components, retry=retry, window=window, task_runner=task_runner,
                           source_label=source_label, index_label=index_label)
    logger = get_run_logger()

    def on_plan(plan: SyncPlan) -> None:
        s = plan.summary()
        logger.info("plan: %d listed: %d new, %d changed, %d deleted, %d unchanged, %d skipped or failed",
                    plan.listed, s["added"], s["changed"], s["deleted"], s["unchanged"], len(plan.problems))

    def on_result(result: DocumentResult) -> None:
        (logger.warning if result.status == "failed" else logger.info)("%s", result.describe())

    with stop_on_signals(threading.Event()) as stop:
        report = run_ingest(runner, options=options, on_plan=on_plan, on_result=on_result, stop=stop)
    if report.interrupted:
        logger.warning("%s", report.interrupted_line())
    if artifact_key:
        create_markdown_artifact(key=artifact_key, markdown=report.to_markdown(),
                                 description=f"Ingestion summary of {report.source}")
    logger.info("ingestion %s: %s in %.1f s", "interrupted" if report.interrupted else "done", report.counts(),
                report.seconds)
    if report.interrupted:
        # the flow run ends Cancelled (not Completed), its message the one line; the report is its result
        return Cancelled(message=report.interrupted_line(), data=report.to_dict())
    return report.to_dict()


@flow(name="ondata-ingest", flow_run_name=_flow_run_name, validate_parameters=False,
      task_runner=ThreadPoolTaskRunner(max_workers=4))
def ingest_flow(
    components: ComponentsLike,
    options: IngestOptions = IngestOptions(),
    retry: RetryPolicy = RetryPolicy(),
    window: int = 8,
    source_label: str | None = None,
    index_label: str | None = None,
    artifact_key: str | None = ARTIFACT_KEY,
) -> "dict | State":
    """Bring the index in step with the source; returns the run report as a dict (see module docstring).

    ``window``: documents fetched and parsed concurrently ahead of the batch being embedded (bounds
    memory; concurrency is bounded by the task runner's workers).
    """
    return ingest_flow_body(components, options=options, retry=retry, window=window, source_label=source_label,
                            index_label=index_label, artifact_key=artifact_key)


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
    state = ingest_flow.with_options(task_runner=runner)(
        components, options=options, retry=retry, window=window or max(8, 2 * max_workers),
        source_label=source_label, index_label=index_label, artifact_key=artifact_key, return_state=True,
    )
    # an interrupted run ends Cancelled and still returns its report; a failed one raises its error
    return state_result(state, raise_on_failure=not state.is_cancelled())


__all__ = [
    "ARTIFACT_KEY", "Components", "ComponentsFactory", "IngestReport", "PrefectRunner", "RetryPolicy",
    "TASK_RUNNERS", "delete_task", "embed_task", "finalize_task", "ingest_flow", "ingest_flow_body", "is_transient",
    "make_task_runner", "plan_task", "prepare_task", "resolve", "retry_after_of", "retry_condition",
    "run_ingest_flow", "run_name", "scope_of", "write_task",
]
