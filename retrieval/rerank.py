"""Re-ranking search candidates by their best sentence: a lexical, title- and heading-aware second stage.

Hybrid search ranks whole chunks (about 512 tokens, usually two pages). A broad question ("What
services does the plan provide?") often has its best chunk just below the top 5: the chunk's
vector is an average of everything it says, and BM25 rewards term counts over the whole chunk. The
second stage, like Azure AI Search's semantic ranker over the first results, looks at the
``candidates`` best hits and ranks them again by *evidence*: the share of the question's terms
(idf-weighted) that the chunk's best single quotable unit covers, a term found only in the chunk's
title, section heading path or file name counting half (``retrieval.extractive.source_context``;
the same scoring, ``ExtractiveAnswerer.score`` without an embedder, that the offline answerer
quotes with, typos respelt). The final order is the reciprocal-rank fusion (``k``, ``weight``) of
the search rank and the evidence rank, so a chunk must do well on both; ties keep the search order.
Pure and deterministic; no model is loaded (20 Contoso chunks: 60 ms median, 119 ms p95 with the 2 cores
at load 12, ``rerank`` alone over ``Retriever.search(question, top=20)`` of the 50 questions).

Measured with ``python bench/answers.py --rerank N`` (Contoso public 50, local profile, MiniLM, hybrid,
top 5; page recall@5 exact / within ±1 page): search order (``--rerank 0``) 0.60 / 0.67; the top 10
re-ranked at evidence weight 1.0: 0.63 / 0.74, weight 0.5: 0.61 / 0.70; the top 20 at weight 0.5
(the defaults): 0.63 / 0.74. Weight 1.0 over the top 10 cost the extractive answer more (it moves
lexically strong chunks of unanswerable questions up: Contoso tune abstention 10/18 -> 8/18,
data/samples 6/7 -> 5/7; weight 0.5 over 20: 9/18 and 6/7). data/samples recall stays 1.00. The
index's own ranking (``LocalIndex.search``, hence SciFact nDCG@10 of ``bench/retrieval.py``) is
unchanged: the stage runs in ``retrieval.answer.prepare_grounded_request``, on the answering path.
"""

from __future__ import annotations

from typing import Sequence

from indexers.fusion import reciprocal_rank_fusion
from indexers.records import SearchHit

#: How many search hits the answering path fetches and re-ranks (0: keep the search order).
RERANK_CANDIDATES = 20


def rerank(question: str, hits: Sequence[SearchHit], *, k: int = 60, weight: float = 0.5) -> list[SearchHit]:
    """``hits`` (best first) in re-ranked order (see the module docstring). Never drops or adds a hit."""
    from retrieval.extractive import ExtractiveAnswerer, source_context

    if k < 1 or weight < 0:
        raise ValueError("rerank needs k >= 1 and weight >= 0")
    hits = list(hits)
    if len(hits) < 2 or not weight:
        return hits
    scored = ExtractiveAnswerer().score(
        question, [(i, source_context(h.chunk), h.chunk.content, h.vector_score) for i, h in enumerate(hits)])
    evidence: dict[int, float] = {}
    for u in scored:
        evidence[u.source] = max(evidence.get(u.source, 0.0), u.coverage)
    by_evidence = sorted(range(len(hits)), key=lambda i: (-evidence.get(i, 0.0), i))
    fused = reciprocal_rank_fusion([range(len(hits)), by_evidence], k=k, weights=[1.0, weight], ties="first")
    return [hits[i] for i, _ in fused]
