"""Metrics against hand-computed examples, and the ir_measures wiring against a hand-computed nDCG."""

from __future__ import annotations

import copy
import math

import pytest

from eval.metrics import answers as A
from eval.metrics import citations as C
from eval.metrics.retrieval import build_qrels_and_run, retrieval_scores
from eval.scoring import summarize


def hit(file, page, end=None):
    return {"file": file, "page_start": page, "page_end": page if end is None else end}


def hand_ndcg(gains, n_relevant, k):
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(n_relevant, k)))
    return dcg / idcg


def test_page_level_recall_mrr_ndcg_hand_computed():
    gold = [{"file": "A.pdf", "page": 3}, {"file": "B.pdf", "page": 7}]
    hits = [hit("docs/c.pdf", 1), hit("a.pdf", 3), hit("b.pdf", 8), hit("b.pdf", 7), hit("a.pdf", 3)]
    s = retrieval_scores(gold, hits, k=5)
    # exact pages: relevant at ranks 2 and 4; the second a.pdf p3 is a duplicate (no gain)
    assert s["page_recall@5"] == 1.0
    assert s["page_mrr"] == 0.5
    assert s["page_ndcg@5"] == pytest.approx(hand_ndcg([0, 1, 0, 1, 0], 2, 5))
    # ±1 page: b.pdf p8 now matches gold page 7 at rank 3, so rank 4 becomes a duplicate
    assert s["page1_ndcg@5"] == pytest.approx(hand_ndcg([0, 1, 1, 0, 0], 2, 5))
    # documents: a at rank 2, b at rank 3
    assert s["doc_recall@5"] == 1.0
    assert s["doc_ndcg@5"] == pytest.approx(hand_ndcg([0, 1, 1], 2, 5))


def test_recall_at_k_cuts_off_and_missing_gold():
    gold = [{"file": "a.pdf", "page": 1}, {"file": "a.pdf", "page": 9}]
    hits = [hit("x.pdf", 1), hit("a.pdf", 1), hit("a.pdf", 9)]
    assert retrieval_scores(gold, hits, k=2)["page_recall@2"] == 0.5
    assert retrieval_scores(gold, hits, k=3)["page_recall@3"] == 1.0
    assert retrieval_scores([], hits, k=3) is None
    zero = retrieval_scores(gold, [], k=3)
    assert zero["page_recall@3"] == 0.0 and zero["doc_mrr"] == 0.0


def test_chunk_spanning_pages_and_gold_without_page():
    assert retrieval_scores([{"file": "a.pdf", "page": 5}], [hit("a.pdf", 4, 6)], k=1)["page_recall@1"] == 1.0
    assert retrieval_scores([{"file": "t.docx", "page": None}], [hit("T.docx", None)], k=1)["page_recall@1"] == 1.0
    assert retrieval_scores([{"file": "a.pdf", "page": 5}], [hit("a.pdf", None)], k=1)["page_recall@1"] == 0.0


def test_qrels_and_run_keep_rank_order_and_inputs_untouched():
    gold = [{"file": "a.pdf", "page": 2}]
    hits = [hit("b.pdf", 1), hit("a.pdf", 2)]
    before = copy.deepcopy((gold, hits))
    qrels, run = build_qrels_and_run(gold, hits, level="page")
    assert qrels == {"a.pdf#page=2": 1}
    assert sorted(run, key=run.get, reverse=True) == ["~miss0", "a.pdf#page=2"]
    retrieval_scores(gold, hits, k=5)
    assert (gold, hits) == before


def test_citation_metrics_reference_definition():
    truth = "Yes [Benefit_Options.pdf#page=3] and [PerksPlus.pdf#page=1]."
    assert C.citations_matched(truth, "x [Benefit_Options.pdf#page=3]") == 0.5
    assert C.citations_matched(truth, "x [Benefit_Options.pdf#page=4]") == 0.0
    assert C.citations_matched(truth, "[PerksPlus.pdf#page=1][Benefit_Options.pdf#page=3]") == 1.0
    assert C.citations_matched("no citation here", "[a.pdf]") is None
    # the ±1-page twin: a cited page one off counts, two off or another file does not
    assert C.citations_matched_near(truth, "x [Benefit_Options.pdf#page=4]") == 0.5
    assert C.citations_matched_near(truth, "x [Benefit_Options.pdf#page=5] [Other.pdf#page=3]") == 0.0
    assert C.citations_matched_near("[a.pdf]", "[a.pdf]") == 1.0 and C.citations_matched_near("none", "[a.pdf]") is None
    assert C.any_citation("see [handbook.docx]") is True
    assert C.any_citation("see [doc1]") is False


def test_claims_render_their_own_files_and_pages():
    citations = [{"filepath": "docs/Benefit_Options.pdf", "page": 3}, {"filepath": "t.docx", "page": None}]
    claims = [{"text": "A.", "docs": [1], "pages": [4]}, {"text": "B.", "docs": [2, 3], "pages": [None, 1]}]
    text = C.render_claims(claims, citations)
    assert text == "A. [Benefit_Options.pdf#page=4] B. [t.docx]"  # the claim's page, not the citation's; [doc3] is unknown
    assert C.citations_matched("[Benefit_Options.pdf#page=4]", text) == 1.0


def test_citation_precision_recall():
    sentences = [
        {"cited": [True, False], "supported_by_all": True},
        {"cited": [False], "supported_by_all": False},
        {"cited": [], "supported_by_all": False},
    ]
    out = C.citation_precision_recall(sentences)
    assert out["citation_recall"] == pytest.approx(1 / 3)
    assert out["citation_precision"] == pytest.approx(1 / 3)
    assert C.citation_precision_recall([]) == {"citation_recall": None, "citation_precision": None}


def test_groundedness_abstention_length_latency():
    assert A.groundedness([{"supported": True}, {"supported": False}, {"supported": True, "error": "x"}]) == 0.5
    assert A.groundedness([{"supported": True, "error": "judge failed"}]) is None
    rows = [
        {"answerable": False, "abstained": True},
        {"answerable": False, "abstained": False},
        {"answerable": True, "abstained": True},
        {"answerable": True, "abstained": False},
        {"answerable": True, "abstained": False},
        {"answerable": True, "abstained": False},
    ]
    rows = [{**r, "qid": str(i), "scores": {}} for i, r in enumerate(rows)]
    metrics = summarize(rows, k=5)["metrics"]
    assert (metrics["abstention_rate"], metrics["false_abstention_rate"]) == (0.5, 0.25)
    assert summarize(rows[2:], k=5)["metrics"]["abstention_rate"] is None
    assert A.answer_length("one two  three\nfour") == 4
    lat = A.latency_percentiles([1.0, 2.0, 3.0, 4.0, 100.0])
    assert lat["p50"] == 3.0
    assert lat["p95"] == pytest.approx(4.0 + 0.8 * 96.0)
    assert A.latency_percentiles([]) == {"p50": None, "p95": None}
