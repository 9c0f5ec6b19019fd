"""Strictness 1..5 -> a relevance threshold applied to search hits before they reach the prompt.

Scores are not comparable across modes (RRF fused scores ~0.01-0.033, BM25 unbounded, cosine
-1..1), so the threshold is defined per hit on the most meaningful score it carries:

1. the hit has a ``vector_score`` (cosine similarity of normalised embeddings): keep it when the
   cosine is at least ``min_cosine`` of the level;
2. else it has a ``text_score`` (BM25): keep it when it is at least ``min_relative`` times the best
   ``text_score`` of the result list (BM25 is only comparable within one query);
3. else: keep it when its fused ``score`` is at least ``min_relative`` times the best fused score.

Calibration (the cosine thresholds assume the local all-MiniLM-L6-v2 embedder; see
``CALIBRATION`` for what was measured). Higher strictness = higher precision, lower recall, like On
Your Data's strictness. Dropped hits get ``filter_reason="score"``.
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
    2: StrictnessLevel(2, min_cosine=0.15, min_relative=0.10),
    3: StrictnessLevel(3, min_cosine=0.25, min_relative=0.25),
    4: StrictnessLevel(4, min_cosine=0.35, min_relative=0.40),
    5: StrictnessLevel(5, min_cosine=0.45, min_relative=0.60),
}

CALIBRATION = """not yet measured"""


def level(strictness: int) -> StrictnessLevel:
    """The thresholds of ``strictness`` (1..5); raises ``RetrievalError`` outside that range."""
    if isinstance(strictness, bool) or not isinstance(strictness, int) or strictness not in LEVELS:
        raise RetrievalError(f"strictness must be an integer from 1 to 5, got {strictness!r}")
    return LEVELS[strictness]


def passes(hit: SearchHit, *, strictness: int, best_text: float | None, best_score: float | None) -> bool:
    """Whether one hit passes the threshold of ``strictness`` given the best scores of its result list."""
    lv = level(strictness)
    if hit.vector_score is not None:
        return hit.vector_score >= lv.min_cosine
    if hit.text_score is not None and best_text is not None and best_text > 0:
        return hit.text_score >= lv.min_relative * best_text
    if best_score is not None and best_score > 0:
        return hit.score >= lv.min_relative * best_score
    return True


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
