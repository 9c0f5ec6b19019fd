"""One retry policy for every remote backend (DESIGN.md conventions 4 and 11).

This module owns retry and backoff; nothing else in ondata sleeps and tries again:

- ``RetryPolicy``: a validated policy: ``attempts`` (every try, the first included; 1 = no retry),
  exponential backoff ``backoff_seconds * 2**retry`` capped at ``max_backoff_seconds`` with
  symmetric ``jitter`` (a fraction: 0.2 = +-20 %), and ``max_retry_after_seconds``, the longest
  wait a service may ask for. When the failure says how long to wait (``Retry-After`` and
  friends) that wait is used, capped at ``max_retry_after_seconds``; otherwise the backoff.
- ``parse_retry_after(headers)``: the one parser of ``retry-after-ms``, ``x-ms-retry-after-ms``
  (milliseconds; these win, being more precise) and ``Retry-After`` (delay-seconds, fractional
  accepted, or an HTTP-date). Negative, NaN and unparsable values are ignored (None); a date in the
  past is 0; a huge value is returned as is and capped by the policy.
- ``retry_after_of(exc)``: what an exception says about waiting: ``exc.retry_after`` (our
  ``TransientError``) or the headers of ``exc.response`` (azure-core, openai/httpx errors).
- ``is_transient(exc)``: worth retrying: ``TransientError``, HTTP 408/429/5xx, timeouts and
  connection errors (builtin, azure-core, httpx, openai). Never a ``ParseError`` or any other
  non-transient ``OndataError``: a bad document stays bad.
- ``RetryPolicy.call(fn, ...)``: the one retry loop (tenacity underneath). ``give_up`` maps the
  final exception, with the number of attempts made, to the backend's typed error.
- ``attempts_of(exc)``: how many attempts the layer that raised ``exc`` already made (the
  ``attempts`` of a ``TransientError``, 1 otherwise). An orchestration layer above (the Prefect
  task retry condition in ``pipelines.flows``) never retries an error a backend already retried,
  so attempts never multiply even when someone wires both layers on.

Who retries (one layer per backend; ``ondata.wiring`` passes each backend its ``RetryPolicy``
from settings and runs Prefect I/O tasks without retries, ``RetryPolicy.off()``):

=====================================  =========================  ===================================
backend                                retries                    the SDK's own retry policy
=====================================  =========================  ===================================
Azure OpenAI embeddings                the backend, per batch     off (``max_retries=0``)
Azure OpenAI chat                      the backend, per request   off (``max_retries=0``)
Azure AI Search                        the backend, per request   off (``retry_total=0``)
                                       and 207 documents (one
                                       budget per batch)
Azure Blob Storage (list, download)    the backend, per page /    off (``retry_total=0``)
                                       request (resumes a cut
                                       download at its offset)
Prefect I/O tasks                      only errors no backend     n/a
                                       retried (attempts == 1)
=====================================  =========================  ===================================

This is the bottom layer: it imports nothing of ondata but ``indexers.errors``.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from indexers.errors import OndataError, TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses worth another try: request timeout, throttling, server errors.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

# Connection and timeout errors of azure-core, httpx and openai, matched by class name (in the
# exception's MRO) so that this bottom layer imports none of those SDKs.
_TRANSIENT_NAMES = frozenset({
    "ServiceRequestError", "ServiceResponseError", "ServiceRequestTimeoutError", "ServiceResponseTimeoutError",
    "IncompleteReadError", "APITimeoutError", "APIConnectionError", "TimeoutException", "TransportError",
    "NetworkError", "ConnectError", "ReadError", "WriteError", "ReadTimeout", "ConnectTimeout", "WriteTimeout",
    "PoolTimeout", "RemoteProtocolError",
})
_MS_HEADERS = ("retry-after-ms", "x-ms-retry-after-ms")


def _finite_non_negative(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure. See the module docstring."""

    attempts: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    jitter: float = 0.2
    max_retry_after_seconds: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an integer >= 1 (1 = no retry), not {self.attempts!r}")
        for name in ("backoff_seconds", "max_backoff_seconds", "jitter", "max_retry_after_seconds"):
            _finite_non_negative(getattr(self, name), name)
        if self.max_backoff_seconds < self.backoff_seconds:
            raise ValueError("max_backoff_seconds must be >= backoff_seconds")
        if self.jitter > 1:
            raise ValueError(f"jitter must be between 0 and 1, not {self.jitter!r}")

    @classmethod
    def off(cls) -> "RetryPolicy":
        """One attempt, never a retry (the layer that does not own retries)."""
        return cls(attempts=1)

    @property
    def retries(self) -> int:
        """Retries after the first attempt."""
        return self.attempts - 1

    def backoff(self, retry: int, *, rng: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``retry`` (0 = the first retry), with jitter."""
        base = min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** min(retry, 64))
        return max(0.0, base * (1.0 - self.jitter + 2.0 * self.jitter * rng()))

    def delays(self) -> list[float]:
        """The backoff schedule without jitter, one entry per retry (at least one entry)."""
        return [min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** i) for i in range(max(self.retries, 1))]

    def delay(self, retry: int, exc: BaseException | None = None) -> float:
        """The wait before retry ``retry`` after ``exc``: the service's Retry-After (capped), else the backoff."""
        wanted = retry_after_of(exc)
        if wanted is not None:
            return min(wanted, self.max_retry_after_seconds)
        return self.backoff(retry)

    def call(
        self,
        fn: Callable[[], T],
        *,
        what: str = "",
        retry_on: Callable[[BaseException], bool] | None = None,
        give_up: Callable[[BaseException, int], BaseException] | None = None,
        before_sleep: Callable[[BaseException, float, int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """Call ``fn()`` until it returns, retrying what ``retry_on`` (default ``is_transient``) accepts.

        ``before_sleep(exc, delay, attempt)`` runs before each wait (logging, slowing a limiter).
        When ``fn`` fails for good (a non-retryable error, or the attempts are used up), the last
        exception is re-raised, or ``give_up(exc, attempts_made)`` when given (raised ``from exc``).
        """
        import tenacity

        accept = retry_on or is_transient

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            return self.delay(state.attempt_number - 1, exc)

        def announce(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            delay = state.upcoming_sleep
            if before_sleep is not None and exc is not None:
                before_sleep(exc, delay, state.attempt_number)
            log.warning("%s failed (%s); retrying in %.2f s (attempt %d of %d)", what or "a request",
                        describe(exc), delay, state.attempt_number + 1, self.attempts)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(accept),
            before_sleep=announce,
            sleep=sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except Exception as exc:
            if give_up is None:
                raise
            mapped = give_up(exc, int(retrying.statistics.get("attempt_number", 1)))
            if mapped is exc:
                raise
            raise mapped from exc


def parse_retry_after(headers: Mapping[str, Any] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``x-ms-retry-after-ms`` / ``Retry-After``, or None.

    Header names are matched case-insensitively. See the module docstring for the rules.
    """
    if headers is None:
        return None
    try:
        lower = {str(k).lower(): v for k, v in headers.items()}
    except (AttributeError, TypeError):
        return None
    for name in _MS_HEADERS:
        seconds = _number(lower.get(name))
        if seconds is not None:
            return seconds / 1000.0
    raw = lower.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(str(raw).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP-dates are GMT
        import datetime as _dt

        when = when.replace(tzinfo=_dt.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _number(value: Any) -> float | None:
    """A non-negative number of a header value (not NaN), else None."""
    if value is None:
        return None
    try:
        n = float(str(value).strip())
    except ValueError:
        return None
    if math.isnan(n) or n < 0:
        return None
    return n


def retry_after_of(exc: BaseException | None) -> float | None:
    """Seconds the service asked to wait before the next try, as carried by ``exc``, or None."""
    if exc is None:
        return None
    value = getattr(exc, "retry_after", None)
    if value is not None:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isnan(seconds) and seconds >= 0:
            return seconds
    response = getattr(exc, "response", None)
    return parse_retry_after(getattr(response, "headers", None))


def status_of(exc: BaseException | None) -> int | None:
    """The HTTP status an exception carries (``status_code`` or ``response.status_code``), if any."""
    if exc is None:
        return None
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def is_transient(exc: BaseException | None) -> bool:
    """True for failures worth retrying: TransientError, HTTP 408/429/5xx, timeouts, connection errors."""
    if exc is None:
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, OndataError):  # ParseError, SourceError, IndexError_...: retrying cannot help
        return False
    status = status_of(exc)
    if status is not None:
        return status in TRANSIENT_STATUS
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def attempts_of(exc: BaseException | None) -> int:
    """How many attempts the layer that raised ``exc`` already made (``TransientError.attempts``, else 1)."""
    value = getattr(exc, "attempts", None) if isinstance(exc, TransientError) else None
    return value if isinstance(value, int) and value >= 1 else 1


def describe(exc: BaseException | None) -> str:
    """A short description of a failure for logs: the HTTP status, or the exception type."""
    if exc is None:
        return "no error"
    status = status_of(exc)
    return f"HTTP {status}" if status is not None else type(exc).__name__


__all__ = [
    "RetryPolicy", "TRANSIENT_STATUS", "attempts_of", "describe", "is_transient", "parse_retry_after",
    "retry_after_of", "status_of",
]
