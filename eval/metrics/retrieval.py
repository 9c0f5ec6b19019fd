"""Retrieval quality against gold citations, computed with ir_measures.

Inputs are plain data:

- ``gold``: a list of ``{"file": str, "page": int | None}`` (the cited sources of the truth);
- ``hits``: the retrieved hits in rank order, each ``{"file": str, "page_start": int | None,
  "page_end": int | None}`` (other keys ignored).

File names are compared by base name, case-insensitively (``docs/A.pdf`` matches ``a.pdf``).
For each level a qrels and a run are built and handed to ir_measures:

- ``doc``: relevant items are the gold files; a hit is its file; repeated files count once.
- ``page``: relevant items are the gold (file, page) pairs; a hit is relevant to a gold page when
  its page range contains it (a gold citation without a page matches any hit of that file).
- ``page1``: as ``page`` with a tolerance of one page either side of the hit's range.

A hit relevant to a gold item already found earlier is a non-relevant duplicate (it adds no gain).
The run's scores are strictly decreasing in rank order so ir_measures keeps the retriever's order.
"""

from __future__ import annotations

import posixpath
from typing import Any, Mapping, Sequence

import ir_measures
from ir_measures import RR, R, nDCG

LEVELS = ("doc", "page", "page1")


def normalize_file(name: str) -> str:
    return posixpath.basename(str(name).replace("\\", "/")).strip().lower()


def _gold_ids(gold: Sequence[Mapping[str, Any]], level: str) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for g in gold:
        key = (normalize_file(g["file"]), None if level == "doc" else g.get("page"))
        if key not in out:
            out.append(key)
    return out


def _gold_id_str(key: tuple[str, int | None]) -> str:
    return key[0] if key[1] is None else f"{key[0]}#page={key[1]}"


def hit_matches(hit: Mapping[str, Any], gold_key: tuple[str, int | None], tolerance: int = 0) -> bool:
    """True when ``hit`` (``file``, ``page_start``, ``page_end``) holds the gold ``(normalised file, page)``.

    A gold item without a page matches any hit of its file; ``tolerance`` widens the hit's page range.
    """
    file, page = gold_key
    if normalize_file(hit.get("file") or "") != file:
        return False
    if page is None:
        return True
    start = hit.get("page_start")
    end = hit.get("page_end", start)
    if start is None:
        return False
    end = start if end is None else end
    return start - tolerance <= page <= end + tolerance


def build_qrels_and_run(
    gold: Sequence[Mapping[str, Any]], hits: Sequence[Mapping[str, Any]], *, level: str
) -> tuple[dict[str, int], dict[str, float]]:
    """The qrels ``{item: 1}`` and run ``{item: score}`` of one question at ``level`` (doc, page, page1)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")
    gold_keys = _gold_ids(gold, level)
    tolerance = 1 if level == "page1" else 0
    qrels = {_gold_id_str(k): 1 for k in gold_keys}
    run: dict[str, float] = {}
    n = len(hits)
    for rank, hit in enumerate(hits):
        item = None
        for key in gold_keys:
            if hit_matches(hit, key, tolerance) and _gold_id_str(key) not in run:
                item = _gold_id_str(key)
                break
        if item is None:
            item = f"~miss{rank}"
        run[item] = float(n - rank)
    return qrels, run


def retrieval_scores(
    gold: Sequence[Mapping[str, Any]], hits: Sequence[Mapping[str, Any]], *, k: int = 5
) -> dict[str, float] | None:
    """``{"{level}_recall@k", "{level}_mrr", "{level}_ndcg@k"}`` for each level, or None without gold."""
    if not gold:
        return None
    measures = [R @ k, RR @ k, nDCG @ k]
    names = {str(R @ k): "recall@{k}", str(RR @ k): "mrr", str(nDCG @ k): "ndcg@{k}"}
    out: dict[str, float] = {}
    for level in LEVELS:
        qrels, run = build_qrels_and_run(gold, hits, level=level)
        values = {name.format(k=k): 0.0 for name in names.values()}
        if run:
            for metric in ir_measures.iter_calc(measures, {"q": qrels}, {"q": run}):
                values[names[str(metric.measure)].format(k=k)] = float(metric.value)
        for name, value in values.items():
            out[f"{level}_{name}"] = value
    return out
