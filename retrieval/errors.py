"""Typed errors of the retrieval package: bad filters, chat model failures, On-Your-Data request errors."""

from __future__ import annotations

from typing import Any

from indexers.errors import OndataError


class RetrievalError(OndataError):
    """Answering a question failed."""


class ODataFilterError(RetrievalError):
    """An OData filter expression is malformed or uses something outside the supported subset."""


class MissingIndexError(RetrievalError):
    """There is no index to search yet."""


class ChatModelError(RetrievalError):
    """The chat model failed; ``status`` is the HTTP status of the service when there was one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ContentFilteredError(ChatModelError):
    """The service's content filter blocked the prompt or the completion."""


class RateLimitedError(ChatModelError):
    """The service kept answering 429 after the SDK's own retries; ``retry_after`` in seconds when known."""

    def __init__(self, message: str, *, status: int | None = 429, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class OYDRequestError(RetrievalError):
    """An On-Your-Data chat-completions request is invalid; carries the HTTP status and the error body.

    The body has the service's shape: ``{"error": {"code": ..., "message": ...}}``.
    """

    def __init__(self, message: str, *, status: int = 400, code: str = "BadRequest",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = dict(headers or {})

    @property
    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}
