"""TEST DOUBLE of Azure OpenAI (and OpenAI-compatible) embeddings and chat completions.

Implements the documented REST shapes the ``openai`` SDK uses:

- ``POST /openai/deployments/{deployment}/embeddings?api-version=...`` (Azure) and ``POST .../embeddings``
  with ``model`` in the body (OpenAI-compatible ``base_url``): deterministic vectors from text hashing
  (see ``fake_embedding``), ``dimensions`` honoured, ``encoding_format`` float or base64 (the SDK's
  default), limits enforced (2048 inputs, 8191 tokens per input, 300k tokens per request),
  ``x-ratelimit-remaining-requests`` / ``-tokens`` response headers.
- ``POST /openai/deployments/{deployment}/chat/completions`` (or ``.../chat/completions`` with ``model``):
  non-streaming and SSE streaming (``stream: true``, ``stream_options.include_usage``); replies scripted
  by the test (``script_chat``), including ``finish_reason: "content_filter"`` and the 400
  ``code: "content_filter"`` error Azure returns for a filtered prompt. Like Azure, a stream starts with
  a chunk whose ``choices`` is empty and which carries ``prompt_filter_results``.
- Auth: ``api-key: <key>`` (Azure) or ``Authorization: Bearer <key or token>``; 401 otherwise.
- Failure injection: ``fail_next(n, status=429, retry_after=0.2)`` answers the next ``n`` matching
  requests with that status and ``Retry-After`` / ``retry-after-ms`` headers.
- Quota and latency, as a deployment has them: ``latency`` is seconds per embeddings request, a number
  or a ``(low, high)`` range drawn uniformly per request; ``tokens_per_minute`` (TPM) admits an
  embeddings request only while the tokens of the last 60 s plus its own fit, else answers 429 with
  ``Retry-After`` / ``retry-after-ms`` saying when they will (``throttled`` counts those answers).

Use it from a test::

    from tests.servers.azure_openai import FakeAzureOpenAI, ChatReply

    @pytest.fixture
    def aoai():
        with FakeAzureOpenAI(api_key="test-key") as server:
            yield server

    def test_x(aoai):
        aoai.script_chat("Paris is the capital [doc1].")
        client = openai.AzureOpenAI(azure_endpoint=aoai.url, api_key="test-key", api_version="2024-10-21")
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

import numpy as np
import pytest

from tests.servers import Request, Response, TestServer

_WORD = re.compile(r"\w+", re.UNICODE)

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8191
MAX_REQUEST_TOKENS = 300_000


def _count_tokens(text: str) -> int:
    from indexers.tokens import count_tokens

    return count_tokens(text)


def fake_embedding(text: str, dimensions: int) -> np.ndarray:
    """The deterministic, L2-normalised vector the double returns for ``text``.

    Bag of lower-cased words, each hashed to a component and a sign, so texts sharing words have a
    positive cosine similarity (enough for retrieval tests to make sense).
    """
    vec = np.zeros(dimensions, dtype=np.float64)
    words = _WORD.findall(text.lower()) or [text]
    for w in words:
        digest = hashlib.sha256(w.encode("utf-8")).digest()
        idx = int.from_bytes(digest[:4], "little") % dimensions
        sign = 1.0 if digest[4] & 1 else -1.0
        vec[idx] += sign
        idx2 = int.from_bytes(digest[5:9], "little") % dimensions
        vec[idx2] += 0.5 * (1.0 if digest[9] & 1 else -1.0)
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        vec[0] = 1.0
        norm = 1.0
    return (vec / norm).astype(np.float32)


@dataclass
class ChatReply:
    """A scripted chat completion.

    - ``content``: the assistant message (a string, or a callable ``(request_body) -> str``).
    - ``finish_reason``: ``"stop"``, ``"length"``, ``"content_filter"``...
    - ``error_code``: when set (e.g. ``"content_filter"``), answer ``status`` (default 400) with an Azure
      error body carrying that code instead of a completion.
    """

    content: Union[str, Callable[[dict], str]] = "This is a scripted reply from the test double."
    finish_reason: str = "stop"
    error_code: str | None = None
    status: int = 400
    message: str | None = None


def content_filter_reply(partial: str = "") -> ChatReply:
    """A completion cut by the output content filter (``finish_reason: content_filter``)."""
    return ChatReply(content=partial, finish_reason="content_filter")


def content_filter_error() -> ChatReply:
    """The 400 Azure returns when the prompt itself is filtered (``code: content_filter``)."""
    return ChatReply(
        error_code="content_filter",
        status=400,
        message=(
            "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
            "Please modify your prompt and retry."
        ),
    )


_SAFE = {"filtered": False, "severity": "safe"}
_FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    retry_after_ms: float | None
    kind: str | None
    body: Any = None


class FakeAzureOpenAI(TestServer):
    """TEST DOUBLE of an Azure OpenAI resource (embeddings + chat completions). See the module docstring.

    - ``api_key``: the key accepted in ``api-key`` or ``Authorization: Bearer``; ``None`` disables the check.
    - ``bearer_tokens``: extra Entra ID tokens accepted as ``Authorization: Bearer <token>``.
    - ``embedding_deployments``: deployment -> native dimensions (unknown deployments answer 404);
      ``None`` accepts any deployment with 1536 dimensions.
    - ``chat_deployments``: accepted chat deployments; ``None`` accepts any.
    - ``latency``: seconds each embeddings request takes (to observe client concurrency), or a
      ``(low, high)`` range drawn uniformly per request (``seed`` makes the draws repeatable).
    - ``tokens_per_minute``: the deployment's TPM quota over a sliding 60 s window (``None``: no limit);
      a request that would exceed it answers 429 with the wait until it fits as ``Retry-After``.
      ``quota_window``: that window in seconds (Azure's is 60; tests shorten it).
    """

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        bearer_tokens: tuple[str, ...] = (),
        embedding_deployments: Mapping[str, int] | None = None,
        chat_deployments: tuple[str, ...] | None = None,
        latency: float | tuple[float, float] = 0.0,
        tokens_per_minute: int | None = None,
        quota_window: float = 60.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.bearer_tokens = tuple(bearer_tokens)
        self.embedding_deployments = dict(embedding_deployments) if embedding_deployments is not None else None
        self.chat_deployments = tuple(chat_deployments) if chat_deployments is not None else None
        self.latency = latency
        self.tokens_per_minute = tokens_per_minute
        self.quota_window = quota_window
        self._rng = random.Random(seed)
        self._window: deque[tuple[float, int]] = deque()  # (admitted at, tokens) of the last 60 s
        self.throttled = 0  # requests answered 429 by the TPM quota
        self.remaining_requests: int = 1000
        self.remaining_tokens: int = 1_000_000
        self._failures: deque[_Failure] = deque()
        self._replies: deque[ChatReply] = deque()
        self.default_reply = ChatReply()
        self.in_flight = 0
        self.max_in_flight = 0
        self.embedding_calls: list[dict] = []  # request bodies that were answered 200
        self.chat_calls: list[dict] = []

    # ------------------------------------------------------------------ test controls
    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        retry_after: float | None = 0.2,
        retry_after_ms: float | None = None,
        kind: str | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``n`` requests (of ``kind`` "embeddings"/"chat", or any) with ``status``."""
        with self.lock:
            for _ in range(n):
                self._failures.append(_Failure(status, retry_after, retry_after_ms, kind, body))

    def script_chat(self, *replies: Union[str, ChatReply]) -> None:
        """Queue replies for the next chat completions (then ``default_reply``)."""
        with self.lock:
            for r in replies:
                self._replies.append(r if isinstance(r, ChatReply) else ChatReply(content=r))

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: Request) -> Response:
        self.record(request)
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", f"{request.method} is not supported by the test double")
        path = request.path.rstrip("/")
        if path.endswith("/embeddings"):
            kind = "embeddings"
        elif path.endswith("/chat/completions"):
            kind = "chat"
        else:
            return _error(404, "404", "Resource not found")
        if not self._authorised(request):
            return _error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                "key for an active subscription and use a correct regional API endpoint for your resource.",
            )
        if "/openai/deployments/" in path and "api-version" not in request.query:
            return _error(404, "404", "Resource not found (missing api-version)")
        failure = self._take_failure(kind)
        if failure is not None:
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = _fmt(failure.retry_after)
            if failure.retry_after_ms is not None:
                headers["retry-after-ms"] = _fmt(failure.retry_after_ms)
            body = failure.body or {
                "error": {
                    "code": str(failure.status),
                    "message": "Requests to the operation have exceeded the rate limit of your current tier. "
                    "Please retry after a short while."
                    if failure.status == 429
                    else f"The test double injected a {failure.status}.",
                }
            }
            return Response(failure.status, body, headers)
        try:
            body = request.json()
        except ValueError:
            return _error(400, "BadRequest", "the request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "BadRequest", "the request body must be a JSON object")
        m = re.search(r"/deployments/([^/]+)/", path)
        deployment = m.group(1) if m else str(body.get("model") or "")
        if kind == "embeddings":
            return self._embeddings(deployment, body)
        return self._chat(deployment, body)

    def _authorised(self, request: Request) -> bool:
        if self.api_key is None and not self.bearer_tokens:
            return True
        key = request.headers.get("api-key")
        if key is not None and self.api_key is not None and key == self.api_key:
            return True
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
            return (self.api_key is not None and token == self.api_key) or token in self.bearer_tokens
        return False

    def _take_failure(self, kind: str) -> _Failure | None:
        with self.lock:
            for i, f in enumerate(self._failures):
                if f.kind is None or f.kind == kind:
                    del self._failures[i]
                    return f
        return None

    def _ratelimit_headers(self, tokens: int) -> dict[str, str]:
        with self.lock:
            rr, rt = self.remaining_requests, self.remaining_tokens
        return {
            "x-ratelimit-limit-requests": "1000",
            "x-ratelimit-limit-tokens": "1000000",
            "x-ratelimit-remaining-requests": str(max(0, rr)),
            "x-ratelimit-remaining-tokens": str(max(0, rt)),
            "apim-request-id": str(uuid.uuid4()),
        }

    # ------------------------------------------------------------------ embeddings
    def _admit(self, tokens: int) -> float | None:
        """Count ``tokens`` against the TPM window; ``None`` when admitted, else seconds until they fit."""
        if self.tokens_per_minute is None:
            return None
        now = time.monotonic()
        with self.lock:
            while self._window and self._window[0][0] <= now - self.quota_window:
                self._window.popleft()
            used = sum(n for _, n in self._window)
            if used + tokens <= self.tokens_per_minute:
                self._window.append((now, tokens))
                return None
            self.throttled += 1
            if tokens > self.tokens_per_minute:
                return self.quota_window
            freed = 0  # the oldest entries leave the window first: wait until enough have
            for at, n in self._window:
                freed += n
                if used - freed + tokens <= self.tokens_per_minute:
                    return max(0.001, at + self.quota_window - now)
            return self.quota_window  # pragma: no cover - the loop always returns once every entry has left

    def _embeddings(self, deployment: str, body: dict) -> Response:
        if self.embedding_deployments is not None and deployment not in self.embedding_deployments:
            return _error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the deployment within the "
                "last 5 minutes, please wait a moment and try again.",
            )
        native = (self.embedding_deployments or {}).get(deployment, 1536)
        dims = body.get("dimensions")
        if dims is not None:
            if not isinstance(dims, int) or dims < 1 or dims > native:
                return _error(400, "invalid_request_error", f"dimensions must be between 1 and {native}")
        else:
            dims = native
        raw = body.get("input")
        if isinstance(raw, str):
            inputs: list[Any] = [raw]
        elif isinstance(raw, list):
            inputs = raw
            if inputs and all(isinstance(x, int) for x in inputs):
                inputs = [inputs]
        else:
            return _error(400, "invalid_request_error", "'input' must be a string or an array")
        if not inputs:
            return _error(400, "invalid_request_error", "'input' must not be empty")
        if len(inputs) > MAX_INPUTS:
            return _error(400, "invalid_request_error", f"Too many inputs. The max number of inputs is {MAX_INPUTS}.")
        texts: list[str] = []
        total = 0
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                if item == "":
                    return _error(400, "invalid_request_error", f"'$.input[{i}]' is invalid: empty string")
                n = _count_tokens(item)
                texts.append(item)
            elif isinstance(item, list):
                n = len(item)
                texts.append(" ".join(str(t) for t in item))
            else:
                return _error(400, "invalid_request_error", f"'$.input[{i}]' is invalid")
            if n > MAX_INPUT_TOKENS:
                return _error(
                    400,
                    "invalid_request_error",
                    f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you requested "
                    f"{n} tokens in input {i}. Please reduce your prompt.",
                )
            total += n
        if total > MAX_REQUEST_TOKENS:
            return _error(400, "invalid_request_error", f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request")

        wait = self._admit(total)
        if wait is not None:
            return Response(429, {"error": {"code": "429", "message": (
                "Requests to the Embeddings_Create Operation under Azure OpenAI API version have exceeded the "
                f"token rate limit of your current tier. Please retry after {math.ceil(wait)} seconds.")}},
                {"Retry-After": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000)),
                 "x-ratelimit-remaining-tokens": "0"})
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            delay = self._rng.uniform(*self.latency) if isinstance(self.latency, tuple) else self.latency
        try:
            if delay:
                time.sleep(delay)
            fmt = body.get("encoding_format") or "float"
            data = []
            for i, t in enumerate(texts):
                v = fake_embedding(t, dims)
                emb: Any = base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") if fmt == "base64" else [float(x) for x in v]
                data.append({"object": "embedding", "index": i, "embedding": emb})
            with self.lock:
                self.embedding_calls.append(body)
            headers = self._ratelimit_headers(total)
        finally:
            with self.lock:
                self.in_flight -= 1
        return Response(
            200,
            {
                "object": "list",
                "data": data,
                "model": deployment,
                "usage": {"prompt_tokens": total, "total_tokens": total},
            },
            headers,
        )

    # ------------------------------------------------------------------ chat
    def _chat(self, deployment: str, body: dict) -> Response:
        if self.chat_deployments is not None and deployment not in self.chat_deployments:
            return _error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the deployment within the "
                "last 5 minutes, please wait a moment and try again.",
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "invalid_request_error", "'messages' must be a non-empty array")
        with self.lock:
            reply = self._replies.popleft() if self._replies else self.default_reply
            self.chat_calls.append(body)
        if reply.error_code:
            err: dict[str, Any] = {
                "message": reply.message or f"The test double rejected the request with {reply.error_code}.",
                "type": None,
                "param": "prompt",
                "code": reply.error_code,
                "status": reply.status,
            }
            if reply.error_code == "content_filter":
                err["innererror"] = {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {**_FILTER_RESULTS, "violence": {"filtered": True, "severity": "high"}},
                }
            return Response(reply.status, {"error": err})
        content = reply.content(body) if callable(reply.content) else reply.content
        prompt_tokens = sum(_count_tokens(str(m.get("content") or "")) + 4 for m in messages if isinstance(m, dict))
        completion_tokens = _count_tokens(content) if content else 0
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        model = body.get("model") or deployment
        choice_filter = (
            {**_FILTER_RESULTS, "violence": {"filtered": True, "severity": "high"}}
            if reply.finish_reason == "content_filter"
            else _FILTER_RESULTS
        )
        headers = self._ratelimit_headers(usage["total_tokens"])
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return Response(200, headers=headers, stream=lambda write: self._stream(
                write, cid=cid, created=created, model=model, content=content, reply=reply,
                choice_filter=choice_filter, usage=usage if include_usage else None,
            ))
        return Response(
            200,
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_test_double",
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _FILTER_RESULTS}],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": reply.finish_reason,
                        "logprobs": None,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "content_filter_results": choice_filter,
                    }
                ],
                "usage": usage,
            },
            headers,
        )

    @staticmethod
    def _stream(write, *, cid, created, model, content, reply, choice_filter, usage) -> None:
        def event(obj: Any) -> None:
            write(b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n")

        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_test_double"}
        # Azure's first chunk: no choices, only the prompt filter results.
        event({"id": "", "object": "", "created": 0, "model": "", "choices": [],
               "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _FILTER_RESULTS}]})
        event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}]})
        for piece in re.findall(r"\S+\s*|\s+", content or ""):
            event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None, "logprobs": None,
                                        "content_filter_results": _FILTER_RESULTS}]})
        event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason, "logprobs": None,
                                    "content_filter_results": choice_filter}]})
        if usage is not None:
            event({**base, "choices": [], "usage": usage})
        write(b"data: [DONE]\n\n")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


@pytest.fixture
def azure_openai_server():
    """A running ``FakeAzureOpenAI`` (api key ``test-key``), stopped after the test."""
    with FakeAzureOpenAI(api_key="test-key") as server:
        yield server


__all__ = [
    "FakeAzureOpenAI",
    "ChatReply",
    "content_filter_reply",
    "content_filter_error",
    "fake_embedding",
    "azure_openai_server",
]

