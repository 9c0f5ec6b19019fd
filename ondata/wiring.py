"""Wiring: which backend serves which setting. The only place that turns ``Settings`` into objects.

Backends never read ``os.environ``; everything they need is passed here. Imports are lazy so that
``ondata --help`` stays fast and a local user never imports Azure SDKs.

Retries (DESIGN.md 4, 11): one layer owns the retries of each backend, decided here. Every remote
backend built here (Azure OpenAI embeddings and chat, Azure AI Search, Blob Storage) gets
``retry_policy(settings)`` and retries its own requests with the SDK's retries off; the Prefect
I/O tasks over them get ``task_retry_policy(settings)``, which is ``RetryPolicy.off()``.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from indexers.errors import ConfigError
from pydantic import SecretStr

from ondata.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from indexers.ports import Embedder, SearchIndex
    from indexers.retry import RetryPolicy
    from indexers.local_vectors import VectorConfig
    from pipelines.engine import IngestOptions
    from pipelines.ports import DocumentSource


def secret(value: "SecretStr | None") -> str | None:
    """The plain value of an optional secret setting (only ever passed to a client, never logged)."""
    return value.get_secret_value() if value is not None else None


def retry_policy(settings: Settings) -> "RetryPolicy":
    """The one retry policy every remote backend built here uses (``ONDATA_RETRY_*``).

    One layer owns the retries of each backend: the backend. The Azure OpenAI embedder and chat
    model, Azure AI Search and Blob Storage each retry their own requests with this policy (their
    SDKs' retries switched off), so ``task_retry_policy`` keeps the Prefect tasks from retrying again.
    """
    from indexers.retry import RetryPolicy

    return RetryPolicy(attempts=settings.retry_attempts, backoff_seconds=settings.retry_backoff_seconds,
                       max_backoff_seconds=max(30.0, settings.retry_backoff_seconds),
                       max_retry_after_seconds=settings.retry_max_wait_seconds)


def task_retry_policy(settings: Settings) -> "RetryPolicy":
    """Retries of the Prefect I/O tasks over backends built here: none (the backends retry; see ``retry_policy``)."""
    from indexers.retry import RetryPolicy

    return RetryPolicy.off()


# A health check (``ondata doctor``) waits at most this long per call and retries twice within about a
# second, so a refused connection is reported at once while a throttled (429) service is still retried.
PROBE_TIMEOUT_S = 5.0


def probe_retry_policy() -> "RetryPolicy":
    """The retry policy of a health check: 3 attempts, short backoff, at most ``PROBE_TIMEOUT_S`` of Retry-After."""
    from indexers.retry import RetryPolicy

    return RetryPolicy(attempts=3, backoff_seconds=0.25, max_backoff_seconds=1.0, max_retry_after_seconds=PROBE_TIMEOUT_S)


def build_embedder(settings: Settings, *, cached: bool = True, probe: bool = False) -> "Embedder":
    """The configured embedder, wrapped in the persistent embedding cache unless ``cached=False``.

    ``probe=True`` builds it for a health check: ``PROBE_TIMEOUT_S`` per call and ``probe_retry_policy()``.

    When no embedder is set explicitly and a local index already exists, the index's own model is
    used, so `ondata ask` answers from an index built with `--embedder hashing` without repeating it.
    """
    kind = settings.embedder_kind
    if settings.embedder is None and settings.profile == "local":
        existing = _local_index_model(settings)
        if existing is not None and existing[0].startswith("hashing"):
            kind = "hashing"
            settings = settings.model_copy(update={"hashing_dimensions": existing[1]})
    if kind == "hashing":
        from indexers.embedders.hashing import HashingEmbedder

        inner = HashingEmbedder(dimensions=settings.hashing_dimensions)
    elif kind == "local":
        from indexers.embedders.local import SentenceTransformerEmbedder

        inner = SentenceTransformerEmbedder(model=settings.local_model)
    elif kind == "azure_openai":
        from indexers.embedders.azure_openai import AzureOpenAIEmbedder

        if not settings.azure_openai_endpoint:
            raise ConfigError("the azure_openai embedder needs AZURE_OPENAI_ENDPOINT")
        inner = AzureOpenAIEmbedder(
            endpoint=settings.azure_openai_endpoint,
            deployment=settings.azure_openai_embedding_deployment,
            api_key=secret(settings.azure_openai_api_key),
            api_version=settings.azure_openai_api_version,
            dimensions=settings.azure_openai_embedding_dimensions,
            retry=probe_retry_policy() if probe else retry_policy(settings),
            **({"timeout": PROBE_TIMEOUT_S} if probe else {}),
        )
    else:  # pragma: no cover - guarded by the settings Literal
        raise ConfigError(f"unknown embedder {kind!r}")
    if not cached:
        return inner
    from indexers.embedders.cache import CachedEmbedder, EmbeddingCache

    path = Path(settings.embedding_cache_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return CachedEmbedder(inner, EmbeddingCache(path, dtype=settings.embedding_cache_dtype))


def build_index(settings: Settings, embedder: "Embedder") -> "SearchIndex":
    """The configured search index (not yet ensured)."""
    if settings.profile == "azure":
        from indexers.azure_search import AzureSearchIndex

        if not settings.azure_search_endpoint:
            raise ConfigError("the azure profile needs AZURE_SEARCH_ENDPOINT")
        return AzureSearchIndex(
            endpoint=settings.azure_search_endpoint,
            index_name=settings.azure_search_index,
            api_key=secret(settings.azure_search_key),
            dimensions=embedder.dimensions,
            model_id=embedder.model_id,
            filterable_metadata=[k.strip() for k in settings.azure_search_filterable_metadata.split(",") if k.strip()],
            quantization=settings.azure_search_quantization,
            hybrid_fusion=settings.azure_search_hybrid_fusion,
            retry=retry_policy(settings),
        )
    from indexers.local_index import LocalIndex

    return LocalIndex(settings.index_dir, dimensions=embedder.dimensions, model_id=embedder.model_id,
                      vectors=vector_config(settings))


def vector_config(settings: Settings) -> "VectorConfig":
    """The local index's vector arm settings (``ONDATA_VECTOR_INDEX``, ``ONDATA_IVF_*``, ``ONDATA_HNSW_*``,
    ``ONDATA_FAISS_THREADS``)."""
    from indexers.local_vectors import VectorConfig

    return VectorConfig(
        kind=settings.vector_index, ivf_nlist=settings.ivf_nlist, ivf_nprobe=settings.ivf_nprobe,
        ivf_rerank=settings.ivf_rerank, hnsw_m=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction,
        ef_search=settings.hnsw_ef_search, exact_below=settings.vector_exact_below, threads=settings.faiss_threads,
    )


def build_source(
    settings: Settings,
    path: str | Path | None = None,
    *,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    follow_symlinks: bool = False,
    scope: str | None = None,
) -> "DocumentSource":
    """A local folder source for ``path``, or the configured Blob Storage container (``az://container/prefix``).

    ``include`` / ``exclude``: glob patterns (empty ``include`` = everything); ``follow_symlinks``
    (folders only) follows links that stay inside the folder; ``scope`` names the source scope
    (default: the folder's resolved path, or ``account/container/prefix``).
    """
    globs = {"include": tuple(include) or ("*",), "exclude": tuple(exclude)}
    target = str(path) if path is not None else None
    if target is None or target.startswith("az://"):
        from pipelines.sources.blob import BlobDocumentSource

        container, prefix = settings.azure_storage_container, settings.azure_storage_prefix
        if target:
            rest = target[len("az://"):]
            container, _, prefix = rest.partition("/")
        if not container:
            raise ConfigError("give a folder to ingest, or set AZURE_STORAGE_CONTAINER (or pass az://container/prefix)")
        return BlobDocumentSource(
            container=container,
            prefix=prefix,
            connection_string=secret(settings.azure_storage_connection_string),
            account_url=settings.azure_storage_account_url,
            sas_token=secret(settings.azure_storage_sas_token),
            groups_metadata_key=settings.groups_metadata_key,
            max_bytes=settings.max_document_bytes,
            retry=retry_policy(settings),
            scope=scope,
            **globs,
        )
    from pipelines.sources.local import LocalFolderSource

    return LocalFolderSource(Path(target), max_bytes=settings.max_document_bytes, follow_symlinks=follow_symlinks,
                             scope=scope, **globs)


def check_scope_and_cleanup(source: str, *, scope: str | None, cleanup: str | None, yes: bool,
                            unattended: bool) -> str:
    """The ``--scope`` / ``--cleanup`` / ``--yes`` of a run (``ondata ingest``, ``ondata schedule``, the
    deployable flow), checked before anything is built; returns the cleanup mode (default: ``none`` for
    a single file, else ``scoped``). ``unattended``: nobody can confirm (a schedule, a deployment), so
    ``full`` needs ``yes``. Raises ``ConfigError`` (exit 2)."""
    from pipelines.sync import CLEANUP_MODES

    if cleanup is not None and cleanup not in CLEANUP_MODES:
        raise ConfigError(f"--cleanup must be one of {', '.join(CLEANUP_MODES)}, not {cleanup!r}")
    if scope is not None and not scope.strip():
        raise ConfigError("--scope must not be empty (leave it out for the folder's path)")
    if cleanup == "full" and unattended and not yes:
        raise ConfigError("--cleanup full deletes every document not in this source, and a scheduled run cannot "
                          "ask: pass --yes to confirm (try `ondata ingest --cleanup full --dry-run` first)")
    if cleanup is None:
        cleanup = "none" if not source.startswith("az://") and Path(source).is_file() else "scoped"
    return cleanup


def ingest_options(settings: Settings, *, dry_run: bool = False, keep_stale_on_error: bool = False,
                   batch_chunks: int | None = None, cleanup: str = "scoped") -> "IngestOptions":
    """The ``IngestOptions`` of a run, from settings (chunking, size limit) and the run's own flags.

    The one place ``ondata ingest``, ``ondata eval run --docs`` and the Prefect flows get them from."""
    from pipelines.chunking import ChunkingConfig
    from pipelines.engine import IngestOptions

    return IngestOptions(
        chunking=ChunkingConfig(chunk_size=settings.chunk_size, overlap=settings.chunk_overlap,
                                page_bounded=settings.chunk_page_bounded),
        max_bytes=settings.max_document_bytes,
        dry_run=dry_run,
        keep_stale_on_error=keep_stale_on_error,
        cleanup=cleanup,  # type: ignore[arg-type]
        **({"batch_chunks": batch_chunks} if batch_chunks is not None else {}),
    )


def ingest_guard(settings: Settings, *, dry_run: bool = False):
    """What an ingest holds while it writes: for a local index, its rebuild lock shared
    (``local_generations.ingest_lock``: refused with ``RebuildInProgress`` while ``ondata index rebuild``
    runs, and a rebuild refused while the ingest runs); nothing for Azure or a dry run.

    The one place ``ondata ingest``, ``ondata eval run --docs`` and the Prefect flows get it from."""
    if settings.profile != "local" or dry_run:
        return nullcontext()
    from indexers.local_generations import ingest_lock

    return ingest_lock(Path(settings.index_dir))


def open_local_index(settings: Settings):
    """Open an existing local index without knowing its model; a clear error when there is none."""
    from indexers.local_generations import has_index
    from indexers.local_index import LocalIndex

    if not has_index(Path(settings.index_dir)):
        raise ConfigError(f"no index at {settings.index_dir}; run `ondata ingest PATH` first")
    return LocalIndex.open_existing(settings.index_dir, vectors=vector_config(settings))


def open_index(settings: Settings) -> "SearchIndex":
    """The configured index, opened to list and delete documents (``ondata index sources|remove``): an
    existing local index (its own model), or the Azure AI Search index (built for the configured embedder)."""
    if settings.profile == "azure":
        return build_index(settings, build_embedder(settings, cached=False))
    return open_local_index(settings)


def build_chat_model(settings: Settings):
    """The configured Azure OpenAI (or OpenAI-compatible) chat deployment."""
    from retrieval.azure_openai_chat import AzureOpenAIChatModel

    if not settings.azure_openai_endpoint:
        raise ConfigError("the azure_openai chat model needs AZURE_OPENAI_ENDPOINT")
    return AzureOpenAIChatModel(
        endpoint=settings.azure_openai_endpoint,
        deployment=settings.azure_openai_chat_deployment,
        api_key=secret(settings.azure_openai_api_key),
        api_version=settings.azure_openai_api_version,
        retry=retry_policy(settings),
    )


def build_answerer(settings: Settings, *, embedder: "Embedder | None" = None):
    """The configured ``Answerer``: the offline extractive one, or a chat model answering the grounded messages.

    ``embedder`` (the index's own model) gives the extractive answerer its question-sentence cosine
    (it embeds a shortlist of 8 sentences per answer: ~20-30 ms on 2 CPU cores, ``bench/answers.py``);
    without it the answerer scores lexically, with its lexical threshold."""
    kind = settings.chat_kind
    if kind == "extractive":
        from retrieval.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(embedder=embedder)
    if kind == "azure_openai":
        from retrieval.chat_answerer import ChatAnswerer

        return ChatAnswerer(build_chat_model(settings))
    raise ConfigError(f"unknown chat model {kind!r}")  # pragma: no cover - guarded by the settings Literal


def _local_index_model(settings: Settings) -> tuple[str, int] | None:
    """(model_id, dimensions) of the local index at ``settings.index_dir``, or None when there is none."""
    from indexers.errors import IndexError_
    from indexers.local_index import LocalIndex

    try:
        return LocalIndex.read_model(settings.index_dir)
    except IndexError_:
        return None
