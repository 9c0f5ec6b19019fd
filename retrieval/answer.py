"""``answer_question``: rewrite a follow-up, search, re-rank the first hits (``retrieval.rerank``), apply
strictness, build the grounded request, answer it with an ``Answerer`` — timing each stage."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Mapping, Sequence

from indexers.filters import Filter
from indexers.records import Groups, SearchMode
from retrieval.answerer import Answerer
from retrieval.chat import ChatModel
from retrieval.prompt import build_grounded_request, rewrite_query
from retrieval.records import Answer, GroundedRequest
from retrieval.rerank import RERANK_CANDIDATES, rerank
from retrieval.retriever import Retriever

log = logging.getLogger(__name__)


def prepare_grounded_request(
    question: str,
    *,
    retriever: Retriever,
    rewriter: ChatModel | None = None,
    history: Sequence[Mapping[str, str]] | None = None,
    mode: SearchMode = "hybrid",
    top: int = 5,
    filter: Filter | None = None,
    groups: Groups = (),
    strictness: int = 3,
    in_scope: bool = True,
    role_information: str | None = None,
    top_n_documents: int = 5,
    max_context_tokens: int = 3000,
    rerank_candidates: int = RERANK_CANDIDATES,
    timings: dict[str, float] | None = None,
) -> GroundedRequest:
    """The first half of ``answer_question``: rewrite, search, re-rank, strictness, prompt. Stage times go
    into ``timings``.

    ``rewriter``: the chat model that rewrites a follow-up question into a search query (None: the
    heuristic rewrite). ``rerank_candidates``: the search fetches at least this many hits and
    ``retrieval.rerank.rerank`` orders them again before the cut to ``max(top, top_n_documents)``
    (0: the search order)."""
    timings = timings if timings is not None else {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = round((now - t) * 1000, 3)
        t = now

    search_query = rewrite_query(question, history, chat_model=rewriter)
    lap("rewrite")
    if rerank_candidates < 0:
        raise ValueError("rerank_candidates must be >= 0")
    keep = max(top, top_n_documents)
    hits = retriever.search(search_query, top=max(keep, rerank_candidates), mode=mode, filter=filter, groups=groups)
    lap("search")
    timings["embed"] = round(retriever.last_timings.get("embed_ms", 0.0), 3)
    if rerank_candidates:
        hits = rerank(search_query, hits, top=keep)
        lap("rerank")
    hits = hits[:keep]
    request = build_grounded_request(
        question,
        hits=hits,
        history=history,
        role_information=role_information,
        in_scope=in_scope,
        strictness=strictness,
        top_n_documents=top_n_documents,
        max_context_tokens=max_context_tokens,
        rewrite=search_query,
    )
    lap("prompt")
    return request


def answer_question(
    question: str,
    *,
    retriever: Retriever,
    answerer: Answerer,
    history: Sequence[Mapping[str, str]] | None = None,
    mode: SearchMode = "hybrid",
    top: int = 5,
    filter: Filter | None = None,
    groups: Groups = (),
    strictness: int = 3,
    in_scope: bool = True,
    role_information: str | None = None,
    top_n_documents: int = 5,
    max_context_tokens: int = 3000,
    rerank_candidates: int = RERANK_CANDIDATES,
    **options: object,
) -> Answer:
    """A grounded, cited answer to ``question``.

    The search fetches ``max(top, top_n_documents, rerank_candidates)`` hits, re-ranks them
    (``retrieval.rerank``) and keeps ``max(top, top_n_documents)``; those below the ``strictness`` threshold
    and those beyond ``top_n_documents`` / ``max_context_tokens`` are reported in
    ``Answer.retrieved`` with their ``filter_reason``. ``groups`` are the caller's ACL groups:
    ``()`` (the default) sees public chunks only, ``ALL_GROUPS`` everything. ``options`` go to the
    answerer (sampling options of a chat model).
    """
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    request = prepare_grounded_request(
        question, retriever=retriever, rewriter=answerer.chat_model, history=history, mode=mode, top=top,
        filter=filter, groups=groups, strictness=strictness, in_scope=in_scope, role_information=role_information,
        top_n_documents=top_n_documents, max_context_tokens=max_context_tokens,
        rerank_candidates=rerank_candidates, timings=timings,
    )
    t = time.perf_counter()
    answer = answerer.answer(request, **options)
    timings["generate"] = round((time.perf_counter() - t) * 1000, 3)
    timings["total"] = round((time.perf_counter() - t_start) * 1000, 3)
    log.debug("answered with %d sources, %d citations", len(request.sources), len(answer.citations))
    return replace(answer, latency_ms=timings, request=request)
