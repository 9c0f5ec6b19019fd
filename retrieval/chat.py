"""The ChatModel port: chat messages -> a completion (``complete``) or a stream of text deltas (``stream``).

Backend: ``retrieval.azure_openai_chat.AzureOpenAIChatModel`` (Azure OpenAI or any
OpenAI-compatible endpoint). Answering a grounded request is the ``Answerer`` port's job
(``retrieval.answerer``): ``ChatAnswerer`` sends the messages through a chat model; the offline
extractive answerer needs none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Protocol, Sequence, runtime_checkable

Message = Mapping[str, Any]


@dataclass(frozen=True)
class ChatResult:
    """One completion: its text, why it stopped (``stop``, ``length``, ``content_filter``...), token usage."""

    content: str
    finish_reason: str = "stop"
    usage: Mapping[str, int] = field(default_factory=dict)


@runtime_checkable
class ChatModel(Protocol):
    """Completes chat messages (``[{"role": ..., "content": ...}, ...]``)."""

    def complete(self, messages: Sequence[Message], **opts: Any) -> ChatResult: ...

    def stream(self, messages: Sequence[Message], **opts: Any) -> Iterator[str]: ...
