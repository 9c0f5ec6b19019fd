"""Azure Blob Storage source: the blobs of one container (optionally under a prefix), streamed.

- ``id``: the blob name (stable across runs); ``name``: its last path segment; ``filepath``: the blob name.
- ``scope`` (every item's): the name given (``scope=``, ``--scope``), else ``account/container/prefix``.
- ``version``: ``md5:<hex>`` of the content MD5 when the service has one, so re-uploading identical
  bytes is "unchanged"; otherwise ``etag:<etag>``. When the blob has metadata, a short hash of it is
  appended (``+meta:<hash>``): editing the title or the ACL groups re-indexes the blob even though
  its bytes did not change.
- Blob metadata becomes document metadata: ``title`` -> title, ``url`` -> url (default: the blob
  URL, never with a SAS token), the ``groups_metadata_key`` (default ``groups``, comma-separated,
  validated by ``pipelines.sources.acl``) -> ACL groups; every other key -> ``metadata``.
- Listing yields an ``ItemProblem`` for one bad blob instead of raising: invalid groups metadata
  (``failed``), a type no parser handles (``skipped``). ``include`` / ``exclude`` are glob
  patterns matched against the name below the prefix and against the last segment.
- Auth, in order: a connection string; an account URL with a SAS token; an account URL (possibly
  carrying a SAS in its query) with ``credential`` or ``DefaultAzureCredential`` (azure-identity).
- Retries: this backend is the one layer that retries (``indexers.retry``, policy ``retry``): each
  listing page and each download request gets ``retry.attempts`` attempts for 408/429/5xx and
  connection errors, waiting the ``Retry-After`` the service asks for; a download cut short is
  resumed at its offset (``If-Match`` the first response's ETag, so a blob replaced meanwhile
  fails instead of mixing versions). The SDK's own retry policy is OFF (``retry_total=0``). What
  is left is a ``TransientError`` carrying ``attempts``, which no layer above retries again.

The client is created lazily on first use and is shared by threads (the SDK clients are thread-safe).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import mimetypes
import threading
import time
from typing import Any, BinaryIO, Callable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import quote

from indexers.errors import ConfigError, OndataError, TransientError
from indexers.retry import RetryPolicy, is_transient, retry_after_of
from pipelines.errors import DocumentTooLargeError, InvalidMetadataError, SourceError
from pipelines.records import ItemProblem, SourceItem
from pipelines.sources.acl import groups_from_text


#: Blob metadata keys that fill SourceItem fields instead of ``metadata``.
TITLE_KEY = "title"
URL_KEY = "url"
#: Blobs Data Lake Gen2 / Storage Explorer create to stand for folders; never documents.
_FOLDER_MARKER = "hdi_isfolder"
_STREAM_CHUNK = 4 * 1024 * 1024
T = TypeVar("T")


def map_azure_error(exc: BaseException, *, what: str, doc_id: str | None = None, attempts: int = 1) -> BaseException:
    """Turn an azure-core exception into ``TransientError`` (retryable) or ``SourceError`` naming ``what``."""
    from azure.core import exceptions as az

    if isinstance(exc, OndataError):  # already typed (DocumentTooLargeError...)
        return exc
    after = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, (az.ServiceRequestError, az.ServiceResponseError)):  # connection failed, timeout, cut short
        return TransientError(f"{what}: the storage service did not answer{after} ({type(exc).__name__}: {exc})",
                              doc_id=doc_id, attempts=attempts)
    if isinstance(exc, az.HttpResponseError):
        status = exc.status_code
        code = getattr(exc, "error_code", None) or ""
        code = str(getattr(code, "value", code))
        detail = f"HTTP {status}" + (f" {code}" if code else "")
        if is_transient(exc):
            return TransientError(f"{what} failed with {detail}{after}; the storage service is busy or unavailable",
                                  doc_id=doc_id, retry_after=retry_after_of(exc), attempts=attempts)
        if status == 412:
            return SourceError(f"{what}: the blob changed while it was being read ({detail}); run again",
                               doc_id=doc_id)
        if isinstance(exc, az.ResourceNotFoundError):
            return SourceError(f"{what}: not found ({detail})", doc_id=doc_id)
        if isinstance(exc, az.ClientAuthenticationError) or status in (401, 403):
            return SourceError(f"{what}: access denied ({detail}); check the storage credentials", doc_id=doc_id)
        return SourceError(f"{what} failed with {detail}", doc_id=doc_id)
    if isinstance(exc, az.AzureError):
        return SourceError(f"{what} failed: {exc}", doc_id=doc_id)
    return SourceError(f"{what} failed: {type(exc).__name__}: {exc}", doc_id=doc_id)


class BlobDocumentSource:
    """DocumentSource over one Azure Blob Storage container. See the module docstring."""

    def __init__(
        self,
        *,
        container: str,
        prefix: str = "",
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        connection_string: str | None = None,
        account_url: str | None = None,
        sas_token: str | None = None,
        credential: Any = None,
        groups_metadata_key: str = "groups",
        max_bytes: int | None = None,
        page_size: int = 1000,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        connection_timeout: float = 20.0,
        read_timeout: float = 60.0,
        client_options: Mapping[str, Any] | None = None,
        scope: str | None = None,
    ) -> None:
        if scope is not None and not scope.strip():
            raise ValueError("scope must not be empty or blank (leave it out for account/container/prefix)")
        if not container:
            raise ConfigError("the blob source needs a container name")
        if not connection_string and not account_url:
            raise ConfigError(
                f"the blob source for container {container!r} needs AZURE_STORAGE_CONNECTION_STRING "
                "or AZURE_STORAGE_ACCOUNT_URL"
            )
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.container = container
        self.prefix = prefix or ""
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.groups_metadata_key = (groups_metadata_key or "groups").lower()
        self.max_bytes = max_bytes
        self.page_size = page_size
        self.retry = retry
        self._sleep = sleep
        self._connection_string = connection_string
        self._account_url = account_url
        self._sas_token = sas_token.lstrip("?") if sas_token else None
        self._credential = credential
        self._client_kwargs = {
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
            "max_single_get_size": _STREAM_CHUNK,
            "max_chunk_get_size": _STREAM_CHUNK,
            **dict(client_options or {}),
            "retry_total": 0,  # the SDK's own retries stay off: ours are the one layer (see the module docstring)
        }
        self._lock = threading.Lock()
        self._client: Any = None  # azure.storage.blob.ContainerClient, created on first use
        self._scope = scope

    @property
    def scope(self) -> str:
        """The source scope of every item: the name given, else ``account/container/prefix``."""
        if self._scope is None:
            account = getattr(self.container_client, "account_name", None) or "account"
            self._scope = "/".join(p for p in (account, self.container, self.prefix.strip("/")) if p)
        return self._scope

    def __repr__(self) -> str:  # never shows credentials
        return f"BlobDocumentSource('az://{self.container}/{self.prefix}')"

    # ------------------------------------------------------------------ client

    @property
    def container_client(self) -> Any:
        """The SDK ContainerClient (created on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        kwargs = self._client_kwargs
        try:
            if self._connection_string:
                service = BlobServiceClient.from_connection_string(self._connection_string, **kwargs)
            else:
                credential = self._credential
                if credential is None and self._sas_token:
                    credential = self._sas_token
                if credential is None and "sig=" not in (self._account_url or ""):
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                service = BlobServiceClient(self._account_url, credential=credential, **kwargs)
        except ValueError as exc:  # malformed connection string / URL; the message never holds the key
            raise ConfigError(f"the blob storage settings for container {self.container!r} are invalid: {exc}") from exc
        return service.get_container_client(self.container)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def blob_url(self, name: str) -> str:
        """The blob's URL without any SAS token or query string."""
        base = self.container_client.url.split("?", 1)[0].rstrip("/")
        return f"{base}/{quote(name, safe='/~')}"

    # ------------------------------------------------------------------ listing

    def _wanted(self, name: str) -> bool:
        rel = name[len(self.prefix):].lstrip("/") if name.startswith(self.prefix) else name
        base = name.rsplit("/", 1)[-1]
        if not base:
            return False
        if not any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(base, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(base, p) for p in self.exclude)

    def _retrying(self, fn: Callable[[], T], what: str, *, doc_id: str | None = None) -> T:
        """``fn()`` under the retry policy; azure-core errors mapped to TransientError / SourceError."""
        return self.retry.call(fn, what=what, sleep=self._sleep,
                               give_up=lambda exc, n: map_azure_error(exc, what=what, doc_id=doc_id, attempts=n))

    def list_items(self, known: Mapping[str, Any] | None = None) -> Iterator[SourceItem | ItemProblem]:
        """The container's blobs under the prefix, page by page (lazily), in the service's (name) order.

        ``known`` is not needed: versions come from the listing itself (content MD5 or ETag), no blob
        is downloaded to tell whether it changed.

        Raises (``SourceError`` / ``TransientError``) only when the container cannot be listed; a
        bad blob is yielded as an ``ItemProblem``.
        """
        where = f"container {self.container!r}" + (f" under {self.prefix!r}" if self.prefix else "")
        what = f"listing the blobs of {where}"
        pages = self._retrying(lambda: self.container_client.list_blobs(
            name_starts_with=self.prefix or None, include=["metadata"], results_per_page=self.page_size
        ).by_page(), what)
        while True:
            # a failed page request leaves the pager at the same continuation token: retrying asks again
            blobs = self._retrying(lambda: _next_page(pages), what)
            if blobs is None:
                return
            for blob in blobs:
                # a value the service returns empty can come back as None: never the string "None"
                metadata = {str(k): "" if v is None else str(v) for k, v in (blob.metadata or {}).items()}
                if _pop_key(dict(metadata), _FOLDER_MARKER).lower() == "true" or not self._wanted(blob.name):
                    continue
                yield self._entry(blob, metadata)

    def _entry(self, blob: Any, metadata: dict[str, str]) -> SourceItem | ItemProblem:
        name: str = blob.name
        base = name.rsplit("/", 1)[-1]
        try:
            item = self._item(blob, metadata)
        except InvalidMetadataError as exc:  # the engine logs and reports it (pipelines.engine.log_problem)
            return ItemProblem(name, base, exc, "failed")
        from pipelines.parsing import is_supported, unsupported_format

        if not is_supported(item.name, item.content_type):
            return ItemProblem(name, base, unsupported_format(item.name, item.content_type, doc_id=name), "skipped")
        return item

    def _item(self, blob: Any, metadata: dict[str, str]) -> SourceItem:
        name: str = blob.name
        settings = blob.content_settings
        md5 = getattr(settings, "content_md5", None) if settings is not None else None
        version = f"md5:{bytes(md5).hex()}" if md5 else "etag:" + str(blob.etag).strip('"')
        if metadata:
            canon = json.dumps(sorted((k.lower(), v) for k, v in metadata.items()), ensure_ascii=False)
            version += "+meta:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]
        title = _pop_key(metadata, TITLE_KEY)
        url = _pop_key(metadata, URL_KEY)
        raw_groups = _pop_key(metadata, self.groups_metadata_key, missing=None)
        groups = () if raw_groups is None else groups_from_text(
            raw_groups, doc_id=name, where=f"blob metadata {self.groups_metadata_key!r}")
        base = name.rsplit("/", 1)[-1]
        content_type = getattr(settings, "content_type", None) if settings is not None else None
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(base)[0] or content_type
        return SourceItem(
            id=name,
            scope=self.scope,
            version=version,
            name=base,
            size=blob.size,
            content_type=content_type,
            title=title,
            url=url or self.blob_url(name),
            filepath=name,
            groups=groups,
            metadata=metadata,
        )

    # ------------------------------------------------------------------ reading

    def open(self, item: SourceItem) -> BinaryIO:
        """A buffered stream over the blob's content, downloaded in chunks as it is read.

        Raises ``DocumentTooLargeError`` before downloading when the listed size exceeds ``max_bytes``
        (and while reading, should the blob have grown since it was listed). The first request is
        made here, so a missing blob or a denied access raises from ``open``.
        """
        limit = self.max_bytes
        if limit is not None and item.size is not None and item.size > limit:
            raise DocumentTooLargeError(
                f"blob {item.id} is {item.size:,} bytes, over the limit of {limit:,} bytes", doc_id=item.id
            )
        raw = _BlobStream(self, item.id, limit=limit)
        raw.peek_first()
        return io.BufferedReader(raw, buffer_size=1 << 20)


class _BlobStream(io.RawIOBase):
    """A raw, read-only stream over a blob's content, chunk by chunk, with a byte limit.

    Every chunk request runs under the source's retry policy; after a failure the next attempt
    downloads again from the current offset, conditioned on the first response's ETag.
    """

    def __init__(self, source: BlobDocumentSource, name: str, *, limit: int | None) -> None:
        self._source = source
        self._name = name
        self._what = f"downloading blob {name} from container {source.container!r}"
        self._limit = limit
        self._chunks: Iterator[bytes] | None = None
        self._etag: str | None = None
        self._buffer = memoryview(b"")
        self._read = 0

    def readable(self) -> bool:
        return True

    def _download(self) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"max_concurrency": 1}
        if self._etag is not None:  # a resumed download: the same version, from where we are
            from azure.core import MatchConditions

            kwargs.update(offset=self._read, etag=self._etag, match_condition=MatchConditions.IfNotModified)
        downloader = self._source.container_client.download_blob(self._name, **kwargs)
        if self._etag is None:
            self._etag = getattr(downloader.properties, "etag", None)
        return downloader.chunks()

    def _next_chunk(self) -> bytes | None:
        def attempt() -> bytes | None:
            if self._chunks is None:
                self._chunks = self._download()
            try:
                return next(self._chunks, None)
            except BaseException:
                self._chunks = None  # the next attempt reconnects at the current offset
                raise

        chunk = self._source._retrying(attempt, self._what, doc_id=self._name)
        if chunk is not None:
            self._read += len(chunk)
            if self._limit is not None and self._read > self._limit:
                raise DocumentTooLargeError(
                    f"blob {self._name} is over the limit of {self._limit:,} bytes", doc_id=self._name
                )
        return chunk

    def peek_first(self) -> None:
        """Make the first request now (so ``open`` raises for a missing or denied blob)."""
        self._buffer = memoryview(self._next_chunk() or b"")

    def readinto(self, b: Any) -> int:
        while not self._buffer:
            chunk = self._next_chunk()
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _next_page(pages: Iterator[Any]) -> list[Any] | None:
    page = next(pages, None)
    return None if page is None else list(page)


def _pop_key(metadata: dict[str, str], key: str, *, missing: str | None = "") -> str | None:
    """Remove and return the value of ``key`` matched case-insensitively (metadata names are), or ``missing``."""
    for k in list(metadata):
        if k.lower() == key:
            return metadata.pop(k)
    return missing
