"""The language-model answerer: ``request.messages`` through a ``ChatModel``, then its answer parsed.

``ChatAnswerer.answer`` completes the grounded messages and reads the reply with
``retrieval.citations.parse_citations`` (claims, the page each citation rests on, renumbered
markers). The answer abstained when the model replied with On Your Data's standard sentence
(``retrieval.prompt.NOT_AVAILABLE``), which the in-scope rule of the system message asks for; the
claims of such an answer are only its cited sentences.
"""

from __future__ import annotations

from typing import Any, Iterator

from retrieval.chat import ChatModel
from retrieval.citations import parse_citations
from retrieval.prompt import NOT_AVAILABLE
from retrieval.records import Answer, GroundedRequest

_ABSTENTION = " ".join(NOT_AVAILABLE.lower().split()).split(".")[0]  # "the requested information is not available in the retrieved data"


def is_abstention(text: str) -> bool:
    """True when ``text`` is (or contains) the standard 'not available in the retrieved data' answer."""
    return _ABSTENTION in " ".join(text.lower().split())


class ChatAnswerer:
    """Answers with a chat model (see the module docstring)."""

    extractive = False

    def __init__(self, chat_model: ChatModel) -> None:
        self.chat_model = chat_model

    @property
    def model_id(self) -> str:
        return str(getattr(self.chat_model, "model_id", type(self.chat_model).__name__))

    def answer(self, request: GroundedRequest, **options: Any) -> Answer:
        result = self.chat_model.complete(request.messages, **options)
        parsed = parse_citations(result.content, request.citations())
        abstained = is_abstention(parsed.text)
        return Answer(
            content=parsed.text,
            citations=parsed.citations,
            # an abstaining answer's uncited sentences are the abstention itself, not claims
            claims=tuple(c for c in parsed.claims if c.sources) if abstained else parsed.claims,
            abstained=abstained,
            search_query=request.search_query,
            retrieved=tuple(request.retrieved()),
            unknown_markers_removed=parsed.unknown_markers_removed,
            extractive=False,
            finish_reason=result.finish_reason,
            usage=dict(result.usage),
            request=request,
        )

    def stream(self, request: GroundedRequest, **options: Any) -> Iterator[str]:
        return self.chat_model.stream(request.messages, **options)
