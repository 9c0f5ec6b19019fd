"""Chat completions through the openai SDK: Azure OpenAI (API key or Entra ID) or any OpenAI-compatible endpoint.

Retries: the SDK's own are DISABLED (``max_retries=0``); this backend is the one layer that retries
(``indexers.retry``): ``retry.attempts`` HTTP attempts per request for 429, 408/5xx, timeouts and
connection errors, waiting the ``retry-after-ms`` / ``Retry-After`` the service asks for (capped at
``retry.max_retry_after_seconds``), else exponential backoff. A stream is retried only until its
first chunk arrives (the request itself); a stream cut short later is an error, never re-sent.
What is left after them is mapped to typed errors: ``RateLimitedError`` (429),
``ContentFilteredError`` (a 400 whose error code is ``content_filter``, or a completion whose
``finish_reason`` is ``content_filter``), ``ChatModelError`` for everything else. The client is
created on first use; keys are never logged.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

from indexers.retry import RetryPolicy, retry_after_of
from retrieval.chat import ChatResult, Message
from retrieval.errors import ChatModelError, ContentFilteredError, RateLimitedError

log = logging.getLogger(__name__)

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


def _error_code(exc: Any) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            code = err.get("code")
            inner = err.get("innererror")
            if isinstance(inner, dict) and inner.get("code") == "ResponsibleAIPolicyViolation":
                return "content_filter"
            return str(code) if code is not None else None
    return getattr(exc, "code", None)


def map_openai_error(exc: BaseException, attempts: int = 1) -> BaseException:
    """The typed error for an exception raised by the openai SDK (after ``attempts`` attempts)."""
    import openai

    if not isinstance(exc, openai.OpenAIError):
        return exc  # ours (ContentFilteredError...) or a bug: unchanged
    after = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, openai.RateLimitError):
        return RateLimitedError(
            f"the chat model is rate limited (429){after}",
            code=_error_code(exc),
            retry_after=retry_after_of(exc),
        )
    if isinstance(exc, openai.APIStatusError):
        code = _error_code(exc)
        if exc.status_code == 400 and code == "content_filter":
            return ContentFilteredError("the service's content filter blocked the prompt", status=400, code=code)
        message = getattr(exc, "message", "") or str(exc)
        return ChatModelError(f"the chat model answered {exc.status_code}{after}: {message}", status=exc.status_code,
                              code=code)
    if isinstance(exc, openai.APITimeoutError):
        return ChatModelError(f"the chat model did not answer in time{after}")
    if isinstance(exc, openai.APIConnectionError):
        return ChatModelError(f"could not connect to the chat model endpoint{after}")
    return ChatModelError(f"the chat model failed: {exc}")


class AzureOpenAIChatModel:
    """A chat deployment of Azure OpenAI, or a model of an OpenAI-compatible endpoint (``base_url``).

    Authentication: ``api_key`` when given, else Entra ID via ``DefaultAzureCredential`` (Azure only).
    """


    def __init__(
        self,
        *,
        deployment: str,
        endpoint: str | None = None,
        api_key: str | None = None,
        api_version: str = "2024-10-21",
        base_url: str | None = None,
        retry: RetryPolicy = RetryPolicy(attempts=4),
        timeout: float = 60.0,
        client: Any = None,
    ) -> None:
        if client is None and not endpoint and not base_url:
            raise ChatModelError("the chat model needs an Azure OpenAI endpoint or an OpenAI-compatible base_url")
        self.deployment = deployment
        self._endpoint = endpoint
        self._api_key = api_key
        self._api_version = api_version
        self._base_url = base_url
        self.retry = retry
        self._timeout = timeout
        self._client = client

    @property
    def model_id(self) -> str:
        return self.deployment

    @property
    def client(self) -> Any:
        if self._client is None:
            import openai

            if self._base_url:
                self._client = openai.OpenAI(
                    base_url=self._base_url, api_key=self._api_key or "unused",
                    max_retries=0, timeout=self._timeout,  # retries are ours
                )
            elif self._api_key:
                self._client = openai.AzureOpenAI(
                    azure_endpoint=self._endpoint, api_key=self._api_key, api_version=self._api_version,
                    max_retries=0, timeout=self._timeout,  # retries are ours
                )
            else:
                from azure.identity import DefaultAzureCredential, get_bearer_token_provider

                provider = get_bearer_token_provider(DefaultAzureCredential(), COGNITIVE_SERVICES_SCOPE)
                self._client = openai.AzureOpenAI(
                    azure_endpoint=self._endpoint, azure_ad_token_provider=provider, api_version=self._api_version,
                    max_retries=0, timeout=self._timeout,  # retries are ours
                )
        return self._client

    def _create(self, messages: Sequence[Message], **opts: Any) -> Any:
        """One chat-completions request, retried by the policy; typed errors when it fails for good."""
        client = self.client
        return self.retry.call(
            lambda: client.chat.completions.create(model=self.deployment, messages=list(messages), **opts),
            what=f"chat request to deployment {self.deployment!r}",
            give_up=map_openai_error,
        )

    def complete(self, messages: Sequence[Message], **opts: Any) -> ChatResult:
        response = self._create(messages, **opts)
        if not response.choices:
            raise ChatModelError("the chat model returned no choices")
        choice = response.choices[0]
        if choice.finish_reason == "content_filter":
            raise ContentFilteredError("the service's content filter blocked the completion", code="content_filter")
        usage = response.usage.model_dump() if response.usage is not None else {}
        usage = {k: v for k, v in usage.items() if isinstance(v, int)}
        return ChatResult(content=choice.message.content or "", finish_reason=choice.finish_reason or "stop", usage=usage)

    def stream(self, messages: Sequence[Message], **opts: Any) -> Iterator[str]:
        import openai

        stream = self._create(messages, stream=True, **opts)
        try:
            for chunk in stream:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.delta is not None and choice.delta.content:
                    yield choice.delta.content
                if choice.finish_reason == "content_filter":
                    raise ContentFilteredError("the service's content filter stopped the completion", code="content_filter")
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
