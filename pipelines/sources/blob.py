"""Azure Blob Storage source: the blobs of one container (optionally under a prefix), streamed.

- ``id``: the blob name (stable across runs); ``name``: its last path segment; ``filepath``: the blob name.
- ``version``: ``md5:<hex>`` of the content MD5 when the service has one, so re-uploading identical
  bytes is "unchanged"; otherwise ``etag:<etag>``. When the blob has metadata, a short hash of it is
  appended (``+meta:<hash>``): editing the title or the ACL groups re-indexes the blob even though
  its bytes did not change.
- Blob metadata becomes document metadata: ``title`` -> title, ``url`` -> url (default: the blob
  URL, never with a SAS token), the ``groups_metadata_key`` (default ``groups``, comma-separated)
  -> ACL groups; every other key -> ``metadata``.
- Auth, in order: a connection string; an account URL with a SAS token; an account URL (possibly
  carrying a SAS in its query) with ``credential`` or ``DefaultAzureCredential`` (azure-identity).
- Retries: the SDK's own retry policy is OFF by default (``retry_total=0``). The one retry layer is
  the caller's (the Prefect I/O tasks in ``pipelines.flows``): transient failures surface at once as
  ``TransientError`` carrying ``retry_after``, so retry layers never stack. A composition root that
  runs without Prefect may pass ``retry_total=N`` to let the SDK retry instead.

The client is created lazily on first use and is shared by threads (the SDK clients are thread-safe).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import logging
import mimetypes
import threading
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator, Mapping, Sequence
from urllib.parse import quote

from indexers.errors import ConfigError, TransientError
from pipelines.errors import DocumentTooLargeError, SourceError
from pipelines.records import SourceItem

log = logging.getLogger(__name__)

#: Blob metadata keys that fill SourceItem fields instead of ``metadata``.
TITLE_KEY = "title"
URL_KEY = "url"
#: Blobs Data Lake Gen2 / Storage Explorer create to stand for folders; never documents.
_FOLDER_MARKER = "hdi_isfolder"
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_STREAM_CHUNK = 4 * 1024 * 1024


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``Retry-After`` / ``x-ms-retry-after-ms`` headers (None when absent)."""
    if not headers:
        return None
    lower = {str(k).lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms") or lower.get("x-ms-retry-after-ms")
    try:
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = lower.get("retry-after")
        if value is None:
            return None
        return max(0.0, float(value))
    except (TypeError, ValueError):
        from email.utils import parsedate_to_datetime
        from datetime import datetime, timezone

        try:
            when = parsedate_to_datetime(str(lower.get("retry-after")))
            return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            return None


def map_azure_error(exc: BaseException, *, what: str, doc_id: str | None = None) -> Exception:
    """Turn an azure-core exception into ``TransientError`` (retryable) or ``SourceError`` naming ``what``."""
    from azure.core import exceptions as az

    if isinstance(exc, (az.ServiceRequestError, az.ServiceResponseError)):  # connection failed, timeout, cut short
        return TransientError(f"{what}: the storage service did not answer ({type(exc).__name__}: {exc})",
                              doc_id=doc_id)
    if isinstance(exc, az.HttpResponseError):
        status = exc.status_code
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        code = getattr(exc, "error_code", None) or ""
        code = str(getattr(code, "value", code))
        detail = f"HTTP {status}" + (f" {code}" if code else "")
        if status in _TRANSIENT_STATUS:
            return TransientError(f"{what} failed with {detail}; the storage service is busy or unavailable",
                                  doc_id=doc_id, retry_after=_retry_after(headers))
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
        retry_total: int = 0,
        connection_timeout: float = 20.0,
        read_timeout: float = 60.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not container:
            raise ConfigError("the blob source needs a container name")
        if not connection_string and not account_url:
            raise ConfigError(
                f"the blob source for container {container!r} needs AZURE_STORAGE_CONNECTION_STRING "
                "or AZURE_STORAGE_ACCOUNT_URL"
            )
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if retry_total < 0:
            raise ValueError("retry_total must be >= 0")
        self.container = container
        self.prefix = prefix or ""
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.groups_metadata_key = (groups_metadata_key or "groups").lower()
        self.max_bytes = max_bytes
        self.page_size = page_size
        self.retry_total = retry_total
        self._connection_string = connection_string
        self._account_url = account_url
        self._sas_token = sas_token.lstrip("?") if sas_token else None
        self._credential = credential
        self._client_kwargs = {
            "retry_total": retry_total,
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
            "max_single_get_size": _STREAM_CHUNK,
            "max_chunk_get_size": _STREAM_CHUNK,
            **dict(client_options or {}),
        }
        self._lock = threading.Lock()
        self._client: Any = None  # azure.storage.blob.ContainerClient, created on first use

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

    def list_items(self) -> Iterator[SourceItem]:
        """The container's blobs under the prefix, page by page (lazily), in the service's (name) order."""
        where = f"container {self.container!r}" + (f" under {self.prefix!r}" if self.prefix else "")
        with _mapped(f"listing the blobs of {where}"):
            pages = self.container_client.list_blobs(
                name_starts_with=self.prefix or None, include=["metadata"], results_per_page=self.page_size
            ).by_page()
        while True:
            with _mapped(f"listing the blobs of {where}"):
                page = next(pages, None)
                if page is None:
                    return
                blobs = list(page)
            for blob in blobs:
                metadata = {str(k): str(v) for k, v in (blob.metadata or {}).items()}
                if _pop_key(dict(metadata), _FOLDER_MARKER).lower() == "true" or not self._wanted(blob.name):
                    continue
                yield self._item(blob, metadata)

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
        raw_groups = _pop_key(metadata, self.groups_metadata_key)
        groups = tuple(dict.fromkeys(g.strip() for g in raw_groups.split(",") if g.strip()))
        base = name.rsplit("/", 1)[-1]
        content_type = getattr(settings, "content_type", None) if settings is not None else None
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(base)[0] or content_type
        return SourceItem(
            id=name,
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
        (and while reading, should the blob have grown since it was listed).
        """
        limit = self.max_bytes
        if limit is not None and item.size is not None and item.size > limit:
            raise DocumentTooLargeError(
                f"blob {item.id} is {item.size:,} bytes, over the limit of {limit:,} bytes", doc_id=item.id
            )
        what = f"downloading blob {item.id} from container {self.container!r}"
        with _mapped(what, doc_id=item.id):
            downloader = self.container_client.download_blob(item.id, max_concurrency=1)
        return io.BufferedReader(_BlobStream(downloader.chunks(), what=what, doc_id=item.id, limit=limit),
                                 buffer_size=1 << 20)


class _BlobStream(io.RawIOBase):
    """A raw, read-only stream over ``StorageStreamDownloader.chunks()`` with a byte limit."""

    def __init__(self, chunks: Iterator[bytes], *, what: str, doc_id: str, limit: int | None) -> None:
        self._chunks = chunks
        self._what = what
        self._doc_id = doc_id
        self._limit = limit
        self._buffer = memoryview(b"")
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buffer:
            with _mapped(self._what, doc_id=self._doc_id):
                chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._read += len(chunk)
            if self._limit is not None and self._read > self._limit:
                raise DocumentTooLargeError(
                    f"blob {self._doc_id} is over the limit of {self._limit:,} bytes", doc_id=self._doc_id
                )
            self._buffer = memoryview(chunk)
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _pop_key(metadata: dict[str, str], key: str) -> str:
    """Remove and return the value of ``key`` matched case-insensitively (metadata names are), or ""."""
    for k in list(metadata):
        if k.lower() == key:
            return metadata.pop(k) or ""
    return ""


@contextmanager
def _mapped(what: str, *, doc_id: str | None = None) -> Iterator[None]:
    """Re-raise azure-core errors as TransientError / SourceError naming ``what``."""
    from azure.core.exceptions import AzureError

    try:
        yield
    except AzureError as exc:
        raise map_azure_error(exc, what=what, doc_id=doc_id) from exc
