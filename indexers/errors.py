"""Typed errors shared by every package.

Every error carries an optional ``doc_id`` (the document or item it is about) and a human
sentence. A bad document is recorded as failed in the run report and never stops a run.
"""

from __future__ import annotations


class OndataError(Exception):
    """Base class of every error raised by ondata."""

    def __init__(self, message: str, *, doc_id: str | None = None) -> None:
        self.message = message
        self.doc_id = doc_id
        super().__init__(f"{doc_id}: {message}" if doc_id else message)

    @property
    def reason(self) -> str:
        """A short machine-friendly name of the failure kind (the class name)."""
        return type(self).__name__


class ConfigError(OndataError):
    """A setting is missing or invalid."""


class IndexError_(OndataError):  # noqa: N801 - trailing underscore avoids the builtin IndexError
    """The search index could not be read or written."""


class RebuildInProgress(IndexError_):
    """Another process holds the index's rebuild lock (a local ``rebuild.lock``, an Azure index's lock)."""


class IndexSchemaError(IndexError_):
    """The index exists but does not fit the embedder (dimensions, model) or the expected schema."""


class EmbeddingError(OndataError):
    """The embedding model failed for a text or a batch."""


class TransientError(OndataError):
    """A retryable failure of a remote service (5xx, timeout, 429).

    ``retry_after``: seconds the service asked to wait, when it said; ``attempts``: how many attempts
    the layer that raised it already made (1 = none retried yet; see ``indexers.retry``).
    """

    def __init__(self, message: str, *, doc_id: str | None = None, retry_after: float | None = None,
                 attempts: int = 1) -> None:
        super().__init__(message, doc_id=doc_id)
        self.retry_after = retry_after
        self.attempts = attempts
