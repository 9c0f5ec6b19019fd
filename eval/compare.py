"""Comparing two runs: metric deltas with paired bootstrap 95% confidence intervals.

Questions are paired by question id (only those answered in both runs count). For each
per-question metric the delta of the means is B - A; its confidence interval resamples the paired
questions with replacement (numpy, fixed seed) and takes the 2.5th and 97.5th percentiles of the
resampled deltas. Questions that got worse are those whose score dropped between A and B.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

PER_QUESTION = (
    "page_recall@{k}", "page1_recall@{k}", "doc_recall@{k}", "page1_mrr", "page1_ndcg@{k}",
    "citations_matched", "any_citation", "groundedness", "citation_recall", "citation_precision",
)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, samples: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, float]:
    """``{"delta", "low", "high"}``: mean(b) - mean(a) and its paired bootstrap interval."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.size == 0:
        raise ValueError("paired_bootstrap needs two non-empty sequences of the same length")
    diffs = y - x
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diffs.size, size=(samples, diffs.size))
    boot = diffs[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    return {"delta": float(diffs.mean()), "low": float(np.quantile(boot, alpha)), "high": float(np.quantile(boot, 1 - alpha))}


def _value(record: Mapping[str, Any], key: str) -> float | None:
    v = (record.get("scores") or {}).get(key)
    return None if v is None else float(v)


def compare_runs(records_a: Sequence[Mapping[str, Any]], records_b: Sequence[Mapping[str, Any]], *, k: int,
                 samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Deltas per metric and the questions that got worse (largest drop first)."""
    a = {r["qid"]: r for r in records_a if not r.get("error") and "scores" in r}
    b = {r["qid"]: r for r in records_b if not r.get("error") and "scores" in r}
    common = [q for q in a if q in b]
    metrics: dict[str, Any] = {}
    for template in PER_QUESTION:
        key = template.format(k=k)
        pairs = [(_value(a[q], key), _value(b[q], key)) for q in common]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        if not pairs:
            continue
        xs, ys = zip(*pairs)
        stats = paired_bootstrap(xs, ys, samples=samples, seed=seed)
        stats.update({"a": float(np.mean(xs)), "b": float(np.mean(ys)), "n": len(pairs),
                      "significant": stats["low"] > 0 or stats["high"] < 0})
        metrics[key] = stats
    worse = []
    for q in common:
        drops = {}
        for template in PER_QUESTION:
            key = template.format(k=k)
            x, y = _value(a[q], key), _value(b[q], key)
            if x is not None and y is not None and y < x:
                drops[key] = y - x
        if drops:
            worse.append({"qid": q, "question": a[q]["question"], "drops": drops, "total_drop": sum(drops.values()),
                          "answer_a": a[q].get("answer", ""), "answer_b": b[q].get("answer", "")})
    worse.sort(key=lambda w: w["total_drop"])
    return {"k": k, "paired_questions": len(common), "only_a": len(set(a) - set(b)), "only_b": len(set(b) - set(a)),
            "metrics": metrics, "worse": worse}
