"""Azure OpenAI (or any OpenAI-compatible endpoint) embeddings, on the ``openai`` SDK.

- Auth: ``api_key``; else ``credential`` / ``DefaultAzureCredential`` through
  ``azure_ad_token_provider=get_bearer_token_provider(..., "https://cognitiveservices.azure.com/.default")``;
  ``base_url`` switches to a plain OpenAI-compatible endpoint (``OpenAI(base_url=...)``, the deployment
  name is sent as ``model``).
- Batching: by input count (``max_batch_inputs``, Azure's limit is 2048) and by tokens
  (``max_batch_tokens``, 300k per request), counted with tiktoken (``indexers.tokens``). Inputs over
  ``max_input_tokens`` (8191) are truncated, with one warning saying how many.
- Output: float32, rows L2-normalised; ``model_id`` is ``azure-openai:<deployment>:<dimensions>``
  (``openai:<model>:<dimensions>`` with ``base_url``).
- Throttling: the SDK's own retries are DISABLED (``max_retries=0``); this backend is the one layer
  that retries (``indexers.retry``): each batch gets ``retry.attempts`` HTTP attempts in all (429,
  408/5xx, connection errors), waiting the ``retry-after-ms`` / ``Retry-After`` the service asks
  for, else exponential backoff; then a ``TransientError`` carrying ``attempts`` (so no layer above
  retries it again). It also adapts its concurrency: it starts at ``max_concurrency``, halves on
  every 429 (pausing every worker for the Retry-After), grows back by one slot per window of
  successful calls, and drops to one request at a time while ``x-ratelimit-remaining-requests`` /
  ``-tokens`` say the quota is nearly used up.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from indexers.errors import ConfigError, EmbeddingError, TransientError
from indexers.retry import RetryPolicy, is_transient, retry_after_of, status_of

if TYPE_CHECKING:  # pragma: no cover
    import openai

log = logging.getLogger(__name__)

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
DEFAULT_API_VERSION = "2024-10-21"
KNOWN_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class AdaptiveLimiter:
    """A concurrency limit that halves on throttling and grows back slowly (AIMD)."""

    def __init__(self, maximum: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_flight = 0
        self._paused_until = 0.0
        self._clock = clock
        self._cond = threading.Condition()
        self.throttles = 0
        self.lowest = float(maximum)  # the lowest limit reached (for diagnostics and tests)

    def acquire(self) -> None:
        with self._cond:
            while True:
                wait = self._paused_until - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                if self.in_flight < max(1, int(self.limit)):
                    self.in_flight += 1
                    return
                self._cond.wait(0.5)

    def release(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def throttled(self, pause: float) -> None:
        with self._cond:
            self.throttles += 1
            self.limit = max(1.0, self.limit / 2)
            self.lowest = min(self.lowest, self.limit)
            self._paused_until = max(self._paused_until, self._clock() + pause)
            self._cond.notify_all()

    def succeeded(self) -> None:
        with self._cond:
            if self.limit < self.maximum:
                self.limit = min(float(self.maximum), self.limit + 1.0 / max(1.0, self.limit) / 2)
                self._cond.notify_all()

    def near_quota(self) -> None:
        with self._cond:
            self.limit = 1.0
            self.lowest = 1.0

    @property
    def current(self) -> int:
        return max(1, int(self.limit))


class AzureOpenAIEmbedder:
    """An ``Embedder`` backed by an Azure OpenAI embeddings deployment (or an OpenAI-compatible endpoint)."""

    def __init__(
        self,
        *,
        deployment: str,
        endpoint: str | None = None,
        api_key: str | None = None,
        credential: Any = None,
        api_version: str = DEFAULT_API_VERSION,
        dimensions: int | None = None,
        base_url: str | None = None,
        max_batch_inputs: int = 2048,
        max_batch_tokens: int = 300_000,
        max_input_tokens: int = 8191,
        max_concurrency: int = 4,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 60.0,
        low_remaining_requests: int = 2,
        low_remaining_tokens: int = 20_000,
        encoding: str = "cl100k_base",
        http_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not deployment:
            raise ConfigError("the Azure OpenAI embedder needs a deployment name")
        if not endpoint and not base_url:
            raise ConfigError("the Azure OpenAI embedder needs an endpoint (or base_url for an OpenAI-compatible API)")
        if dimensions is not None and dimensions < 1:
            raise ValueError("dimensions must be >= 1")
        if not 1 <= max_batch_inputs <= 2048:
            raise ValueError("max_batch_inputs must be between 1 and 2048")
        if max_input_tokens < 1 or max_batch_tokens < max_input_tokens:
            raise ValueError("max_batch_tokens must be >= max_input_tokens >= 1")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.deployment = deployment
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.base_url = base_url
        self.api_version = api_version
        self._api_key = api_key
        self._credential = credential
        self._requested_dimensions = dimensions
        self._dimensions = dimensions or KNOWN_DIMENSIONS.get(deployment)
        self.max_batch_inputs = max_batch_inputs
        self.max_batch_tokens = max_batch_tokens
        self.max_input_tokens = max_input_tokens
        self.max_concurrency = max_concurrency
        self.retry = retry
        self.timeout = timeout
        self.low_remaining_requests = low_remaining_requests
        self.low_remaining_tokens = low_remaining_tokens
        self.encoding = encoding
        self._http_client = http_client
        self._sleep = sleep
        self._client: "openai.OpenAI | None" = None
        self._lock = threading.Lock()
        self.limiter = AdaptiveLimiter(max_concurrency)

    def __repr__(self) -> str:  # never shows the key
        where = self.base_url or self.endpoint
        return f"AzureOpenAIEmbedder(endpoint={where!r}, deployment={self.deployment!r}, dimensions={self._dimensions})"

    # ------------------------------------------------------------------ identity
    @property
    def dimensions(self) -> int:
        if self._dimensions is None:  # unknown deployment, no configured dimensions: ask the model once
            self._dimensions = int(self._embed_batch([" "], probe=True).shape[1])
        return self._dimensions

    @property
    def model_id(self) -> str:
        prefix = "openai" if self.base_url else "azure-openai"
        return f"{prefix}:{self.deployment}:{self.dimensions}"

    # ------------------------------------------------------------------ client (lazy)
    def _get_client(self) -> "openai.OpenAI":
        with self._lock:
            if self._client is not None:
                return self._client
            import openai

            common: dict[str, Any] = {"max_retries": 0, "timeout": self.timeout}  # retries are ours
            if self._http_client is not None:
                common["http_client"] = self._http_client
            if self.base_url:
                self._client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key or "not-needed", **common)
            elif self._api_key:
                self._client = openai.AzureOpenAI(
                    azure_endpoint=self.endpoint, api_key=self._api_key, api_version=self.api_version, **common
                )
            else:
                from azure.identity import DefaultAzureCredential, get_bearer_token_provider

                credential = self._credential or DefaultAzureCredential()
                self._client = openai.AzureOpenAI(
                    azure_endpoint=self.endpoint,
                    azure_ad_token_provider=get_bearer_token_provider(credential, COGNITIVE_SERVICES_SCOPE),
                    api_version=self.api_version,
                    **common,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------------ public API
    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, not str")
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        prepared, counts = self._prepare(texts)
        batches = list(self._batches(counts))
        if len(batches) == 1:
            results = [self._embed_batch([prepared[i] for i in batches[0]])]
        else:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(batches))) as pool:
                results = list(pool.map(lambda b: self._embed_batch([prepared[i] for i in b]), batches))
        out = np.empty((len(texts), results[0].shape[1]), dtype=np.float32)
        for idxs, vecs in zip(batches, results):
            out[idxs] = vecs
        return out

    # ------------------------------------------------------------------ preparation
    def _prepare(self, texts: list[str]) -> tuple[list[str], list[int]]:
        from indexers.tokens import get_encoding

        enc = get_encoding(self.encoding)
        prepared, counts, truncated = [], [], 0
        for text in texts:
            if not text.strip():
                text = " "  # the API rejects empty strings; whitespace embeds as "nothing"
            tokens = enc.encode(text, disallowed_special=())
            if len(tokens) > self.max_input_tokens:
                truncated += 1
                tokens = tokens[: self.max_input_tokens]
                text = enc.decode(tokens)
            prepared.append(text)
            counts.append(max(1, len(tokens)))
        if truncated:
            log.warning(
                "truncated %d of %d input(s) to %d tokens for embedding deployment %r",
                truncated, len(texts), self.max_input_tokens, self.deployment,
            )
        return prepared, counts

    def _batches(self, counts: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i, n in enumerate(counts):
            if current and (len(current) >= self.max_batch_inputs or tokens + n > self.max_batch_tokens):
                batches.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += n
        if current:
            batches.append(current)
        return batches

    # ------------------------------------------------------------------ I/O with retries
    def _embed_batch(self, batch: list[str], *, probe: bool = False) -> np.ndarray:
        client = self._get_client()
        kwargs: dict[str, Any] = {"input": batch, "model": self.deployment}
        if self._requested_dimensions is not None:
            kwargs["dimensions"] = self._requested_dimensions

        def attempt() -> Any:
            self.limiter.acquire()
            try:
                return client.embeddings.with_raw_response.create(**kwargs)
            finally:
                self.limiter.release()

        def throttled(exc: BaseException, delay: float, _attempt: int) -> None:
            if status_of(exc) == 429:  # slow every worker down, not just this one
                self.limiter.throttled(delay)
                log.warning("embedding deployment %r throttled (429); concurrency now %d",
                            self.deployment, self.limiter.current)

        raw = self.retry.call(attempt, what=f"embedding request to deployment {self.deployment!r}",
                              give_up=self._map_error, before_sleep=throttled, sleep=self._sleep)
        self.limiter.succeeded()
        self._watch_quota(raw.headers)
        response = raw.parse()
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(batch):
            raise EmbeddingError(f"embedding deployment {self.deployment!r} returned {len(data)} vectors for {len(batch)} inputs")
        vecs = np.asarray([d.embedding for d in data], dtype=np.float32)
        expected = self._dimensions if not probe else None
        if expected is not None and vecs.shape[1] != expected:
            raise EmbeddingError(
                f"embedding deployment {self.deployment!r} returned {vecs.shape[1]}-dimensional vectors, expected {expected}"
            )
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return (vecs / norms).astype(np.float32)

    def _map_error(self, exc: BaseException, attempts: int) -> BaseException:
        """The typed error for what the openai SDK raised, once the retries are over."""
        import openai

        where = self.base_url or self.endpoint
        after = f" after {attempts} attempts" if attempts > 1 else ""
        if isinstance(exc, openai.RateLimitError):
            return TransientError(
                f"embedding deployment {self.deployment!r} at {where} is still throttling (429){after}",
                retry_after=retry_after_of(exc), attempts=attempts,
            )
        if is_transient(exc):  # 408/5xx, timeouts, connection errors
            return TransientError(
                f"embedding deployment {self.deployment!r} at {where} failed{after}: {_describe(exc)}",
                retry_after=retry_after_of(exc), attempts=attempts,
            )
        if isinstance(exc, openai.AuthenticationError):
            how = "the api key" if self._api_key else "the Entra ID role assignment (Cognitive Services OpenAI User)"
            return EmbeddingError(f"Azure OpenAI at {where} rejected the credentials (HTTP {exc.status_code}); check {how}")
        if isinstance(exc, openai.PermissionDeniedError):
            return EmbeddingError(f"Azure OpenAI at {where} denied access (HTTP 403): {_describe(exc)}")
        if isinstance(exc, openai.NotFoundError):
            return EmbeddingError(
                f"embedding deployment {self.deployment!r} was not found at {where} (HTTP 404): {_describe(exc)}"
            )
        if isinstance(exc, openai.APIStatusError):
            return EmbeddingError(
                f"embedding deployment {self.deployment!r} refused the request (HTTP {exc.status_code}): {_describe(exc)}"
            )
        if isinstance(exc, openai.OpenAIError):  # anything else from the SDK
            return EmbeddingError(f"embedding request to {where} failed: {_describe(exc)}")
        return exc

    def _watch_quota(self, headers: Mapping[str, str]) -> None:
        def num(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(float(value)) if value is not None else None
            except ValueError:
                return None

        requests_left = num("x-ratelimit-remaining-requests")
        tokens_left = num("x-ratelimit-remaining-tokens")
        low = (requests_left is not None and requests_left <= self.low_remaining_requests) or (
            tokens_left is not None and tokens_left <= self.low_remaining_tokens
        )
        if low:
            if self.limiter.current > 1:
                log.info(
                    "embedding quota nearly used (remaining requests=%s, tokens=%s); slowing to one request at a time",
                    requests_left, tokens_left,
                )
            self.limiter.near_quota()


def _describe(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return " ".join(str(err["message"]).split())[:300]
    return type(exc).__name__
