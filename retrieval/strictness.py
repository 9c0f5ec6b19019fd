"""Strictness 1..5 -> a relevance threshold applied to search hits before they reach the prompt.

Scores are not comparable across modes (RRF fused scores ~0.01-0.033, BM25 unbounded, cosine
-1..1), so the threshold is defined per hit on the scores it carries:

- ``vector_score`` (cosine of normalised embeddings) at least ``min_cosine``, OR
- ``text_score`` (BM25) at least ``min_relative`` times the best ``text_score`` of the result list
  (BM25 is only comparable within one query; a strong keyword match is kept even when its cosine
  is low, e.g. a product code);
- a hit with neither arm's score (a backend that only reports the fused score) is kept when its
  ``score`` is at least ``min_relative`` times the best fused score.

Higher strictness = higher precision, lower recall, like On Your Data's strictness. Dropped hits
get ``filter_reason="score"``. The cosine thresholds assume the local all-MiniLM-L6-v2 embedder;
``CALIBRATION`` records what was measured and how to re-run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from indexers.records import SearchHit
from retrieval.errors import RetrievalError


@dataclass(frozen=True)
class StrictnessLevel:
    level: int
    min_cosine: float
    min_relative: float


LEVELS: dict[int, StrictnessLevel] = {
    1: StrictnessLevel(1, min_cosine=-1.0, min_relative=0.0),
    2: StrictnessLevel(2, min_cosine=0.15, min_relative=0.30),
    3: StrictnessLevel(3, min_cosine=0.20, min_relative=0.50),
    4: StrictnessLevel(4, min_cosine=0.30, min_relative=0.50),
    5: StrictnessLevel(5, min_cosine=0.40, min_relative=0.70),
}

CALIBRATION = """
Measured with ``python bench/retrieval.py calibrate`` on data/samples (10 documents, 38 chunks, local
all-MiniLM-L6-v2, hybrid search, top 10 hits per question, 46 answerable questions -> 72 gold hits
and 388 other hits in the top 10):

    strictness  gold hits kept  other hits kept
    1           100%            100%
    2           100%            90.2%
    3           95.8%           76.0%
    4           87.5%           40.2%
    5           79.2%           15.7%

MiniLM cosines of gold and non-gold chunks overlap a lot on a small single-company corpus (gold
median 0.42, others 0.26), so at strictness 3 the threshold keeps recall and leaves most of the
precision to ``top_n_documents``; 4 and 5 trade recall for precision. Abstention on unanswerable
questions is the answerer's job (the extractive model's ``min_support``; the LLM's in-scope rule):
no level drops every hit of an unanswerable question on this corpus.
"""


def level(strictness: int) -> StrictnessLevel:
    """The thresholds of ``strictness`` (1..5); raises ``RetrievalError`` outside that range."""
    if isinstance(strictness, bool) or not isinstance(strictness, int) or strictness not in LEVELS:
        raise RetrievalError(f"strictness must be an integer from 1 to 5, got {strictness!r}")
    return LEVELS[strictness]


def passes(hit: SearchHit, *, strictness: int, best_text: float | None, best_score: float | None) -> bool:
    """Whether one hit passes the threshold of ``strictness`` given the best scores of its result list."""
    lv = level(strictness)
    if hit.vector_score is None and hit.text_score is None:
        return best_score is None or best_score <= 0 or hit.score >= lv.min_relative * best_score
    if hit.vector_score is not None and hit.vector_score >= lv.min_cosine:
        return True
    if hit.text_score is not None and best_text is not None and best_text > 0:
        return hit.text_score >= lv.min_relative * best_text
    return False


def apply_strictness(hits: Sequence[SearchHit], *, strictness: int) -> tuple[list[SearchHit], list[SearchHit]]:
    """Split ``hits`` (best first) into (kept, dropped-for-score), each keeping the input order. Pure."""
    level(strictness)
    texts = [h.text_score for h in hits if h.text_score is not None]
    best_text = max(texts) if texts else None
    best_score = max((h.score for h in hits), default=None)
    kept: list[SearchHit] = []
    dropped: list[SearchHit] = []
    for h in hits:
        (kept if passes(h, strictness=strictness, best_text=best_text, best_score=best_score) else dropped).append(h)
    return kept, dropped
