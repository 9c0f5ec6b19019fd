"""Grounded chat requests: the system rules, the numbered ``[docN]`` sources, the history and the question.

Everything here is pure and deterministic: ``build_grounded_request`` applies the strictness
threshold (``retrieval.strictness``), keeps ``top_n_documents`` hits, fits them in a tiktoken
budget (dropping the lowest-ranked sources that do not fit; only the single best source, when it
alone is too long, is cut — at a sentence boundary), and renders messages that go straight into
``client.chat.completions.create(messages=...)``; the ``GroundedRequest`` also carries the numbered
sources themselves, so an answerer that needs no language model reads them there, not from the
rendered text. ``rewrite_query`` turns a follow-up question into a standalone search query.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Mapping, Sequence

from indexers.records import SearchHit
from indexers.text import MARKER, REQUEST_WORDS, content_words, sentence_spans, words
from indexers.tokens import count_tokens, get_encoding
from retrieval.records import GroundedRequest, RetrievedDocument, Source
from retrieval.strictness import apply_strictness

if TYPE_CHECKING:  # pragma: no cover
    from retrieval.chat import ChatModel

NOT_AVAILABLE = "The requested information is not available in the retrieved data. Please try another query or topic."
DEFAULT_ROLE = "You are an AI assistant that helps people find information in their documents."

IN_SCOPE_RULE = (
    f'- If the sources do not contain the answer, reply exactly: "{NOT_AVAILABLE}" '
    "Do not use outside knowledge."
)
OUT_OF_SCOPE_RULE = (
    "- If the sources do not contain the answer, you may answer from general knowledge, "
    "and say plainly that this part of the answer is not from the sources."
)
RULES = """Answer the question using only the numbered sources listed with it.
Rules:
- Base every statement on the sources; do not invent facts.
- Cite every claim with the marker of its source, like [doc1], placed right after the claim. Cite several sources as [doc1][doc2].
- Only cite sources that are listed; never make up a marker.
{scope_rule}
- Answer in the language of the question, concisely."""

QUESTION_PREFIX = "Question: "
SOURCES_HEADER = "Sources:"
NO_SOURCES = "(no sources were found)"

_LINE_OPENING_MARKER = re.compile(r"^(?=" + MARKER.pattern + ")", re.MULTILINE | re.IGNORECASE)


def system_message(*, role_information: str | None = None, in_scope: bool = True) -> str:
    role = (role_information or "").strip() or DEFAULT_ROLE
    return role + "\n\n" + RULES.format(scope_rule=IN_SCOPE_RULE if in_scope else OUT_OF_SCOPE_RULE)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def source_header(n: int, hit: SearchHit) -> str:
    c = hit.chunk
    parts = [f"[doc{n}]"]
    fields = []
    fields.append(f"Title: {_one_line(c.title or c.filepath or c.source_id)}")
    if c.page_start is not None:
        pages = str(c.page_start) if c.page_end in (None, c.page_start) else f"{c.page_start}-{c.page_end}"
        fields.append(f"Page: {pages}")
    if c.section:
        fields.append(f"Section: {_one_line(c.section)}")
    return " ".join(parts) + " " + " | ".join(fields)


def _neutralise(content: str) -> str:
    """Keep source text from forging a source header: a line starting with a ``[docN]`` marker gets a leading space."""
    return _LINE_OPENING_MARKER.sub(" ", content.strip())


def render_source(n: int, hit: SearchHit, content: str) -> str:
    return f"{source_header(n, hit)}\n{content}"


def truncate_to_tokens(text: str, budget: int) -> str:
    """The longest prefix of ``text`` made of whole sentences within ``budget`` tokens.

    When even the first sentence is longer than the budget, it is cut at the last word boundary that
    fits and ends with an ellipsis (the only case where a sentence is cut).
    """
    if budget <= 0:
        return ""
    if count_tokens(text) <= budget:
        return text
    kept = ""
    for _, end in sentence_spans(text):
        if count_tokens(text[:end]) > budget:
            break
        kept = text[:end]
    if kept.strip():
        return kept
    enc = get_encoding()
    prefix = enc.decode(enc.encode(text, disallowed_special=())[: max(budget - 1, 0)])
    cut = prefix.rsplit(" ", 1)[0] if " " in prefix else prefix
    return cut.rstrip() + "…"


def build_grounded_request(
    question: str,
    *,
    hits: Sequence[SearchHit],
    history: Sequence[Mapping[str, str]] | None = None,
    role_information: str | None = None,
    in_scope: bool = True,
    strictness: int = 3,
    top_n_documents: int = 5,
    max_context_tokens: int = 3000,
    rewrite: str | None = None,
) -> GroundedRequest:
    """The grounded chat request for ``question`` over ``hits`` (best first, as the search returned them).

    ``rewrite`` is the search query the hits were found with (default: the question). Hits below the
    strictness threshold are dropped with ``filter_reason="score"``; relevant hits beyond
    ``top_n_documents`` or the ``max_context_tokens`` budget with ``filter_reason="top_n"``.
    """
    if top_n_documents < 1:
        raise ValueError("top_n_documents must be >= 1")
    if max_context_tokens < 1:
        raise ValueError("max_context_tokens must be >= 1")
    search_query = rewrite or question
    kept_hits, _ = apply_strictness(hits, strictness=strictness)
    kept_ids = {id(h) for h in kept_hits}
    ranked = list(enumerate(hits, 1))
    kept = [(r, h) for r, h in ranked if id(h) in kept_ids]
    dropped = [
        RetrievedDocument(h, rank=r, search_query=search_query, filter_reason="score")
        for r, h in ranked
        if id(h) not in kept_ids
    ]

    sources: list[Source] = []
    used = 0
    for i, (rank, h) in enumerate(kept):
        n = len(sources) + 1
        if n > top_n_documents:
            dropped.append(RetrievedDocument(h, rank=rank, search_query=search_query, filter_reason="top_n"))
            continue
        content = _neutralise(h.chunk.content)
        block = count_tokens(render_source(n, h, content)) + 2
        if used + block <= max_context_tokens:
            sources.append(Source(n=n, hit=h, content=content, rank=rank))
            used += block
            continue
        if not sources:  # the best source alone exceeds the budget: cut it at a sentence boundary
            header = count_tokens(source_header(n, h) + "\n") + 2
            cut = truncate_to_tokens(content, max_context_tokens - header)
            if cut:
                sources.append(Source(n=n, hit=h, content=cut, rank=rank, truncated=True))
                used += count_tokens(render_source(n, h, cut)) + 2
                continue
        # this source does not fit: it and every lower-ranked one are dropped (a worse source never
        # takes a better one's place)
        for r2, h2 in kept[i:]:
            dropped.append(RetrievedDocument(h2, rank=r2, search_query=search_query, filter_reason="top_n"))
        break

    blocks = "\n\n".join(render_source(s.n, s.hit, s.content) for s in sources) or NO_SOURCES
    user = f"{QUESTION_PREFIX}{question.strip()}\n\n{SOURCES_HEADER}\n{blocks}"
    messages: list[dict[str, str]] = [{"role": "system", "content": system_message(role_information=role_information, in_scope=in_scope)}]
    for turn in history or ():
        role = turn.get("role")
        if role in ("user", "assistant") and isinstance(turn.get("content"), str):
            messages.append({"role": role, "content": turn["content"]})
    messages.append({"role": "user", "content": user})
    return GroundedRequest(
        messages=tuple(messages),
        sources=tuple(sources),
        dropped=tuple(sorted(dropped, key=lambda d: d.rank)),
        search_query=search_query,
        question=question,
        in_scope=in_scope,
        strictness=strictness,
        context_tokens=used,
    )


# ---------------------------------------------------------------- follow-up questions

_PRONOUNS = frozenset("it its this that these those they them their there he she him her his hers one ones such".split())


def _content_words(text: str) -> list[str]:
    return [w for w in content_words(text, drop=REQUEST_WORDS) if len(w) > 2]


def needs_rewrite(question: str) -> bool:
    """A follow-up needs context when it has a pronoun or at most three content words."""
    return any(w in _PRONOUNS for w in words(question)) or len(_content_words(question)) <= 3


def heuristic_rewrite(question: str, history: Sequence[Mapping[str, str]] | None) -> str:
    """Append salient words of the previous user turn to a short or pronoun-bearing follow-up question."""
    previous = [m.get("content", "") for m in (history or ()) if m.get("role") == "user" and isinstance(m.get("content"), str)]
    if not previous or not needs_rewrite(question):
        return question.strip()
    have = set(words(question))
    extra: list[str] = []
    for w in _content_words(previous[-1]):
        if w not in have and w not in extra:
            extra.append(w)
    return (question.strip() + " " + " ".join(extra[:8])).strip() if extra else question.strip()


REWRITE_PROMPT = (
    "Rewrite the user's last question as a standalone search query, using the conversation for context. "
    "Reply with the query only, no quotes, no explanation."
)


def rewrite_query(question: str, history: Sequence[Mapping[str, str]] | None, *, chat_model: "ChatModel | None" = None) -> str:
    """A standalone search query for ``question`` given the ``history`` (the question itself without history).

    With a ``chat_model`` the model writes it (falling back to the heuristic when it replies nothing);
    otherwise ``heuristic_rewrite``.
    """
    if not history:
        return question.strip()
    if chat_model is not None:
        convo = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in history if m.get("role") in ("user", "assistant"))
        result = chat_model.complete(
            [
                {"role": "system", "content": REWRITE_PROMPT},
                {"role": "user", "content": f"Conversation:\n{convo}\n\nLast question: {question}"},
            ],
            temperature=0.0,
            max_tokens=64,
        )
        text = result.content.strip().strip('"').strip()
        if text:
            return text.splitlines()[0]
    return heuristic_rewrite(question, history)
