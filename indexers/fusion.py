"""Reciprocal rank fusion (RRF), the rank fusion Azure AI Search uses for hybrid queries.

``score(d) = sum_i weight_i / (k + rank_i(d))`` with 1-based ranks; a document absent from a
ranking contributes nothing for it. Pure and deterministic. Used by both index backends' hybrid
search and by the answering path's re-ranking (``retrieval.rerank``, weighted, ``ties="first"``).
"""

from __future__ import annotations

from typing import Hashable, Literal, Mapping, Sequence, TypeVar

from indexers.records import Chunk, SearchHit

K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]],
    *,
    k: int = 60,
    weights: Sequence[float] | None = None,
    ties: Literal["best_rank", "first"] = "best_rank",
) -> list[tuple[K, float]]:
    """Fuse best-first rankings of ids into one ``[(id, score), ...]`` list, best first.

    Ties are broken by the best (smallest) rank an id reached in any ranking, then by the id,
    so the result does not depend on dict ordering; ``ties="first"`` keeps the order of the first
    ranking instead (a second stage that must not reorder what it cannot tell apart: ids absent
    from the first ranking come after its ids, by best rank then id). A repeated id within one
    ranking counts at its first (best) position only.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    if ties not in ("best_rank", "first"):
        raise ValueError(f"ties must be 'best_rank' or 'first', not {ties!r}")
    if weights is None:
        weights = [1.0] * len(rankings)
    elif len(weights) != len(rankings):
        raise ValueError(f"got {len(weights)} weights for {len(rankings)} rankings")
    scores: dict[K, float] = {}
    best_rank: dict[K, int] = {}
    first: dict[K, int] = {}
    for n, (ranking, weight) in enumerate(zip(rankings, weights)):
        seen: set[K] = set()
        for rank, doc_id in enumerate(ranking, start=1):
            if doc_id in seen:
                continue
            seen.add(doc_id)
            scores[doc_id] = scores.get(doc_id, 0.0) + float(weight) / (k + rank)
            if rank < best_rank.get(doc_id, rank + 1):
                best_rank[doc_id] = rank
            if n == 0:
                first[doc_id] = rank
    if ties == "first":
        absent = len(first) + 1
        return sorted(scores.items(), key=lambda kv: (-kv[1], first.get(kv[0], absent), best_rank[kv[0]], kv[0]))
    return sorted(scores.items(), key=lambda kv: (-kv[1], best_rank[kv[0]], kv[0]))


def hits_with_arms(
    scored: Sequence[tuple[K, float]],
    *,
    chunks: Mapping[K, Chunk],
    text_ranked: Sequence[tuple[K, float]] = (),
    vector_ranked: Sequence[tuple[K, float]] = (),
) -> list[SearchHit]:
    """``SearchHit``s for the ``(key, score)`` pairs in order, each carrying the rank and score it had
    in the text and vector arms (1-based ranks, None where it was absent). Keys without a chunk
    (deleted meanwhile) are skipped."""
    text_info = {key: (rank, score) for rank, (key, score) in enumerate(text_ranked, start=1)}
    vector_info = {key: (rank, score) for rank, (key, score) in enumerate(vector_ranked, start=1)}
    hits = []
    for key, score in scored:
        chunk = chunks.get(key)
        if chunk is None:
            continue
        t, v = text_info.get(key), vector_info.get(key)
        hits.append(
            SearchHit(
                chunk=chunk,
                score=float(score),
                text_score=t[1] if t else None,
                vector_score=v[1] if v else None,
                text_rank=t[0] if t else None,
                vector_rank=v[0] if v else None,
            )
        )
    return hits
