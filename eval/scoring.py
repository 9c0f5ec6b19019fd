"""Per-question records and their scores, and the run summary.

A record is a plain dict (what ``results.jsonl`` stores). ``answer_record`` turns a question and a
``retrieval.records.Answer`` into one; ``score_record`` adds the judged claims and the per-question
``scores``; ``summarize`` aggregates records into the headline metrics. Only ``score_record`` calls a
groundedness scorer; everything else is a pure function.

Claims are the answer's ``Answer.claims`` (sentence text, the citations it carries, the page of
each), stored in the record as ``claims``: ``{"text", "docs", "pages"}``. A claim's own sources are
the citations it carries; ``citations_matched`` (and its ±1-page twin) read the cited pages from
the claims. ``groundedness`` judges each claim
against all the sources the answer cites; ``citation_recall`` against its own sources only (an
uncited claim is unsupported); ``citation_precision`` judges each (claim, cited source) pair alone.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

from eval import text as T
from eval.datasets import QAItem
from eval.metrics import answers as A
from eval.metrics import citations as C
from eval.metrics.retrieval import normalize_file, retrieval_scores


def _file_of(obj: Any) -> str:
    return normalize_file(getattr(obj, "filepath", "") or getattr(obj, "source_id", "") or getattr(obj, "title", "") or "")


def answer_record(item: QAItem, answer: Any, *, k: int) -> dict[str, Any]:
    """The stored record of ``item`` answered by ``answer`` (a ``retrieval.records.Answer``), before scoring."""
    hits = []
    for doc in list(answer.retrieved)[: max(k, 0) or None]:
        chunk = doc.hit.chunk
        hits.append({
            "rank": doc.rank, "file": _file_of(chunk), "page_start": chunk.page_start, "page_end": chunk.page_end,
            "score": float(doc.hit.score), "chunk_id": chunk.id, "in_prompt": doc.filter_reason is None,
            "filter_reason": doc.filter_reason,
        })
    citations = [{
        "ref": C.render_citation({"filepath": c.filepath or c.source_id, "title": c.title, "page": c.page}),
        "filepath": c.filepath, "title": c.title, "page": c.page, "pages": c.pages, "chunk_id": c.chunk_id,
        "source_id": c.source_id, "content": c.content,
    } for c in answer.citations]
    claims = [{"text": c.text, "docs": list(c.sources), "pages": list(c.pages)} for c in answer.claims]
    return {
        "qid": item.qid,
        "line": item.line,
        "question": item.question,
        "truth": item.truth,
        "answerable": item.answerable,
        "gold": [{"file": g.file, "page": g.page} for g in item.gold],
        "answer": answer.content,
        "abstained": bool(answer.abstained),
        "extractive": bool(answer.extractive),
        "citations": citations,
        "claims": claims,
        "hits": hits,
        "latency_ms": dict(answer.latency_ms),
        "error": None,
    }


def error_record(item: QAItem, exc: BaseException) -> dict[str, Any]:
    return {"qid": item.qid, "line": item.line, "question": item.question, "truth": item.truth,
            "answerable": item.answerable, "gold": [{"file": g.file, "page": g.page} for g in item.gold],
            "error": f"{type(exc).__name__}: {exc}"}


def stored_claims(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The record's claims (``{"text", "docs", "pages"}``); a record stored before claims were kept is
    read with the language-model answer parser (``retrieval.citations.parse_citations``)."""
    if "claims" in record:
        return [{"text": c["text"], "docs": list(c.get("docs") or []), "pages": list(c.get("pages") or [])}
                for c in record["claims"]]
    from retrieval.citations import parse_citations
    from retrieval.records import Citation

    sources = [Citation(content=c.get("content", ""), page=c.get("page")) for c in record.get("citations", [])]
    parsed = parse_citations(record.get("answer", ""), sources)
    return [{"text": c.text, "docs": list(c.sources), "pages": [sources[n - 1].page for n in c.sources]}
            for c in parsed.claims]


def score_record(record: Mapping[str, Any], *, scorer: Any, k: int) -> dict[str, Any]:
    """A copy of ``record`` with ``claims`` (judged) and ``scores`` added; ``record`` is not modified."""
    out = dict(record)
    if record.get("error"):
        return out
    citations = record.get("citations", [])
    sources_all = [c["content"] for c in citations]
    answer_claims = [] if record.get("abstained") else stored_claims(record)
    claims = [c for c in answer_claims if len(T.words(c["text"])) >= 2]  # a one-word fragment is not judged

    requests: dict[tuple[str, tuple[str, ...]], None] = {}

    def own(claim: Mapping[str, Any]) -> list[str]:
        return [citations[d - 1]["content"] for d in claim["docs"] if 0 < d <= len(citations)]

    for claim in claims:
        if sources_all:
            requests.setdefault((claim["text"], tuple(sources_all)), None)
        mine = own(claim)
        if mine:
            requests.setdefault((claim["text"], tuple(mine)), None)
            for s in mine:
                requests.setdefault((claim["text"], (s,)), None)
    keys = list(requests)
    started = time.perf_counter()
    results = dict(zip(keys, scorer.score_many([(c, list(s)) for c, s in keys]))) if keys else {}
    seconds = time.perf_counter() - started
    domain_share = getattr(scorer, "domain_share", None)
    # what the report's scorer block needs: throughput, and whether these sources look like the measured domains
    out["scoring"] = {"pairs": len(keys), "seconds": round(seconds, 4),
                      "in_domain": domain_share(sources_all) if callable(domain_share) and sources_all and keys else None}

    judged_claims, sentence_judgements = [], []
    for claim in claims:
        res = results.get((claim["text"], tuple(sources_all)))
        entry = {"text": claim["text"], "docs": claim["docs"], "pages": claim["pages"],
                 "supported": bool(res.supported) if res else False,
                 "score": float(res.score) if res else 0.0,
                 "evidence": res.evidence if res else "",
                 "error": res.error if res else None}
        if res is not None and res.others:
            entry["others"] = {name: {"supported": bool(o.supported), "score": float(o.score), "error": o.error}
                               for name, o in res.others.items()}
        mine = own(claim)
        if mine:
            together = results[(claim["text"], tuple(mine))]
            singles = [results[(claim["text"], (s,))] for s in mine]
            entry["cited_supported"] = bool(together.supported)
            entry["each_cited_supported"] = [bool(r.supported) for r in singles]
            if together.error is None and all(r.error is None for r in singles):
                sentence_judgements.append({"cited": entry["each_cited_supported"], "supported_by_all": together.supported})
            elif entry["error"] is None:
                entry["error"] = together.error or next(r.error for r in singles if r.error)
        else:
            entry["cited_supported"] = False
            entry["each_cited_supported"] = []
            if entry["error"] is None:
                sentence_judgements.append({"cited": [], "supported_by_all": False})
        judged_claims.append(entry)

    response = C.render_claims(answer_claims, citations)
    scores: dict[str, Any] = {}
    retrieval = retrieval_scores(record.get("gold", []), record.get("hits", []), k=k)
    if retrieval is not None:
        scores.update(retrieval)
    scores["any_citation"] = C.any_citation(response)
    scores["citations_matched"] = C.citations_matched(record.get("truth", ""), response)
    scores["citations_matched_pm1"] = C.citations_matched_near(record.get("truth", ""), response, tolerance=1)
    scores["groundedness"] = A.groundedness(judged_claims)
    scores.update(C.citation_precision_recall(sentence_judgements))
    scores["claims"] = len(judged_claims)
    scores["judge_failures"] = sum(1 for c in judged_claims if c.get("error"))
    scores["answer_words"] = A.answer_length(T.strip_markers(record.get("answer", "")))
    scores["abstained"] = bool(record.get("abstained"))
    out["claims"] = judged_claims
    out["scores"] = scores
    return out


# Headline metrics: key -> (label, one sentence for a data team, higher_is_better)
HEADLINES: dict[str, tuple[str, str, bool]] = {
    "page_recall@{k}": ("Page recall@{k}", "Share of the gold cited pages that appear among the top {k} retrieved chunks.", True),
    "page1_recall@{k}": ("Page recall@{k} (±1 page)", "The same, accepting a chunk one page before or after the gold page.", True),
    "doc_recall@{k}": ("Document recall@{k}", "Share of the gold cited documents that appear among the top {k} retrieved chunks.", True),
    "page1_mrr": ("Page MRR (±1)", "How high the first correct page ranks on average (1 = always first).", True),
    "page1_ndcg@{k}": ("Page nDCG@{k} (±1)", "Ranking quality of the top {k} against the gold pages (1 = perfect order).", True),
    "citations_matched": ("Citations matched", "Share of the gold citations that the answer also cites (Azure reference-app definition).", True),
    "citations_matched_pm1": ("Citations matched (±1 page)", "The same, accepting a cited page one before or after the gold page.", True),
    "any_citation": ("Any citation", "Share of answers to answerable questions that cite at least one source.", True),
    "groundedness": ("Groundedness", "Share of answer sentences supported by the sources the answer cites.", True),
    "groundedness_pass_rate": ("Fully grounded answers", "Share of answers whose every sentence is supported.", True),
    "citation_recall": ("Citation recall", "Share of answer sentences supported by the sources they themselves cite.", True),
    "citation_precision": ("Citation precision", "Share of citations that on their own support the sentence citing them.", True),
    "abstention_rate": ("Abstention (unanswerable)", "Share of unanswerable questions where the system said it does not know.", True),
    "false_abstention_rate": ("False abstention", "Share of answerable questions where the system wrongly said it does not know.", False),
    "answer_words": ("Answer length", "Average number of words in an answer.", True),
    "latency_p50_s": ("Latency p50", "Median time to answer one question, in seconds (warm-up excluded).", False),
    "latency_p95_s": ("Latency p95", "95th-percentile time to answer one question, in seconds (warm-up excluded).", False),
    "warmup_s": ("Warm-up", "Time of the first question each run process answered, which includes loading the models.", False),
    "judge_failures": ("Judge failures", "Claims the groundedness scorer could not judge (errors, unparseable replies).", False),
    "errors": ("Errors", "Questions whose answering failed.", False),
}


def headline_keys(k: int) -> dict[str, tuple[str, str, bool]]:
    return {key.format(k=k): (label.format(k=k), text.format(k=k), hib) for key, (label, text, hib) in HEADLINES.items()}


# Metrics that are a mean of one value per question: key template -> the questions it is averaged over.
# ``summarize`` (the report) and ``eval.compare`` (paired deltas) both read them through ``metric_values``,
# so the two always use the same denominators.
RETRIEVAL_METRICS = tuple(f"{level}_{name}" for level in ("doc", "page", "page1") for name in ("recall@{k}", "mrr", "ndcg@{k}"))
MEAN_METRICS: dict[str, str] = {
    **{key: "with_gold" for key in RETRIEVAL_METRICS},
    "citations_matched": "answerable_cited",
    "citations_matched_pm1": "answerable_cited",
    "any_citation": "answerable",
    "groundedness": "answered",
    "groundedness_pass_rate": "answered",
    "citation_recall": "answered",
    "citation_precision": "answered",
    "abstention_rate": "unanswerable",
    "false_abstention_rate": "answerable",
    "answer_words": "not_abstained",
}
POPULATIONS = {
    "with_gold": "answerable questions with gold citations",
    "answerable": "answerable questions",
    "answerable_cited": "answerable questions whose truth cites a file",
    "answered": "answers with judged sentences",
    "unanswerable": "unanswerable questions",
    "not_abstained": "answers that did not abstain",
}


def scored(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records that were answered and scored (no error)."""
    return [r for r in records if not r.get("error") and "scores" in r]


def _in_population(record: Mapping[str, Any], population: str) -> bool:
    answerable = record.get("answerable", True)
    return {
        "with_gold": answerable and bool(record.get("gold")),
        "answerable": answerable,
        "answerable_cited": answerable,  # the metric is undefined (None) when the truth cites no file
        "answered": True,
        "unanswerable": not answerable,
        "not_abstained": not record.get("abstained"),
    }[population]


def metric_value(record: Mapping[str, Any], key: str) -> float | None:
    """One question's value of the mean metric ``key`` (k already filled in); None when it is undefined."""
    s = record.get("scores") or {}
    if key in ("abstention_rate", "false_abstention_rate"):
        return float(bool(record.get("abstained")))
    if key == "groundedness_pass_rate":
        g = s.get("groundedness")
        return None if g is None else float(g == 1.0)
    value = s.get(key)
    return None if value is None else float(value)


def metric_values(records: Sequence[Mapping[str, Any]], template: str, *, k: int) -> dict[str, float]:
    """``{qid: value}`` of the mean metric ``template`` over the questions it is averaged over."""
    population = MEAN_METRICS[template]
    key = template.format(k=k)
    out: dict[str, float] = {}
    for r in scored(records):
        if _in_population(r, population):
            value = metric_value(r, key)
            if value is not None:
                out[r["qid"]] = value
    return out


def warmup_qids(records: Sequence[Mapping[str, Any]]) -> set[str]:
    """The questions that carried the model load: those flagged ``warmup`` by the runner (one per run
    process), or, for runs stored before the flag existed, the first answered question."""
    answered = [r for r in records if not r.get("error") and r.get("latency_ms")]
    flagged = {r["qid"] for r in answered if r.get("warmup")}
    if flagged or not answered:
        return flagged
    return {answered[0]["qid"]}


def latency_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """``p50_s``/``p95_s`` over the questions after warm-up, and ``warmup_s`` (the slowest warm-up question)."""
    ok = scored(records)
    warm = warmup_qids(ok)
    lat = A.latency_percentiles([r.get("latency_ms", {}).get("total") for r in ok if r["qid"] not in warm])
    warm_ms = [r.get("latency_ms", {}).get("total") for r in ok if r["qid"] in warm]
    warm_ms = [x for x in warm_ms if x is not None]
    return {"p50_s": None if lat["p50"] is None else lat["p50"] / 1000,
            "p95_s": None if lat["p95"] is None else lat["p95"] / 1000,
            "warmup_s": max(warm_ms) / 1000 if warm_ms else None, "warmup_questions": len(warm_ms)}


def summarize(records: Sequence[Mapping[str, Any]], *, k: int) -> dict[str, Any]:
    """Headline metrics (flat ``metrics`` dict) and counts over scored records; inputs are not modified."""
    ok = scored(records)
    answerable = [r for r in ok if r.get("answerable", True)]
    with_gold = [r for r in answerable if r.get("gold")]
    metrics: dict[str, Any] = {}
    for template in MEAN_METRICS:
        metrics[template.format(k=k)] = A.mean(list(metric_values(ok, template, k=k).values()))
    lat = latency_summary(ok)
    metrics["latency_p50_s"] = lat["p50_s"]
    metrics["latency_p95_s"] = lat["p95_s"]
    metrics["warmup_s"] = lat["warmup_s"]
    metrics["judge_failures"] = sum(r["scores"].get("judge_failures", 0) for r in ok)
    metrics["errors"] = len(records) - len(ok)
    agreement = scorer_agreement(ok)
    return {
        "k": k,
        "scoring": scoring_totals(ok),
        **({"scorer_agreement": agreement} if agreement else {}),
        "counts": {"questions": len(records), "answered": len(ok), "answerable": len(answerable),
                   "with_gold": len(with_gold), "unanswerable": len(ok) - len(answerable),
                   "claims": sum(r["scores"].get("claims", 0) for r in ok), "warmup": lat["warmup_questions"]},
        "metrics": metrics,
    }


def scoring_totals(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The groundedness scorer's work over ``records``: claim/source pairs judged, seconds, pairs per second, and
    ``in_domain``: the mean share of each answer's cited sources that resemble a domain the scorer was measured on
    (None when the scorer has no such profile)."""
    rows = [r["scoring"] for r in records if r.get("scoring")]
    pairs = sum(int(x.get("pairs", 0)) for x in rows)
    seconds = sum(float(x.get("seconds", 0.0)) for x in rows)
    return {"pairs": pairs, "seconds": round(seconds, 3), "pairs_per_s": pairs / seconds if pairs and seconds > 0 else None,
            "in_domain": A.mean([x.get("in_domain") for x in rows])}


def scorer_agreement(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """How the run's scorer and each scorer run beside it (``claims[].others``) agree, over the claims both
    judged without error: ``{name: {claims, kappa, agreement, a_grounded, b_grounded, failures}}``; None
    when no other scorer ran."""
    pairs: dict[str, list[tuple[bool, bool]]] = {}
    failures: dict[str, int] = {}
    for r in records:
        for claim in r.get("claims") or []:
            for name, other in (claim.get("others") or {}).items():
                pairs.setdefault(name, [])
                failures.setdefault(name, 0)
                if other.get("error"):
                    failures[name] += 1
                elif not claim.get("error"):
                    pairs[name].append((bool(claim.get("supported")), bool(other.get("supported"))))
    if not pairs:
        return None
    return {name: {**A.scorer_agreement(p), "failures": failures[name]} for name, p in pairs.items()}


def recall_per_document(records: Sequence[Mapping[str, Any]], *, k: int, level: str = "page1") -> dict[str, dict[str, float]]:
    """Per gold document (normalised file name): ``{"recall": mean {level}_recall@k, "questions": n}``
    over the questions citing it."""
    sums: dict[str, list[float]] = {}
    for r in records:
        score = (r.get("scores") or {}).get(f"{level}_recall@{k}")
        if score is None:
            continue
        for file in {normalize_file(g["file"]) for g in r.get("gold", [])}:
            sums.setdefault(file, []).append(score)
    return {f: {"recall": sum(v) / len(v), "questions": len(v)} for f, v in sorted(sums.items())}
