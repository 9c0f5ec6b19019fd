"""Chat completions through the openai SDK: Azure OpenAI (API key or Entra ID) or any OpenAI-compatible endpoint.

Retries: the SDK's own (``max_retries``, honouring ``Retry-After`` on 429 and retrying 5xx) — no
second layer here. What is left after them is mapped to typed errors: ``RateLimitedError`` (429),
``ContentFilteredError`` (a 400 whose error code is ``content_filter``, or a completion whose
``finish_reason`` is ``content_filter``), ``ChatModelError`` for everything else. The client is
created on first use; keys are never logged.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

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


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for key in ("retry-after-ms", "retry-after"):
        value = headers.get(key)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            continue
        return seconds / 1000 if key == "retry-after-ms" else seconds
    return None


def map_openai_error(exc: Exception) -> ChatModelError:
    """The typed error for an exception raised by the openai SDK."""
    import openai

    if isinstance(exc, openai.RateLimitError):
        return RateLimitedError(
            "the chat model is rate limited (429) and the SDK's retries are exhausted",
            code=_error_code(exc),
            retry_after=_retry_after(exc),
        )
    if isinstance(exc, openai.APIStatusError):
        code = _error_code(exc)
        if exc.status_code == 400 and code == "content_filter":
            return ContentFilteredError("the service's content filter blocked the prompt", status=400, code=code)
        message = getattr(exc, "message", "") or str(exc)
        return ChatModelError(f"the chat model answered {exc.status_code}: {message}", status=exc.status_code, code=code)
    if isinstance(exc, openai.APITimeoutError):
        return ChatModelError("the chat model did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return ChatModelError("could not connect to the chat model endpoint")
    return ChatModelError(f"the chat model failed: {exc}")


class AzureOpenAIChatModel:
    """A chat deployment of Azure OpenAI, or a model of an OpenAI-compatible endpoint (``base_url``).

    Authentication: ``api_key`` when given, else Entra ID via ``DefaultAzureCredential`` (Azure only).
    """

    extractive = False

    def __init__(
        self,
        *,
        deployment: str,
        endpoint: str | None = None,
        api_key: str | None = None,
        api_version: str = "2024-10-21",
        base_url: str | None = None,
        max_retries: int = 3,
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
        self._max_retries = max_retries
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
                    max_retries=self._max_retries, timeout=self._timeout,
                )
            elif self._api_key:
                self._client = openai.AzureOpenAI(
                    azure_endpoint=self._endpoint, api_key=self._api_key, api_version=self._api_version,
                    max_retries=self._max_retries, timeout=self._timeout,
                )
            else:
                from azure.identity import DefaultAzureCredential, get_bearer_token_provider

                provider = get_bearer_token_provider(DefaultAzureCredential(), COGNITIVE_SERVICES_SCOPE)
                self._client = openai.AzureOpenAI(
                    azure_endpoint=self._endpoint, azure_ad_token_provider=provider, api_version=self._api_version,
                    max_retries=self._max_retries, timeout=self._timeout,
                )
        return self._client

    def complete(self, messages: Sequence[Message], **opts: Any) -> ChatResult:
        import openai

        try:
            response = self.client.chat.completions.create(model=self.deployment, messages=list(messages), **opts)
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from exc
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

        try:
            stream = self.client.chat.completions.create(model=self.deployment, messages=list(messages), stream=True, **opts)
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
