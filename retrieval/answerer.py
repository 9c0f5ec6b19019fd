"""The Answerer port: a grounded request -> an ``Answer`` (text, claims with cited sources and pages, abstained).

Backends:

- ``retrieval.chat_answerer.ChatAnswerer``: sends ``request.messages`` through a ``ChatModel``
  (Azure OpenAI or any OpenAI-compatible endpoint) and parses what the model wrote
  (``retrieval.citations.parse_citations``, the only parser of answer text);
- ``retrieval.extractive.ExtractiveAnswerer``: offline, no language model; it reads
  ``request.sources`` directly and quotes their best-supported sentences, so its claims, pages
  and abstention are known without parsing anything.

``answer`` returns the whole answer; ``stream`` yields its text as deltas whose ``[docN]`` markers
use the prompt's numbering (``request.sources[N-1]``), as On Your Data streams do. ``chat_model``
is the language model behind the answerer (None for the extractive one); ``answer_question`` uses
it to rewrite follow-up questions.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, runtime_checkable

from retrieval.chat import ChatModel
from retrieval.records import Answer, GroundedRequest


@runtime_checkable
class Answerer(Protocol):
    """Answers a ``GroundedRequest`` with a cited ``Answer``."""

    model_id: str
    extractive: bool
    chat_model: ChatModel | None

    def answer(self, request: GroundedRequest, **options: Any) -> Answer: ...

    def stream(self, request: GroundedRequest, **options: Any) -> Iterator[str]: ...
