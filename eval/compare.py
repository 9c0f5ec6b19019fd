"""Comparing two runs: metric deltas with paired bootstrap 95% confidence intervals, per-question changes.

Every metric is read through ``eval.scoring.metric_values``, the function the report's summary uses,
so A's value here is the value ``ondata eval report`` prints for A (same questions, same
denominators) when both runs answered the same questions. Questions are paired by question id; a
metric's delta is mean(B) - mean(A) over the questions where both runs define it, and its confidence
interval is a paired bootstrap (``scipy.stats.bootstrap``, BCa, fixed seed) of that difference.

When the runs' configurations differ, ``differences`` lists what differs and each metric says
whether it stays comparable:

- a different dataset (hash) makes every metric non-comparable (gold citations may have changed);
- a different groundedness scorer makes the judged metrics non-comparable;
- a different ``top`` is handled by recomputing the retrieval metrics at the smaller k from the
  stored hits of both runs (noted on each retrieval metric);
- strictness, profile, embedder or chat model are what an experiment changes: listed, not flagged.

``questions`` holds each paired question's outcome and failure reasons (``eval.diagnosis``) in A and B
and whether B fixed, broke or changed it.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from eval.diagnosis import diagnose, outcome
from eval.metrics.retrieval import retrieval_scores
from eval.scoring import MEAN_METRICS, RETRIEVAL_METRICS, headline_keys, latency_summary, metric_values, scored
from eval.store import config_differences

JUDGED = ("groundedness", "groundedness_pass_rate", "citation_recall", "citation_precision")

# Configuration keys a reader must know about, with what a difference means.
WATCHED = {
    "dataset.sha256": "dataset (sha256)",
    "top": "top (k)",
    "strictness": "strictness",
    "settings.profile": "profile",
    "scorer": "groundedness scorer",
    "scorer_version": "scorer version",
    "embedder": "embedding model",
    "chat_model": "chat model",
}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, samples: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, float]:
    """``{"delta", "low", "high"}``: mean(b) - mean(a) and its paired bootstrap (BCa) interval."""
    from scipy.stats import bootstrap

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.size == 0:
        raise ValueError("paired_bootstrap needs two non-empty sequences of the same length")
    diffs = y - x
    delta = float(diffs.mean())
    if np.all(diffs == diffs[0]):  # no spread: every resample gives the same delta
        return {"delta": delta, "low": delta, "high": delta}

    def stat(xs: np.ndarray, ys: np.ndarray, axis: int = -1) -> np.ndarray:
        return ys.mean(axis=axis) - xs.mean(axis=axis)

    interval = None
    for method in ("BCa", "percentile"):  # BCa is undefined for some very discrete samples
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bootstrap((x, y), stat, paired=True, vectorized=True, n_resamples=samples, method=method,
                            confidence_level=confidence, rng=np.random.default_rng(seed))
        interval = res.confidence_interval
        if np.isfinite(interval.low) and np.isfinite(interval.high):
            break
    return {"delta": delta, "low": float(interval.low), "high": float(interval.high)}


def _top(config: Mapping[str, Any] | None, default: int) -> int:
    return int((config or {}).get("top", default))


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def retrieval_at_k(records: Sequence[Mapping[str, Any]], k: int) -> list[dict[str, Any]]:
    """Copies of ``records`` whose retrieval scores are (re)computed at ``k`` from their stored hits."""
    out = []
    for r in records:
        copy = dict(r)
        if r.get("scores") is not None and not r.get("error"):
            scores = {key: v for key, v in r["scores"].items() if not key.startswith(("doc_", "page_", "page1_"))}
            again = retrieval_scores(r.get("gold", []), (r.get("hits") or [])[:k], k=k)
            scores.update(again or {})
            copy["scores"] = scores
        out.append(copy)
    return out


def config_changes(config_a: Mapping[str, Any], config_b: Mapping[str, Any]) -> dict[str, Any]:
    """What differs between two run configurations: watched keys (A and B values) and other keys (names)."""
    diffs = config_differences(config_a, config_b)
    watched = [{"key": key, "label": label, "a": _lookup(config_a, key), "b": _lookup(config_b, key)}
               for key, label in WATCHED.items() if key in diffs]
    others = [d for d in diffs if d not in WATCHED and d != "dataset.path"]
    if "dataset.path" in diffs and "dataset.sha256" not in diffs:
        others.append("dataset.path (same content)")
    return {"watched": watched, "other": others}


def _non_comparable(changes: Mapping[str, Any], k: int, ka: int, kb: int) -> dict[str, str]:
    keys = {d["key"] for d in changes["watched"]}
    notes: dict[str, str] = {}
    if ka != kb:
        for template in RETRIEVAL_METRICS:
            notes[template.format(k=k)] = f"recomputed at k={k} from the stored hits (top {ka} in A, {kb} in B)"
    if "scorer" in keys or "scorer_version" in keys:
        for key in JUDGED:
            notes[key] = "not comparable: judged by different groundedness scorers"
    if "dataset.sha256" in keys:
        for template in MEAN_METRICS:
            notes[template.format(k=k)] = "not comparable: the runs used different datasets"
    return notes


def _change(out_a: str, out_b: str, codes_a: set[str], codes_b: set[str]) -> str:
    good = {"passed", "correct_abstention"}
    if out_a not in good and out_b in good:
        return "fixed"
    if out_a in good and out_b not in good:
        return "broke"
    if codes_a != codes_b:
        return "changed"
    return "same"


def compare_runs(records_a: Sequence[Mapping[str, Any]], records_b: Sequence[Mapping[str, Any]], *, k: int | None = None,
                 config_a: Mapping[str, Any] | None = None, config_b: Mapping[str, Any] | None = None,
                 samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Deltas per metric (with comparability notes), per-question changes and the questions that got worse.

    ``k`` defaults to the smaller ``top`` of the two configurations; retrieval metrics are
    recomputed at it from the stored hits when a run used another ``top``.
    """
    ka, kb = _top(config_a, k or 5), _top(config_b, k or 5)
    k = k or min(ka, kb)
    if ka != kb or ka != k:  # one k for both, from the stored hits
        records_a, records_b = retrieval_at_k(records_a, k), retrieval_at_k(records_b, k)
    changes = config_changes(config_a or {}, config_b or {})
    notes = _non_comparable(changes, k, ka, kb)

    a = {r["qid"]: r for r in scored(records_a)}
    b = {r["qid"]: r for r in scored(records_b)}
    common = [q for q in a if q in b]
    paired_a, paired_b = [a[q] for q in common], [b[q] for q in common]

    metrics: dict[str, Any] = {}
    values: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for template in MEAN_METRICS:
        key = template.format(k=k)
        va, vb = metric_values(paired_a, template, k=k), metric_values(paired_b, template, k=k)
        values[key] = (va, vb)
        qids = [q for q in common if q in va and q in vb]
        note = notes.get(key)
        entry: dict[str, Any] = {"n": len(qids), "note": note,
                                 "comparable": not (note or "").startswith("not comparable")}
        if qids:
            xs, ys = [va[q] for q in qids], [vb[q] for q in qids]
            entry.update(paired_bootstrap(xs, ys, samples=samples, seed=seed))
            entry.update({"a": float(np.mean(xs)), "b": float(np.mean(ys))})
            entry["significant"] = entry["comparable"] and (entry["low"] > 0 or entry["high"] < 0)
        else:
            entry.update({"a": None, "b": None, "delta": None, "low": None, "high": None, "significant": False})
        metrics[key] = entry

    lat_a, lat_b = latency_summary(paired_a), latency_summary(paired_b)
    other = {f"latency_{p}_s": {"a": lat_a[f"{p}_s"], "b": lat_b[f"{p}_s"]} for p in ("p50", "p95")}
    for entry in other.values():
        entry["delta"] = None if entry["a"] is None or entry["b"] is None else entry["b"] - entry["a"]

    higher_is_better = {key: hib for key, (_, _, hib) in headline_keys(k).items()}
    questions, worse = [], []
    for q in common:
        ra, rb = diagnose(a[q]), diagnose(b[q])
        oa, ob = outcome(a[q], ra), outcome(b[q], rb)
        deltas = {key: vb[q] - va[q] for key, (va, vb) in values.items() if q in va and q in vb and vb[q] != va[q]}
        questions.append({"qid": q, "line": b[q].get("line"), "question": b[q]["question"],
                          "outcome_a": oa, "outcome_b": ob, "reasons_a": ra, "reasons_b": rb,
                          "change": _change(oa, ob, {x["reason"] for x in ra}, {x["reason"] for x in rb}),
                          "deltas": deltas, "answer_a": a[q].get("answer", ""), "answer_b": b[q].get("answer", "")})
        # a drop is a change for the worse: down for most metrics, up for false abstention
        drops = {key: -abs(d) for key, d in deltas.items() if (d < 0) == higher_is_better.get(key, True)}
        if drops:
            worse.append({"qid": q, "question": a[q]["question"], "drops": drops, "total_drop": sum(drops.values()),
                          "answer_a": a[q].get("answer", ""), "answer_b": b[q].get("answer", "")})
    worse.sort(key=lambda w: w["total_drop"])
    order = {"broke": 0, "fixed": 1, "changed": 2, "same": 3}
    questions.sort(key=lambda x: (order[x["change"]], x["line"] or 0))
    return {"k": k, "k_a": ka, "k_b": kb, "paired_questions": len(common), "only_a": len(set(a) - set(b)),
            "only_b": len(set(b) - set(a)), "differences": changes, "metrics": metrics, "other": other,
            "questions": questions, "worse": worse}

