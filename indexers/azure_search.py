"""Azure AI Search backend of the ``SearchIndex`` port, on ``azure-search-documents`` 12.

Schema (created or extended by ``ensure()``): key ``id`` (sortable, for paging); searchable
``content`` and ``title``; retrievable ``url``, ``filepath``, ``section``, ``page_start``,
``page_end``, ``chunk_index``, ``char_start``, ``char_end`` (the filterable ones of
``indexers.filters.CORE_FIELDS`` are filterable); filterable/facetable ``scope`` (the document's
source scope; documents written before scopes have none and count as scope ``""``), ``source_id``,
``source_version``, ``source_chunks``; retrievable ``ingested_at`` (when the chunk was written);
filterable ``groups`` (``Collection(Edm.String)``, ACLs);
``metadata`` as a JSON string; one ``meta_<key>`` filterable field per ``filterable_metadata`` key;
``content_vector`` (HNSW, cosine, ``dimensions`` from the embedder, optional scalar/binary
quantization); a semantic configuration ``ondata-semantic`` (title + content). The embedder's
``model_id`` and the dimensions are stored in the index description and checked by ``ensure()``;
so are the recorded scopes (``record_scope`` / ``list_scopes``: where each scope was ingested from)
and, while ``ondata index rebuild`` runs, its lock (``take_rebuild_lock``: who, since when, building
which index; stale after ``REBUILD_LOCK_STALE_S``), every change written with ``If-Match`` on the
definition's ETag (``_update_meta``).
Beside it, the sources index ``<index name>-sources`` (``indexers.azure_sources``) holds one document
per source, kept by every write, which ``list_sources()`` reads.

``index_name`` may name an index alias (the service resolves it for document operations and index
definitions): ``ondata index rebuild`` fills a new index ``<name>-v<N+1>`` and points the alias at it
(``alias_target``, ``point_alias``), keeping the old index until it is dropped (``delete_index_named``;
the service refuses to delete an index an alias maps to). The sources index belongs to the index the
alias maps to (``<name>-v<N>-sources``, resolved once per client), so a rebuilt index has its own
and the alias switches both; a client that resolved the alias before a swap keeps its sources index
(a write during a rebuild lands in the index being replaced, as it does locally).

Retries: the SDK's own retry policy is DISABLED (``retry_total=0``); this backend is the one layer
that retries (``indexers.retry``): every service call gets ``retry.attempts`` attempts in all, for
429/408/5xx and connection errors, waiting the ``Retry-After`` / ``retry-after-ms`` the service asks
for (exponential backoff otherwise). The documents of a 207 answer whose status is retryable (409,
422, 503 per the REST reference; 429 too) are sent again within the same budget. What is left is a
``TransientError`` carrying ``attempts``, which no layer above retries again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence, TypeVar

import numpy as np

from indexers import azure_sources as sources_index
from indexers.errors import IndexError_, IndexSchemaError, OndataError, TransientError
from indexers.filters import CORE_FIELDS, FilterError, check_field, odata_quote, odata_search_in, to_odata
from indexers.records import (ALL_GROUPS, Chunk, Groups, IndexStats, ScopeRecord, SearchHit, SearchRequest, SourceRecord,
                              check_groups)
from indexers.retry import RetryPolicy, is_transient, retry_after_of

if TYPE_CHECKING:  # pragma: no cover
    from azure.search.documents import SearchClient
    from azure.search.documents.indexes import SearchIndexClient

log = logging.getLogger(__name__)

T = TypeVar("T")

QueryType = Literal["simple", "semantic", "vector", "vector_simple_hybrid", "vector_semantic_hybrid"]
QUERY_TYPES: tuple[str, ...] = ("simple", "semantic", "vector", "vector_simple_hybrid", "vector_semantic_hybrid")

SCHEMA_VERSION = 1
VECTOR_FIELD = "content_vector"
VECTOR_PROFILE = "ondata-vector-profile"
HNSW_CONFIG = "ondata-hnsw"
SEMANTIC_CONFIG = "ondata-semantic"
COMPRESSION_NAME = "ondata-compression"
_DESCRIPTION_PREFIX = "ondata "
#: Read-modify-write attempts of the index description (``_update_meta``) when other writers change it.
_META_ATTEMPTS = 8
#: A rebuild lock older than this is stale (its rebuild died without releasing it) and is taken over.
REBUILD_LOCK_STALE_S = 24 * 3600.0
MAX_BATCH_DOCUMENTS = 1000  # service limit per docs/index request
MAX_BATCH_BYTES = 16_000_000  # service limit is 16 MB per request (kept just under 16 MiB)
RETRYABLE_DOCUMENT_STATUS = frozenset({409, 422, 503, 429})
_KEY_OK = re.compile(r"^[A-Za-z0-9_\-=]{1,1024}$")
_META_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SOURCES_PER_QUERY = 50
_PAGE = 1000

_RESULT_FIELDS = (
    "id", "source_id", "content", "chunk_index", "title", "url", "filepath", "page_start", "page_end",
    "char_start", "char_end", "section", "groups", "metadata", "source_version", "source_chunks", "scope",
)

_META_TYPES = {"string": "Edm.String", "int": "Edm.Int64", "float": "Edm.Double", "bool": "Edm.Boolean"}


class AzureSearchAuthError(IndexError_):
    """Azure AI Search rejected the credentials (HTTP 401/403)."""


class IndexWriteError(IndexError_):
    """Some documents could not be written; ``failures`` maps chunk id -> (HTTP status, service message)."""

    def __init__(self, message: str, *, failures: Mapping[str, tuple[int, str]], doc_id: str | None = None) -> None:
        super().__init__(message, doc_id=doc_id)
        self.failures = dict(failures)


class _RetryableDocuments(TransientError):
    """A 207 answer whose failed documents may succeed when sent again (409/422/429/503)."""

    def __init__(self, failures: Mapping[str, tuple[int, str]]) -> None:
        super().__init__(f"{len(failures)} document(s) were not written (retryable per-document status)")
        self.failures = dict(failures)


class AzureSearchIndex:
    """A ``SearchIndex`` stored in an Azure AI Search index.

    Authentication: ``api_key`` (``AzureKeyCredential``), else ``credential``, else
    ``DefaultAzureCredential`` (Entra ID). Clients are created lazily on first use.

    Options (keyword-only): ``quantization`` (``None``, ``"scalar"`` or ``"binary"`` vector
    compression), ``semantic`` (add the semantic configuration), ``query_type`` (the default On
    Your Data query type; ``None`` derives it from each request's mode), ``hybrid_fusion`` (how a
    ``vector_simple_hybrid`` query is fused: ``"client"`` (default) sends the text and the vector arm
    as two concurrent requests and fuses them with the same RRF (k=60) the service uses, so every hit
    carries each arm's rank and score like the local index; ``"service"`` sends one hybrid request
    and the service fuses, without per-arm details; ``vector_semantic_hybrid`` is always fused by the
    service because the semantic ranker reranks the fused set), ``filterable_metadata``
    (metadata keys that get a filterable ``meta_<key>`` field: a list of keys (strings) or a mapping
    key -> ``"string" | "int" | "float" | "bool"``), ``batch_size`` / ``max_batch_bytes`` (upload
    batch limits), ``retry`` (the ``indexers.retry.RetryPolicy``),
    ``api_version``, ``transport`` and ``client_kwargs`` (passed to the SDK clients, for tests).
    """

    def __init__(
        self,
        *,
        endpoint: str,
        index_name: str,
        dimensions: int,
        model_id: str,
        api_key: str | None = None,
        credential: Any = None,
        quantization: Literal["scalar", "binary"] | None = None,
        semantic: bool = True,
        query_type: QueryType | None = None,
        hybrid_fusion: Literal["client", "service"] = "client",
        filterable_metadata: Sequence[str] | Mapping[str, str] = (),
        batch_size: int = MAX_BATCH_DOCUMENTS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        retry: RetryPolicy = RetryPolicy(),
        api_version: str | None = None,
        transport: Any = None,
        client_kwargs: Mapping[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not endpoint:
            raise ValueError("endpoint must not be empty")
        if not index_name or not re.match(r"^[a-z0-9][a-z0-9-]{0,127}$", index_name):
            raise ValueError(
                f"invalid Azure AI Search index name {index_name!r}: use lower-case letters, digits and dashes"
            )
        if len(index_name) > sources_index.MAX_BASE_NAME:
            raise ValueError(f"Azure AI Search index name {index_name!r} is over {sources_index.MAX_BASE_NAME} "
                             f"characters (its sources index adds {sources_index.SUFFIX!r})")
        if dimensions < 1:
            raise ValueError("dimensions must be >= 1")
        if quantization not in (None, "scalar", "binary"):
            raise ValueError(f"quantization must be None, 'scalar' or 'binary', not {quantization!r}")
        if query_type is not None and query_type not in QUERY_TYPES:
            raise ValueError(f"unknown query_type {query_type!r}; expected one of {', '.join(QUERY_TYPES)}")
        if query_type in ("semantic", "vector_semantic_hybrid") and not semantic:
            raise ValueError(f"query_type {query_type!r} needs semantic=True")
        if hybrid_fusion not in ("client", "service"):
            raise ValueError(f"hybrid_fusion must be 'client' or 'service', not {hybrid_fusion!r}")
        if not 1 <= batch_size <= MAX_BATCH_DOCUMENTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_DOCUMENTS}")
        if max_batch_bytes < 1024:
            raise ValueError("max_batch_bytes must be at least 1024")
        self.endpoint = endpoint.rstrip("/")
        self.index_name = index_name
        self._sources_name: str | None = None  # resolved on first use (``sources_index_name``)
        self._dimensions = int(dimensions)
        self.model_id = model_id
        self.quantization = quantization
        self.semantic = semantic
        self.query_type = query_type
        self.hybrid_fusion = hybrid_fusion
        if isinstance(filterable_metadata, Mapping):
            meta = dict(filterable_metadata)
        else:
            meta = {k: "string" for k in filterable_metadata}
        for key, kind in meta.items():
            if not _META_KEY.match(key):
                raise ValueError(f"filterable metadata key {key!r} must be letters, digits and underscores")
            if kind not in _META_TYPES:
                raise ValueError(f"filterable metadata type for {key!r} must be one of {', '.join(_META_TYPES)}")
        self.filterable_metadata: dict[str, str] = meta
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.retry = retry
        self._api_key = api_key
        self._credential = credential
        self._api_version = api_version
        self._transport = transport
        self._client_kwargs = dict(client_kwargs or {})
        self._sleep = sleep
        self._lock = threading.Lock()
        self._index_client: "SearchIndexClient | None" = None
        self._search_client: "SearchClient | None" = None
        self._sources_client: "SearchClient | None" = None

    def __repr__(self) -> str:  # never shows the key
        return f"AzureSearchIndex(endpoint={self.endpoint!r}, index_name={self.index_name!r}, dimensions={self._dimensions})"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    # ------------------------------------------------------------------ clients (lazy)
    def _credential_obj(self) -> Any:
        if self._api_key:
            from azure.core.credentials import AzureKeyCredential

            return AzureKeyCredential(self._api_key)
        if self._credential is not None:
            return self._credential
        from azure.identity import DefaultAzureCredential

        self._credential = DefaultAzureCredential()
        return self._credential

    def _kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"retry_total": 0, **self._client_kwargs}  # our retries, not the SDK's
        if self._api_version:
            kw["api_version"] = self._api_version
        if self._transport is not None:
            kw["transport"] = self._transport
        return kw

    def _indexes(self) -> "SearchIndexClient":
        with self._lock:
            if self._index_client is None:
                from azure.search.documents.indexes import SearchIndexClient

                self._index_client = SearchIndexClient(self.endpoint, self._credential_obj(), **self._kwargs())
            return self._index_client

    def _docs(self) -> "SearchClient":
        with self._lock:
            if self._search_client is None:
                from azure.search.documents import SearchClient

                self._search_client = SearchClient(self.endpoint, self.index_name, self._credential_obj(), **self._kwargs())
            return self._search_client

    def _sources(self) -> "SearchClient":
        """The client of the sources index (``indexers.azure_sources``)."""
        name = self.sources_index_name  # may ask the service which index the alias maps to: outside the lock
        with self._lock:
            if self._sources_client is None:
                from azure.search.documents import SearchClient

                self._sources_client = SearchClient(self.endpoint, name, self._credential_obj(), **self._kwargs())
            return self._sources_client

    def close(self) -> None:
        with self._lock:
            for c in (self._search_client, self._sources_client, self._index_client):
                if c is not None:
                    c.close()
            self._search_client = self._sources_client = self._index_client = None

    def __enter__(self) -> "AzureSearchIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self) -> None:
        """Nothing to do: every upsert and delete is a finished request (the service indexes them itself)."""

    def stats(self) -> IndexStats:
        """Chunks (the service's document count, which trails recent writes by a few seconds) and sources."""
        return IndexStats(model_id=self.model_id, dimensions=self.dimensions, chunks=self.count(),
                          sources=len(self.list_sources()))

    # ------------------------------------------------------------------ retries and error mapping
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one service call with the retry policy (429/408/5xx, connection errors); map SDK errors."""
        return self.retry.call(fn, what=what, give_up=lambda exc, attempts: self._map_error(what, exc, attempts),
                               sleep=self._sleep)

    def _map_error(self, what: str, exc: BaseException, attempts: int) -> BaseException:
        """The typed error for what the SDK raised, once the retries are over."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

        if isinstance(exc, OndataError):  # already typed (e.g. the documents of a 207 still failing)
            return exc
        after = f" after {attempts} attempts" if attempts > 1 else ""
        if isinstance(exc, ClientAuthenticationError):
            return self._auth_error(what, exc)
        if isinstance(exc, ResourceNotFoundError):
            return IndexError_(
                f"{what} failed: index {self.index_name!r} does not exist at {self.endpoint} "
                "(create it with ensure(), e.g. by running `ondata ingest`)"
            )
        if isinstance(exc, HttpResponseError):
            status = exc.status_code or 0
            if status in (401, 403):
                return self._auth_error(what, exc)
            if is_transient(exc):
                throttled = " (throttled)" if status == 429 else ""
                return TransientError(f"{what} failed: Azure AI Search answered {status}{throttled}{after}",
                                      retry_after=retry_after_of(exc), attempts=attempts)
            return IndexError_(f"{what} failed: Azure AI Search answered {status}: {_service_message(exc)}")
        if is_transient(exc):  # connection errors, timeouts
            return TransientError(
                f"{what} failed: Azure AI Search at {self.endpoint} is unreachable ({type(exc).__name__}){after}",
                attempts=attempts,
            )
        return exc

    def _auth_error(self, what: str, exc: Exception) -> AzureSearchAuthError:
        status = getattr(exc, "status_code", None) or 401
        how = "the api key" if self._api_key else "the Entra ID role assignment (Search Index Data Contributor)"
        return AzureSearchAuthError(
            f"{what} failed: Azure AI Search at {self.endpoint} rejected the credentials (HTTP {status}); check {how}"
        )

    # ------------------------------------------------------------------ schema
    def _description(self, meta: Mapping[str, Any] | None = None) -> str:
        """The index description: ondata's JSON (``meta``, over this index's model, dimensions and schema)."""
        base = {"model_id": self.model_id, "dimensions": self._dimensions, "schema": SCHEMA_VERSION}
        return _DESCRIPTION_PREFIX + json.dumps(base | dict(meta or {}), sort_keys=True, ensure_ascii=False)

    def _desired_fields(self) -> list[Any]:
        from azure.search.documents.indexes.models import SearchField, SearchFieldDataType as T_

        def f(name: str, type_: str, **kw: Any) -> Any:
            base = dict(searchable=False, filterable=False, sortable=False, facetable=False, retrievable=True)
            base.update(kw)
            return SearchField(name=name, type=type_, **base)

        s, i32 = T_.STRING, T_.INT32
        fields = [
            f("id", s, key=True, filterable=True, sortable=True),
            f("content", s, searchable=True),
            f("title", s, searchable=True, filterable=True),
            f("url", s, filterable=True),
            f("filepath", s, filterable=True),
            f("section", s, filterable=True),
            f("page_start", i32, filterable=True),
            f("page_end", i32, filterable=True),
            f("chunk_index", i32),
            f("char_start", i32),
            f("char_end", i32),
            f("scope", s, filterable=True, facetable=True),
            f("source_id", s, filterable=True, facetable=True),
            f("source_version", s, filterable=True, facetable=True),
            f("ingested_at", s),
            f("source_chunks", i32, filterable=True, facetable=True),
            f("groups", "Collection(Edm.String)", filterable=True),
            f("metadata", s),
        ]
        for key, kind in sorted(self.filterable_metadata.items()):
            fields.append(f("meta_" + key, _META_TYPES[kind], filterable=True, facetable=kind != "float"))
        fields.append(
            SearchField(
                name=VECTOR_FIELD,
                type="Collection(Edm.Single)",
                searchable=True,
                retrievable=False,
                vector_search_dimensions=self._dimensions,
                vector_search_profile_name=VECTOR_PROFILE,
            )
        )
        return fields

    def _desired_index(self) -> Any:
        from azure.search.documents.indexes.models import (
            BinaryQuantizationCompression,
            HnswAlgorithmConfiguration,
            HnswParameters,
            ScalarQuantizationCompression,
            ScalarQuantizationParameters,
            SearchIndex,
            SemanticConfiguration,
            SemanticField,
            SemanticPrioritizedFields,
            SemanticSearch,
            VectorSearch,
            VectorSearchProfile,
        )

        compressions = []
        if self.quantization == "scalar":
            compressions.append(
                ScalarQuantizationCompression(
                    compression_name=COMPRESSION_NAME, parameters=ScalarQuantizationParameters(quantized_data_type="int8")
                )
            )
        elif self.quantization == "binary":
            compressions.append(BinaryQuantizationCompression(compression_name=COMPRESSION_NAME))
        vector_search = VectorSearch(
            algorithms=[HnswAlgorithmConfiguration(name=HNSW_CONFIG, parameters=HnswParameters(metric="cosine"))],
            profiles=[
                VectorSearchProfile(
                    name=VECTOR_PROFILE,
                    algorithm_configuration_name=HNSW_CONFIG,
                    compression_name=COMPRESSION_NAME if compressions else None,
                )
            ],
            compressions=compressions or None,
        )
        semantic = None
        if self.semantic:
            semantic = SemanticSearch(
                default_configuration_name=SEMANTIC_CONFIG,
                configurations=[
                    SemanticConfiguration(
                        name=SEMANTIC_CONFIG,
                        prioritized_fields=SemanticPrioritizedFields(
                            title_field=SemanticField(field_name="title"),
                            content_fields=[SemanticField(field_name="content")],
                        ),
                    )
                ],
            )
        return SearchIndex(
            name=self.index_name,
            description=self._description(),
            fields=self._desired_fields(),
            vector_search=vector_search,
            semantic_search=semantic,
        )

    def ensure(self) -> None:
        """Create the index, or check the existing one fits (dimensions, model) and add missing fields."""
        client = self._indexes()
        existing = self._get_index(self.index_name)
        if existing is None:
            self._call(f"creating index {self.index_name!r}", lambda: client.create_or_update_index(self._desired_index()))
            log.info("created Azure AI Search index %r (%d dimensions)", self.index_name, self._dimensions)
            self._ensure_sources(chunks_existed=False)
            return
        self._check_existing(existing)
        self._ensure_sources(chunks_existed=True)
        fields = {f.name: f for f in existing.fields}
        missing = [f for f in self._desired_fields() if f.name not in fields]
        changed = False
        if missing:
            existing.fields = list(existing.fields) + missing
            changed = True
        if self.semantic and not (existing.semantic_search and existing.semantic_search.configurations):
            existing.semantic_search = self._desired_index().semantic_search
            changed = True
        if changed:
            self._call(f"updating index {self.index_name!r}", lambda: client.create_or_update_index(existing))
            log.info("added %s to Azure AI Search index %r", ", ".join(f.name for f in missing) or "a semantic configuration", self.index_name)

    def _ensure_sources(self, *, chunks_existed: bool) -> None:
        """Create the sources index when missing; when the chunk index existed before it (or a build was
        cut short), build it from the chunks."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.search.documents.indexes.models import SearchIndex as IndexDefinition

        client = self._indexes()
        name = self.sources_index_name

        def get() -> Any:
            try:
                return client.get_index(name)
            except ResourceNotFoundError:
                return None

        existing = self._call(f"reading index {name!r}", get)
        if existing is not None and (existing.description or "") == sources_index.DESCRIPTION_READY:
            return
        build = chunks_existed or existing is not None
        definition = IndexDefinition(name=name, fields=sources_index.fields(), description=(
            sources_index.DESCRIPTION_BUILDING if build else sources_index.DESCRIPTION_READY))
        if existing is None:
            self._call(f"creating index {name!r}", lambda: client.create_or_update_index(definition))
        if not build:
            return
        docs = self._documents_from_chunks()
        actions = [{"@search.action": "upload", **d} for d in docs]
        if actions:
            self._send_actions(actions, f"building the sources index {name!r} ({len(actions)} sources)",
                               client=self._sources())
        definition.description = sources_index.DESCRIPTION_READY
        self._call(f"updating index {name!r}", lambda: client.create_or_update_index(definition))
        log.info("built the sources index %r of %r from its chunks (%d sources)", name, self.index_name, len(docs))

    def _documents_from_chunks(self) -> list[dict[str, Any]]:
        """The sources-index documents of every source, from a pass over every chunk (building only)."""
        client = self._docs()
        states: dict[tuple[str, str], sources_index.State] = {}
        at: dict[tuple[str, str], str] = {}
        last: str | None = None
        while True:
            flt = None if last is None else f"id gt {odata_quote(last)}"
            page = self._call(
                f"listing chunks of index {self.index_name!r}",
                lambda f=flt: list(client.search(
                    search_text="*", filter=f, order_by=["id asc"], top=_PAGE,
                    select=["id", "scope", "source_id", "source_version", "source_chunks", "groups", "ingested_at"],
                )),
            )
            for d in page:
                k = (str(d.get("scope") or ""), str(d["source_id"]))
                states.setdefault(k, {})[str(d["id"])] = (
                    str(d.get("source_version") or ""), int(d.get("source_chunks") or 0), tuple(d.get("groups") or ()))
                at[k] = max(at.get(k, ""), str(d.get("ingested_at") or ""))
            if len(page) < _PAGE:
                break
            last = str(page[-1]["id"])
        return [sources_index.document(sc, sid, st, ingested_at=at[(sc, sid)], stat="")
                for (sc, sid), st in sorted(states.items())]

    def _check_existing(self, index: Any) -> None:
        fields = {f.name: f for f in index.fields}
        vec = fields.get(VECTOR_FIELD)
        ours = (index.description or "").startswith(_DESCRIPTION_PREFIX)
        if vec is None or "id" not in fields or "content" not in fields:
            raise IndexSchemaError(
                f"index {self.index_name!r} at {self.endpoint} exists but was not created by ondata "
                f"(no {VECTOR_FIELD!r}/'id'/'content' fields); use another index name"
            )
        dims = vec.vector_search_dimensions
        if dims != self._dimensions:
            raise IndexSchemaError(
                f"index {self.index_name!r} stores {dims}-dimensional vectors but the embedder produces "
                f"{self._dimensions}; use another index name or delete the index and re-ingest"
            )
        if ours:
            stored = _description_meta(index.description).get("model_id")
            if stored and stored != self.model_id:
                raise IndexSchemaError(
                    f"index {self.index_name!r} was built with embeddings of {stored!r} but the embedder is "
                    f"{self.model_id!r}; use another index name or delete the index and re-ingest"
                )

    def schema_dimensions(self) -> int | None:
        """The dimensions of the existing index's vector field, or None when the index does not exist."""
        index = self._get_index(self.index_name)
        if index is None:
            return None
        for f in index.fields:
            if f.name == VECTOR_FIELD:
                return f.vector_search_dimensions
        return None

    def delete_index(self) -> None:
        """Delete the whole index (used by live tests for their temporary index); missing succeeds."""
        self.delete_index_named(self.index_name)

    # ------------------------------------------------------------------ aliases and recorded scopes
    def _get_index(self, name: str) -> Any:
        """The definition of index (or alias) ``name``, or None when there is none."""
        from azure.core.exceptions import ResourceNotFoundError

        def get() -> Any:
            try:
                return self._indexes().get_index(name)
            except ResourceNotFoundError:
                return None

        return self._call(f"reading index {name!r}", get)

    def index_exists(self, name: str | None = None) -> bool:
        """Whether an index (or an alias) named ``name`` (default: this one) exists."""
        return self._get_index(name or self.index_name) is not None

    @property
    def sources_index_name(self) -> str:
        """``<index>-sources`` of the index ``index_name`` resolves to: when it names an alias, of the index the
        alias maps to (one request, once per client), so every generation of a rebuild has its own."""
        if self._sources_name is None:
            self._sources_name = sources_index.name_for(self.alias_target() or self.index_name)
        return self._sources_name

    def alias_target(self) -> str | None:
        """The index the alias named ``index_name`` maps to, or None when ``index_name`` is no alias."""
        from azure.core.exceptions import ResourceNotFoundError

        def get() -> Any:
            try:
                return self._indexes().get_alias(self.index_name)
            except ResourceNotFoundError:
                return None

        alias = self._call(f"reading alias {self.index_name!r}", get)
        return str(alias.indexes[0]) if alias is not None and alias.indexes else None

    def point_alias(self, index: str) -> None:
        """Map the alias ``index_name`` to ``index`` (creating the alias when missing): readers of the alias
        switch at once, the service resolving the alias per request."""
        from azure.search.documents.indexes.models import SearchAlias

        self._call(f"pointing alias {self.index_name!r} to index {index!r}",
                   lambda: self._indexes().create_or_update_alias(SearchAlias(name=self.index_name, indexes=[index])))

    def list_index_names(self) -> list[str]:
        """The names of every index of the service (not the aliases)."""
        return sorted(self._call("listing indexes", lambda: list(self._indexes().list_index_names())))

    def delete_index_named(self, name: str) -> None:
        """Delete index ``name`` and its sources index (missing succeeds); the service refuses (400) while an
        alias maps to it."""
        from azure.core.exceptions import ResourceNotFoundError

        def delete(name: str) -> None:
            try:
                self._indexes().delete_index(name)
            except ResourceNotFoundError:
                pass

        for n in (name, sources_index.name_for(name)):
            self._call(f"deleting index {n!r}", lambda n=n: delete(n))

    def _update_meta(self, what: str, change: Callable[[dict[str, Any]], bool], *, missing_ok: bool = False) -> None:
        """Read-modify-write the JSON of the index description: ``change(meta)`` edits it in place (False:
        nothing to write; it may raise). Written with ``If-Match`` on the definition's ETag and retried
        from the read when another writer changed the definition meanwhile (412), so two writers (an
        ingest recording its scope, a rebuild taking its lock) never lose each other's change."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        def write(existing: Any) -> bool:
            try:
                self._indexes().create_or_update_index(existing, match_condition=MatchConditions.IfNotModified)
                return True
            except ResourceModifiedError:
                return False

        for _ in range(_META_ATTEMPTS):
            existing = self._get_index(self.index_name)
            if existing is None:
                if missing_ok:
                    return
                raise IndexError_(f"index {self.index_name!r} does not exist at {self.endpoint}; run ensure() first")
            meta = _description_meta(existing.description)
            if not change(meta):
                return
            existing.description = self._description(meta)
            if self._call(what, lambda: write(existing)):
                return
        raise IndexError_(f"{what} failed: the definition of index {self.index_name!r} kept changing "
                          f"({_META_ATTEMPTS} attempts)")

    def record_scope(self, record: ScopeRecord) -> None:
        """Record where a scope's documents come from, in the index definition's description (read by
        ``ondata index rebuild``); replaces the record of the same key."""
        stamped = record.to_dict() | {"ingested_at": record.ingested_at or datetime.now(timezone.utc).isoformat(timespec="seconds")}

        def change(meta: dict[str, Any]) -> bool:
            scopes = [d for d in meta.get("scopes", []) if ScopeRecord.from_dict(d).key != record.key] + [stamped]
            meta["scopes"] = sorted(scopes, key=lambda d: ScopeRecord.from_dict(d).key)
            return True

        self._update_meta(f"recording scope {record.scope!r} in index {self.index_name!r}", change)

    def take_rebuild_lock(self, holder: str, *, building: str, stale_after_s: float = REBUILD_LOCK_STALE_S,
                          now: float | None = None) -> str:
        """Take the rebuild lock of this (live) index: ``rebuild_lock`` in its description (holder, since,
        the index being built, a token), written with ``If-Match`` so two rebuilds cannot both take it.
        Returns the token for ``release_rebuild_lock``. ``RebuildInProgress`` naming the holder, since when
        and the index it builds while another holds it; a lock older than ``stale_after_s`` (its rebuild
        died without releasing it) is taken over, with a warning."""
        import uuid

        token = uuid.uuid4().hex
        at = time.time() if now is None else now

        def change(meta: dict[str, Any]) -> bool:
            held = meta.get("rebuild_lock")
            if isinstance(held, dict):
                busy = self._held(held, at, stale_after_s)
                if busy is not None:
                    raise busy
                log.warning("taking over the stale rebuild lock of index %r (%s, since %s)", self.index_name,
                            held.get("holder"), held.get("since"))
            meta["rebuild_lock"] = {"holder": holder, "building": building, "token": token, "since_epoch": at,
                                    "since": datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds")}
            return True

        self._update_meta(f"taking the rebuild lock of index {self.index_name!r}", change)
        return token

    def rebuild_lock_error(self, *, stale_after_s: float = REBUILD_LOCK_STALE_S) -> "OndataError | None":
        """``RebuildInProgress`` (see ``take_rebuild_lock``) when a live lock is held, else None; takes nothing."""
        existing = self._get_index(self.index_name)
        held = _description_meta(existing.description).get("rebuild_lock") if existing is not None else None
        return self._held(held, time.time(), stale_after_s) if isinstance(held, dict) else None

    def _held(self, held: Mapping[str, Any], at: float, stale_after_s: float) -> "OndataError | None":
        from indexers.errors import RebuildInProgress

        if at - float(held.get("since_epoch") or 0) >= stale_after_s:
            return None
        return RebuildInProgress(
            f"a rebuild of Azure AI Search index {self.index_name!r} is already in progress: "
            f"{held.get('holder', 'another process')}, since {held.get('since', '?')}, building index "
            f"{held.get('building', '?')!r} (lock in the description of index {self.index_name!r}); "
            f"wait for it to finish; a lock older than {stale_after_s / 3600:g} h counts as stale")

    def release_rebuild_lock(self, token: str) -> None:
        """Remove the rebuild lock ``take_rebuild_lock`` returned ``token`` for (nothing when another holds it, or
        when the index is gone: a rebuild with ``--drop-old`` deletes the index it locked)."""

        def change(meta: dict[str, Any]) -> bool:
            held = meta.get("rebuild_lock")
            if not isinstance(held, dict) or held.get("token") != token:
                return False
            del meta["rebuild_lock"]
            return True

        self._update_meta(f"releasing the rebuild lock of index {self.index_name!r}", change, missing_ok=True)

    def list_scopes(self) -> list[ScopeRecord]:
        """The scopes recorded in the index definition (empty when none, or when the index does not exist)."""
        existing = self._get_index(self.index_name)
        if existing is None:
            return []
        return [ScopeRecord.from_dict(d) for d in _description_meta(existing.description).get("scopes", [])]

    # ------------------------------------------------------------------ writes
    def _document(self, chunk: Chunk, vector: np.ndarray) -> dict[str, Any]:
        if not _KEY_OK.match(chunk.id):
            raise IndexError_(
                "chunk id is not a valid Azure AI Search key (letters, digits, '_', '-', '=' only)", doc_id=chunk.id
            )
        doc: dict[str, Any] = {
            "id": chunk.id,
            "content": chunk.content,
            "title": chunk.title,
            "url": chunk.url,
            "filepath": chunk.filepath,
            "section": chunk.section,
            "page_start": chunk.page_start,
            "page_end": chunk.page_end,
            "chunk_index": chunk.chunk_index,
            "char_start": chunk.char_start,
            "char_end": chunk.char_end,
            "scope": chunk.scope,
            "source_id": chunk.source_id,
            "source_version": chunk.source_version,
            "source_chunks": chunk.source_chunks,
            "groups": list(chunk.groups),
            "metadata": json.dumps(dict(chunk.metadata), sort_keys=True, ensure_ascii=False, default=str),
        }
        for key, kind in self.filterable_metadata.items():
            doc["meta_" + key] = _coerce_meta(chunk.metadata.get(key), kind)
        # float32 has ~7.2 significant digits: 9 round-trip it exactly and keep the payload small.
        doc[VECTOR_FIELD] = [float(f"{x:.9g}") for x in vector.tolist()]
        return doc

    def _batches(self, actions: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        """Split actions by count (``batch_size``) and by serialized bytes (``max_batch_bytes``)."""
        overhead = len('{"value": []}')
        batch: list[dict[str, Any]] = []
        size = overhead
        for action in actions:
            n = len(json.dumps(action)) + 2  # ", " separator, the way the SDK serializes
            if n + overhead > self.max_batch_bytes:
                raise IndexError_(
                    f"document is {n} bytes serialized, more than the {self.max_batch_bytes}-byte request limit",
                    doc_id=action.get("id"),
                )
            if batch and (len(batch) >= self.batch_size or size + n > self.max_batch_bytes):
                yield batch
                batch, size = [], overhead
            batch.append(action)
            size += n
        if batch:
            yield batch

    def _send_actions(self, actions: list[dict[str, Any]], what: str, *, client: Any = None) -> None:
        """Send actions in batches (to the chunk index, or ``client``'s); retry the retryable documents of
        207 answers; raise for the rest.

        One retry budget per batch: an HTTP-level failure (429/5xx) and a 207 whose failed documents
        are retryable each use one of ``retry.attempts`` attempts, so retries never multiply.
        """
        client = client or self._docs()
        failures: dict[str, tuple[int, str]] = {}
        for batch in self._batches(actions):
            pending = {a["id"]: a for a in batch}

            def send() -> None:
                results = client.index_documents(_sdk_batch(list(pending.values())))
                retryable: dict[str, tuple[int, str]] = {}
                for r in results:
                    if r.succeeded:
                        pending.pop(r.key, None)
                        continue
                    code = int(r.status_code or 0)
                    if code in RETRYABLE_DOCUMENT_STATUS and r.key in pending:
                        retryable[r.key] = (code, r.error_message or "")
                    else:
                        failures[r.key] = (code, r.error_message or "")
                        pending.pop(r.key, None)
                if retryable:
                    raise _RetryableDocuments(retryable)

            try:
                self._call(what, send)
            except _RetryableDocuments as exc:  # the attempts are used up: these documents failed too
                failures.update(exc.failures)
        if failures:
            ids = sorted(failures)
            shown = ", ".join(f"{k} ({failures[k][0]}: {failures[k][1]})" for k in ids[:10])
            more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
            raise IndexWriteError(
                f"{what}: Azure AI Search rejected {len(ids)} document(s): {shown}{more}",
                failures=failures,
                doc_id=ids[0] if len(ids) == 1 else None,
            )

    def upsert(self, chunks: Sequence[Chunk], *, vectors: np.ndarray, replace_sources: Iterable[str] = (),
               scope: str | None = None) -> None:
        """Add or replace chunks by id (``upload`` actions).

        ``replace_sources``: afterwards, every other chunk of these sources is deleted, in ``scope``
        (default: the scopes of ``chunks``) and in the scope ``''`` of documents stored before scopes. The service has
        no transactions: a reader may briefly see a re-ingested document's old and new chunks side by
        side (each with its own groups), never the document missing.
        """
        replace = list(dict.fromkeys(str(s) for s in replace_sources))
        if len(chunks) == 0:
            self.delete_sources(replace, scope=scope)
            return
        scopes = sorted(({scope} if scope is not None else {c.scope for c in chunks}) | {""})
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
            raise ValueError(f"vectors must have shape ({len(chunks)}, {self._dimensions}), got {vectors.shape}")
        if vectors.shape[1] != self._dimensions:
            raise IndexSchemaError(
                f"vectors have {vectors.shape[1]} dimensions but index {self.index_name!r} stores {self._dimensions}"
            )
        latest: dict[str, dict[str, Any]] = {}  # a key twice in one batch is undefined: the last one wins
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for chunk, vec in zip(chunks, vectors):
            latest.pop(chunk.id, None)
            latest[chunk.id] = {"@search.action": "upload", **self._document(chunk, vec), "ingested_at": now}
        actions = list(latest.values())
        written = sources_index.state_of(chunks)
        replaced = {(sc, s) for sc in scopes for s in replace}
        stored = self._stored_states([k for k in written if k not in replaced])
        self._send_actions([sources_index.pending(sc, s) for sc, s in written],
                           f"marking {len(written)} source(s) as being written in {self.sources_index_name!r}",
                           client=self._sources())
        self._send_actions(actions, f"writing {len(actions)} chunk(s) to index {self.index_name!r}")
        self._delete_chunks_of(replace, keep=latest.keys(), scopes=scopes)
        by_source: dict[tuple[str, str], list[Chunk]] = {}
        for c in chunks:
            by_source.setdefault((c.scope, c.source_id), []).append(c)
        final = [{"@search.action": "upload", **sources_index.document(
            sc, s, sources_index.merged(stored.get((sc, s), {}), state), ingested_at=now,
            stat=sources_index.max_stat(by_source[(sc, s)]))} for (sc, s), state in written.items()]
        final += [{"@search.action": "delete", "id": sources_index.key(sc, s)} for sc, s in sorted(replaced - set(written))]
        self._send_actions(final, f"recording {len(written)} source(s) in {self.sources_index_name!r}",
                           client=self._sources())

    def _stored_states(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], sources_index.State]:
        """The chunk states the sources index holds for these (scope, source id), by lookups of 1,000 keys."""
        out: dict[tuple[str, str], sources_index.State] = {}
        client = self._sources()
        for start in range(0, len(keys), _PAGE):
            part = {sources_index.key(sc, s): (sc, s) for sc, s in keys[start:start + _PAGE]}
            flt = odata_search_in("id", list(part))
            docs = self._call(
                f"reading sources of index {self.sources_index_name!r}",
                lambda f=flt, n=len(part): list(client.search(search_text="*", filter=f, select=["id", "chunks"], top=n)),
            )
            for d in docs:
                out[part[str(d["id"])]] = sources_index.decode_state(d.get("chunks"))
        return out

    def _keys_matching(self, filter_: str) -> list[str]:
        """Every document key matching ``filter_``, paged by key range (correct beyond skip limits)."""
        client = self._docs()
        keys: list[str] = []
        last: str | None = None
        while True:
            flt = filter_ if last is None else f"({filter_}) and id gt {odata_quote(last)}"
            page = self._call(
                f"listing chunks of index {self.index_name!r}",
                lambda f=flt: list(client.search(search_text="*", filter=f, select=["id"], order_by=["id asc"], top=_PAGE)),
            )
            keys.extend(str(d["id"]) for d in page)
            if len(page) < _PAGE:
                return keys
            last = str(page[-1]["id"])

    def delete_sources(self, source_ids: Iterable[str], *, scope: str | None = None) -> None:
        """Delete every chunk of these sources of ``scope`` (``None``: of every scope), then their documents in
        the sources index; a missing source succeeds."""
        ids = list(dict.fromkeys(str(s) for s in source_ids))
        if not ids:
            return
        self._delete_chunks_of(ids, scopes=None if scope is None else [scope])
        if scope is not None:
            keys = [sources_index.key(scope, s) for s in ids]
        else:
            keys = [sources_index.key(r.scope, r.source_id) for start in range(0, len(ids), _SOURCES_PER_QUERY)
                    for r in self._read_sources(_search_in("source_id", ids[start:start + _SOURCES_PER_QUERY]))]
        if keys:
            self._send_actions([{"@search.action": "delete", "id": k} for k in keys],
                               f"deleting {len(keys)} source(s) from {self.sources_index_name!r}", client=self._sources())

    def _delete_chunks_of(self, ids: list[str], *, keep: Iterable[str] = (), scopes: Sequence[str] | None = None) -> None:
        """Delete every chunk of sources ``ids`` (of ``scopes``; None: of every scope) except the chunks whose key
        is in ``keep``."""
        kept = set(keep)
        for start in range(0, len(ids), _SOURCES_PER_QUERY):
            group = ids[start: start + _SOURCES_PER_QUERY]
            flt = " or ".join(f"source_id eq {odata_quote(s)}" for s in group)
            if scopes is not None:
                flt = f"({' or '.join(_scope_filter(sc) for sc in scopes)}) and ({flt})"
            keys = [k for k in self._keys_matching(flt) if k not in kept]
            if keys:
                self._send_actions(
                    [{"@search.action": "delete", "id": k} for k in keys],
                    f"deleting {len(keys)} chunk(s) of {len(group)} source(s) from index {self.index_name!r}",
                )

    # ------------------------------------------------------------------ reads
    def count(self) -> int:
        client = self._docs()
        return int(self._call(f"counting chunks of index {self.index_name!r}", client.get_document_count))

    def record_source_stats(self, scope: str, stats: dict[str, str]) -> None:
        """Store new change tokens (``SourceItem.stat``) of documents of ``scope`` listed unchanged (a merge).
        A token that cannot be stored (its source just vanished) is only logged: tokens save work, no more."""
        if not stats:
            return
        try:
            self._send_actions([{"@search.action": "merge", "id": sources_index.key(scope, sid), "stat": st}
                                for sid, st in stats.items()],
                               f"recording {len(stats)} change token(s) in {self.sources_index_name!r}",
                               client=self._sources())
        except IndexWriteError as exc:
            log.warning("%s", exc.message)

    def list_sources(self, *, scope: str | None = None) -> list[SourceRecord]:
        """One record per document (scope and source id) of ``scope`` (``None``: every scope), sorted by
        scope then source id, from the sources index (``indexers.azure_sources``: one document per
        source, 1,000 a request).

        ``complete`` is False when a source's chunks carry several versions, disagree on
        ``source_chunks``, or their number differs from ``source_chunks`` (0 means unknown), and while
        a write of the source is under way (or was cut short).
        """
        records = self._read_sources(None if scope is None else _scope_filter(scope))
        return sorted(records, key=lambda r: (r.scope, r.source_id))

    def _read_sources(self, filter_: str | None) -> list[SourceRecord]:
        """The records of the sources-index documents matching ``filter_``, paged by key."""
        client = self._sources()
        out: list[SourceRecord] = []
        last: str | None = None
        while True:
            parts = [p for p in (filter_, None if last is None else f"id gt {odata_quote(last)}") if p]
            flt = " and ".join(f"({p})" for p in parts) if parts else None
            page = self._call(
                f"listing sources of index {self.index_name!r}",
                lambda f=flt: list(client.search(search_text="*", filter=f, select=list(sources_index.RECORD_FIELDS),
                                                 order_by=["id asc"], top=_PAGE)),
            )
            out.extend(sources_index.record(d) for d in page)
            if len(page) < _PAGE:
                return out
            last = str(page[-1]["id"])

    def get_chunks(self, ids: Iterable[str], *, groups: Groups = (),
                   public_when_no_groups: bool = True) -> list[Chunk]:
        """The chunks with these ids that a caller with ``groups`` may see (the security filter of ``search``).

        In the order asked; an unknown id and a chunk the caller may not see are both left out.
        """
        wanted = list(dict.fromkeys(str(i) for i in ids))
        trimming = self.odata_filter(SearchRequest(
            text="*", mode="text", groups=check_groups(groups, what="get_chunks groups"),
            public_when_no_groups=public_when_no_groups,
        ))
        if not wanted or trimming == "false":
            return []
        client = self._docs()
        found: dict[str, Chunk] = {}
        for start in range(0, len(wanted), _SOURCES_PER_QUERY):
            part = wanted[start: start + _SOURCES_PER_QUERY]
            flt = " or ".join(f"id eq {odata_quote(i)}" for i in part)
            if trimming:
                flt = f"({flt}) and ({trimming})"
            docs = self._call(
                f"reading chunks of index {self.index_name!r}",
                lambda f=flt, n=len(part): list(client.search(search_text="*", filter=f, select=list(_RESULT_FIELDS), top=n)),
            )
            for doc in docs:
                chunk = _chunk_from(doc)
                found[chunk.id] = chunk
        return [found[i] for i in wanted if i in found]

    def _field_name(self, name: str) -> str:
        check_field(name)
        if name.startswith("metadata."):
            key = name[len("metadata."):]
            if key not in self.filterable_metadata:
                raise FilterError(
                    f"metadata key {key!r} is not filterable in Azure AI Search index {self.index_name!r}; "
                    f"add it to filterable_metadata (then re-run ensure() and re-ingest)"
                )
            return "meta_" + key
        if name not in CORE_FIELDS:  # pragma: no cover - check_field guards it
            raise FilterError(f"unknown filter field {name!r}")
        return name

    def odata_filter(self, request: SearchRequest) -> str | None:
        """The OData ``$filter`` for a request: its filter AND the security trimming; "false" when nothing is visible."""
        parts: list[str] = []
        if request.filter is not None:
            parts.append(to_odata(request.filter, field_name=self._field_name))
        if request.groups is not ALL_GROUPS:
            alternatives = []
            groups = list(dict.fromkeys(request.groups))
            if groups:
                alternatives.append(f"groups/any(g: {_search_in('g', groups)})")
            if request.public_when_no_groups:
                alternatives.append("not groups/any()")
            if not alternatives:
                return "false"
            parts.append(" or ".join(alternatives))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else " and ".join(f"({p})" for p in parts)

    def resolve_query_type(self, request: SearchRequest, query_type: str | None = None) -> str:
        qt = query_type or self.query_type
        if qt is None:
            return {"text": "simple", "vector": "vector", "hybrid": "vector_simple_hybrid"}[request.mode]
        if qt not in QUERY_TYPES:
            raise ValueError(f"unknown query_type {qt!r}; expected one of {', '.join(QUERY_TYPES)}")
        if qt in ("semantic", "vector_semantic_hybrid") and not self.semantic:
            raise ValueError(f"query_type {qt!r} needs an index with semantic=True")
        if qt in ("simple", "semantic") and not (request.text and request.text.strip()):
            raise ValueError(f"query_type {qt!r} needs a text query")
        if qt.startswith("vector") and request.vector is None:
            raise ValueError(f"query_type {qt!r} needs a query vector")
        if qt.endswith("hybrid") and not (request.text and request.text.strip()):
            raise ValueError(f"query_type {qt!r} needs a text query")
        return qt

    def search(self, request: SearchRequest, *, query_type: QueryType | None = None) -> list[SearchHit]:
        """Text, vector or hybrid search (RRF fusion), optionally semantic-reranked; best first.

        ``query_type`` (or the index's default) uses On Your Data's names: ``simple``, ``semantic``,
        ``vector``, ``vector_simple_hybrid``, ``vector_semantic_hybrid``; ``None`` follows ``request.mode``.
        Filters and security trimming are applied by the service before top-k (pre-filtering).
        """
        qt = self.resolve_query_type(request, query_type)
        flt = self.odata_filter(request)
        if flt == "false":
            return []
        if request.vector is not None and qt.startswith("vector") and len(request.vector) != self._dimensions:
            raise IndexSchemaError(
                f"the query vector has {len(request.vector)} dimensions but index {self.index_name!r} "
                f"stores {self._dimensions}"
            )
        text = _simple_query_text(request.text or "")
        n = max(request.candidates, request.top)
        if qt == "vector_simple_hybrid" and self.hybrid_fusion == "client":
            return self._client_hybrid(request, text, flt, n)
        use_text = qt != "vector"
        use_vector = qt.startswith("vector")
        semantic = qt in ("semantic", "vector_semantic_hybrid")
        if use_text and not text and not use_vector:
            return []  # nothing searchable left in the text (only operators/punctuation)
        docs = self._query(
            text=(text or None) if use_text else None,
            vector=request.vector if use_vector else None,
            flt=flt,
            top=request.top,
            k=n,
            semantic=semantic,
        )
        text_only = use_text and not use_vector
        vector_only = use_vector and not use_text
        hits = []
        for rank, doc in enumerate(docs[: request.top], start=1):
            score = float(doc.get("@search.score") or 0.0)
            reranker = doc.get("@search.reranker_score")
            hits.append(
                SearchHit(
                    chunk=_chunk_from(doc),
                    score=float(reranker) if reranker is not None else score,
                    text_score=score if text_only else None,
                    vector_score=score if vector_only else None,
                    text_rank=rank if text_only and not semantic else None,
                    vector_rank=rank if vector_only else None,
                )
            )
        return hits

    def _query(
        self, *, text: str | None, vector: Sequence[float] | None, flt: str | None, top: int, k: int, semantic: bool
    ) -> list[dict[str, Any]]:
        from azure.search.documents.models import VectorizedQuery

        kwargs: dict[str, Any] = {"filter": flt, "top": top, "select": list(_RESULT_FIELDS)}
        if vector is not None:
            kwargs["vector_queries"] = [VectorizedQuery(vector=[float(x) for x in vector], k_nearest_neighbors=k, fields=VECTOR_FIELD)]
        if semantic:
            kwargs["query_type"] = "semantic"
            kwargs["semantic_configuration_name"] = SEMANTIC_CONFIG
        elif text is not None:
            kwargs["query_type"] = "simple"
        client = self._docs()
        return self._call(
            f"searching index {self.index_name!r}",
            lambda: list(client.search(search_text=text, **kwargs)),
        )

    def _client_hybrid(self, request: SearchRequest, text: str, flt: str | None, n: int) -> list[SearchHit]:
        """Text arm and vector arm as two concurrent requests, fused with RRF (k=60) like the service."""
        from concurrent.futures import ThreadPoolExecutor

        from indexers.fusion import hits_with_arms, reciprocal_rank_fusion

        top = min(n, _PAGE)
        with ThreadPoolExecutor(max_workers=2) as pool:
            text_future = (
                pool.submit(self._query, text=text, vector=None, flt=flt, top=top, k=n, semantic=False) if text else None
            )
            vector_future = pool.submit(self._query, text=None, vector=request.vector, flt=flt, top=top, k=n, semantic=False)
            text_docs = text_future.result() if text_future is not None else []
            vector_docs = vector_future.result()
        docs = {str(d["id"]): d for d in [*vector_docs, *text_docs]}
        text_ranked = [(str(d["id"]), float(d.get("@search.score") or 0.0)) for d in text_docs]
        vector_ranked = [(str(d["id"]), float(d.get("@search.score") or 0.0)) for d in vector_docs]
        fused = reciprocal_rank_fusion([[k for k, _ in text_ranked], [k for k, _ in vector_ranked]], k=60)[: request.top]
        chunks = {key: _chunk_from(docs[key]) for key, _ in fused}
        return hits_with_arms(fused, chunks=chunks, text_ranked=text_ranked, vector_ranked=vector_ranked)


# ---------------------------------------------------------------------- helpers
def _sdk_batch(actions: list[dict[str, Any]]) -> Any:
    from azure.search.documents.models import IndexAction, IndexDocumentsBatch

    return IndexDocumentsBatch(actions=[IndexAction(dict(a)) for a in actions])


_SIMPLE_SPECIAL = re.compile(r'([+\-&|!(){}\[\]^"~*?:\\/])')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _simple_query_text(text: str) -> str:
    """User text as plain words for the simple query syntax: operators escaped, control characters dropped."""
    text = _CONTROL.sub(" ", text)
    return " ".join(_SIMPLE_SPECIAL.sub(r"\\\1", text).split())


def _search_in(expr: str, values: Sequence[str]) -> str:
    """``search.in`` with the first delimiter that no value contains (values are arbitrary group names)."""
    for delim in ("|", ",", ";", "~", "^", "`"):
        if not any(delim in v for v in values):
            return odata_search_in(expr, values, delimiter=delim)
    return "(" + " or ".join(f"{expr} eq {odata_quote(v)}" for v in values) + ")"


def _coerce_meta(value: Any, kind: str) -> Any:
    if value is None:
        return None
    try:
        if kind == "string":
            return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return bool(value)
    except (TypeError, ValueError):
        return None
    return None  # pragma: no cover


def _chunk_from(doc: Mapping[str, Any]) -> Chunk:
    raw_meta = doc.get("metadata")
    try:
        metadata = json.loads(raw_meta) if raw_meta else {}
    except ValueError:
        metadata = {}
    return Chunk(
        id=str(doc["id"]),
        source_id=str(doc.get("source_id") or ""),
        content=doc.get("content") or "",
        chunk_index=int(doc.get("chunk_index") or 0),
        title=doc.get("title") or "",
        url=doc.get("url") or "",
        filepath=doc.get("filepath") or "",
        page_start=doc.get("page_start"),
        page_end=doc.get("page_end"),
        char_start=int(doc.get("char_start") or 0),
        char_end=int(doc.get("char_end") or 0),
        section=doc.get("section") or "",
        groups=tuple(doc.get("groups") or ()),
        metadata=metadata if isinstance(metadata, dict) else {},
        source_version=doc.get("source_version") or "",
        source_chunks=int(doc.get("source_chunks") or 0),
        scope=str(doc.get("scope") or ""),
    )


def _description_meta(description: str | None) -> dict[str, Any]:
    """The JSON ondata keeps in an index's description (model, dimensions, schema, recorded scopes); {} when none."""
    if not description or not description.startswith(_DESCRIPTION_PREFIX):
        return {}
    try:
        meta = json.loads(description[len(_DESCRIPTION_PREFIX):])
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _scope_filter(scope: str) -> str:
    """OData for "the chunk belongs to ``scope``"; chunks written before scopes (no field) count as scope ``""``."""
    if scope == "":
        return "scope eq '' or scope eq null"
    return f"scope eq {odata_quote(scope)}"


def _service_message(exc: Any) -> str:
    err = getattr(exc, "error", None)
    msg = getattr(err, "message", None) if err is not None else None
    if not msg:
        msg = str(getattr(exc, "message", "") or exc)
    return " ".join(str(msg).split())[:500]
